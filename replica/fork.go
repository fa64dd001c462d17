package replica

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
)

// ForkGroup writes into b the raft state of a new group g that starts from
// the state machine's state at index: the group record, voters (id → address) as its
// ConfState and member addresses, an empty log whose first index is
// index+1, trunc = (index, 1), applied = index and HardState {Term: 1,
// Commit: index}. Every older key under prefix (the previous group's log,
// HardState, ConfState, members) is deleted in the same batch.
//
// It is how the learners of a splitting cluster become the new cluster
// (docs/split.md): each applies the SPLIT entry at index, stops its
// replica, commits ForkGroup in one batch with the state machine's own
// change, and opens a replica over the DB again. Every new member writes
// identical raft state, like bootstrap does at index 1; the new group's
// terms start again at 1 (it shares no log with the old group), and its
// indexes continue after index, so versions stay monotonic.
//
// g must differ from the source group (a new name, or a higher epoch), so
// that the new group and the source's members that have not forked yet
// drop each other's frames (group.go).
//
// With empty set (a member whose state is not the state at index), it
// writes the group record and no other raft state: the member opens like a
// Join node of g and waits for the new group's leader to send it a
// snapshot.
func ForkGroup(b *pebble.Batch, prefix []byte, g Group, index uint64, voters map[uint64]string, empty bool) error {
	if len(prefix) == 0 {
		prefix = DefaultConfig().Prefix
	}
	if index == 0 || len(voters) == 0 || g.IsZero() {
		return fmt.Errorf("replica: fork: group %v, index %d and %d voters", g, index, len(voters))
	}
	s := newLogStore(nil, prefix)
	end := append(append([]byte{}, prefix...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	if err := b.DeleteRange(prefix, end, nil); err != nil {
		return err
	}
	if err := b.Set(s.keyGroup, encodeGroup(g), nil); err != nil {
		return err
	}
	// A new generation of log segments: the ones the replica wrote are
	// the old group's, and its next Open removes them.
	if err := b.Set(s.keyLogID, binary.BigEndian.AppendUint64(nil, newLogGen()), nil); err != nil {
		return err
	}
	if empty {
		return nil
	}
	ids := slices.Sorted(maps.Keys(voters))
	if err := s.setConfState(b, &pb.ConfState{Voters: ids}); err != nil {
		return err
	}
	if err := s.setHardState(b, &pb.HardState{Term: new(uint64(1)), Commit: new(index)}); err != nil {
		return err
	}
	if err := b.Set(s.keyTrunc, truncValue(index, 1), nil); err != nil {
		return err
	}
	if err := s.setApplied(b, index); err != nil {
		return err
	}
	for _, id := range ids {
		if err := b.Set(s.memberKey(id), []byte(voters[id]), nil); err != nil {
			return err
		}
	}
	return nil
}
