package replica

// Which members have ever acted on their durable raft state, as this
// replica saw it: a member that led (its appends and heartbeats), granted
// a vote, or answered a leader (appends, heartbeats, snapshots) holds a
// term, a vote or entries a quorum may count on. If its disk is lost, it
// must not come back under its id: that is the one thing an empty node
// cannot tell by itself, so it asks its peers (cluster's wipe check), and
// any peer that saw such a message from it says so in Member.Acked.
//
// The marks are this replica's own observations, not replicated state:
// each is written once under p+"acked/" (in the next Ready's batch), kept
// across restarts, never sent in a snapshot, and written again after a
// snapshot is installed (which replaces every other key). Pre-votes do not
// count: they change nothing on disk.

import (
	"encoding/binary"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/cockroachdb/pebble/v2"
)

// ackedKey is the key of the mark of member id.
func (s *logStore) ackedKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte{}, s.ackedPfx...), id)
}

// loadAcked reads the persisted marks.
func (s *logStore) loadAcked(r pebble.Reader) (map[uint64]bool, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: s.ackedPfx, UpperBound: append(append([]byte{}, s.ackedPfx...), 0xff)})
	if err != nil {
		return nil, err
	}
	out := map[uint64]bool{}
	for ok := it.First(); ok; ok = it.Next() {
		if k := it.Key(); len(k) == len(s.ackedPfx)+8 {
			out[binary.BigEndian.Uint64(k[len(s.ackedPfx):])] = true
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return nil, err
	}
	return out, it.Close()
}

// actsOnDurableState reports whether a message of type t shows that its
// sender has a durable term, vote or log others may count on.
func actsOnDurableState(t pb.MessageType) bool {
	switch t {
	case pb.MsgApp, pb.MsgHeartbeat, pb.MsgSnap, pb.MsgAppResp, pb.MsgHeartbeatResp, pb.MsgVote, pb.MsgVoteResp,
		pb.MsgTimeoutNow, pb.MsgReadIndex, pb.MsgReadIndexResp, pb.MsgProp, pb.MsgTransferLeader:
		return true
	}
	return false
}

// noteAcked marks the sender of m, a message raft accepted from a peer,
// if it shows durable state and is not marked yet. Loop goroutine.
func (r *Replica) noteAcked(m *pb.Message) {
	from := m.GetFrom()
	if from == 0 || from == r.cfg.ID || r.acked[from] || !actsOnDurableState(m.GetType()) {
		return
	}
	r.acked[from] = true
	r.ackedNew = append(r.ackedNew, from)
	r.membersDirty = true
}

// writeAcked adds the marks not yet written to b. Loop goroutine.
func (r *Replica) writeAcked(b *pebble.Batch) error {
	for _, id := range r.ackedNew {
		if err := b.Set(r.store.ackedKey(id), nil, nil); err != nil {
			return err
		}
	}
	r.ackedNew = r.ackedNew[:0]
	return nil
}

// rewriteAcked queues every mark for writing again, after a snapshot
// replaced the keys they were under. Loop goroutine.
func (r *Replica) rewriteAcked() {
	r.ackedNew = r.ackedNew[:0]
	for id := range r.acked {
		r.ackedNew = append(r.ackedNew, id)
	}
}
