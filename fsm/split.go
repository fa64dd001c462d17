package fsm

// The split of a cluster's range, as the file state machine sees it
// (docs/split.md). Two commands, both proposed by the source
// cluster's leader on the meta leader's request:
//
//   - SPLIT (wire.OpSplitFork, the SplitRecord in Command.Data): at its
//     index every replica of the source sets its owned range to
//     [Start, At) and records the split under s/m/split. From then on
//     Apply and reads refuse paths in [At, End) with WRONG_RANGE. The
//     learners named in the record (the new cluster's nodes) apply the same
//     entry, stop applying the source's log there and restart
//     their replica as the new group owning [At, End) from the identical
//     state (ForkState; the fork itself is the storage node's).
//   - SPLIT_CLEANUP (wire.OpSplitCleanup, the batch size in Command.Size):
//     on the source, deletes up to that many entries of the moved half and
//     releases their chunk references; it reports whether more remain.
//
// Both are deterministic functions of the state and the entry, like every
// other command.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/cleavefs/cleave/internal/durable"
	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/wire"
)

// splitKey holds the record of the last split applied (msgpack SplitRecord).
const splitKey = prefix + "m/split"

// splitTaintKey marks a departing learner whose state is not the state at
// the split index (it was restored from a snapshot taken after it): it
// joins the new group empty and is sent a snapshot by the new leader.
const splitTaintKey = prefix + "m/split-taint"

// SplitRecord is the SPLIT entry's payload and, once applied, the stored
// record. Field names are part of the on-disk format.
type SplitRecord struct {
	Cluster    string        `msgpack:"cluster"`     // the source cluster
	NewCluster string        `msgpack:"new_cluster"` // the cluster that takes [At, End)
	At         uint64        `msgpack:"at"`          // cut point
	End        uint64        `msgpack:"end"`         // the source's range end before the split (0 = 2^64)
	Voters     []wire.Member `msgpack:"voters"`      // the new cluster's members (learners of the source)
	Table      uint64        `msgpack:"table"`       // routing version that gives [At, End) to NewCluster
	Index      uint64        `msgpack:"index"`       // log index of the SPLIT entry (set when applied)
	Cleaned    bool          `msgpack:"cleaned,omitempty"`
	Abandoned  bool          `msgpack:"abandoned,omitempty"` // a fence: the split to NewCluster will not happen
}

// Upper returns the range the new cluster owns.
func (r *SplitRecord) Upper() wire.Range { return wire.Range{Start: r.At, End: r.End} }

// HasVoter reports whether id is one of the new cluster's members.
func (r *SplitRecord) HasVoter(id uint64) bool {
	return slices.ContainsFunc(r.Voters, func(m wire.Member) bool { return m.ID == id })
}

// Peers returns the new cluster's members by id: their addresses.
func (r *SplitRecord) Peers() map[uint64]string {
	m := make(map[uint64]string, len(r.Voters))
	for _, v := range r.Voters {
		m[v.ID] = v.Addr
	}
	return m
}

// readSplit returns the stored split record, nil if there is none.
func readSplit(rd reader) (*SplitRecord, error) {
	return getRecord[SplitRecord](rd, []byte(splitKey), func() (string, string) {
		return "split record", "split record"
	})
}

func writeSplit(b *pebble.Batch, r *SplitRecord) error {
	v, err := msgpack.Marshal(r)
	if err != nil {
		return fmt.Errorf("fsm: encode split record: %w", err)
	}
	if err := b.Set([]byte(splitKey), v, nil); err != nil {
		return storageErr("write split record", err)
	}
	return nil
}

// Split returns the record of the last split this replica applied, nil if
// none.
func (f *FSM) Split() (*SplitRecord, error) { return readSplit(f.db) }

// MarkSplitTainted records, durably and outside the log, that this
// departing learner's state is not the state at the split index (it was
// restored from a snapshot taken after it), so ForkState gives it no range.
func (f *FSM) MarkSplitTainted() error {
	if err := durable.Set(f.db, []byte(splitTaintKey), nil); err != nil {
		return storageErr("mark the split taint", err)
	}
	return nil
}

// SplitTainted reports whether MarkSplitTainted was called since the last
// ForkState.
func (f *FSM) SplitTainted() (bool, error) {
	_, err := getValue(f.db, []byte(splitTaintKey))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, pebble.ErrNotFound):
		return false, nil
	}
	return false, storageErr("read the split taint", err)
}

// ForkState writes into b the state machine's half of a departing
// learner's fork: the owned range becomes rec.Upper() (none when tainted:
// the node joins the new group empty and is sent a snapshot), and the split
// record and the taint are removed. The caller commits b with the new
// group's raft state, atomically.
func (f *FSM) ForkState(b *pebble.Batch, rec *SplitRecord, tainted bool) error {
	var up *wire.Range
	if !tainted {
		r := rec.Upper()
		up = &r
	}
	if err := f.setRange(b, up); err != nil {
		return err
	}
	return errors.Join(b.Delete([]byte(splitKey), nil), b.Delete([]byte(splitTaintKey), nil))
}

// EncodeSplitCommand builds the SPLIT log entry stamped with the wall
// clock now and the entry clock (clock.go).
func EncodeSplitCommand(r *SplitRecord, now, clock int64) ([]byte, error) {
	data, err := msgpack.Marshal(r)
	if err != nil {
		return nil, err
	}
	return EncodeCommand(&Command{Op: wire.OpSplitFork, Data: data, Time: now, Clock: clock})
}

// applySplitOp applies SPLIT and SPLIT_CLEANUP.
func (f *FSM) applySplitOp(b *pebble.Batch, index uint64, c *Command) (*Result, error) {
	switch c.Op {
	case wire.OpSplitFork:
		return f.applySplit(b, index, c)
	case wire.OpSplitCleanup:
		return f.applySplitCleanup(b, index, c)
	}
	return failf(wire.Invalid, "op %v is not a split command", c.Op), nil
}

func (f *FSM) applySplit(b *pebble.Batch, index uint64, c *Command) (*Result, error) {
	var rec SplitRecord
	if err := msgpack.Unmarshal(c.Data, &rec); err != nil {
		return failf(wire.Invalid, "malformed split record: %v", err), nil
	}
	cur, ok, err := f.ownedRange(b)
	if err != nil {
		return nil, err
	}
	if !ok {
		return failf(wire.Unavailable, "split: this cluster owns no range"), nil
	}
	old, err := readSplit(b)
	if err != nil {
		return nil, err
	}
	if old != nil && old.NewCluster == rec.NewCluster {
		switch {
		case old.Abandoned && rec.Abandoned:
			return &Result{Message: "abandoned"}, nil
		case old.Abandoned:
			return failf(wire.Conflict, "split: the split to %s was abandoned", rec.NewCluster), nil
		case rec.Abandoned:
			return failf(wire.Conflict, "split: the split to %s committed at index %d; it cannot be abandoned", rec.NewCluster, old.Index), nil
		}
		// The same split proposed twice (a driver retry): the first one won.
		return &Result{Message: fmt.Sprintf("split at index %d", old.Index), Split: old}, nil
	}
	if rec.Abandoned {
		// A fence: a SPLIT to this cluster still in flight from a crashed
		// driver is refused when it applies after this entry.
		rec.Index, rec.Cleaned = index, true
		if err := writeSplit(b, &rec); err != nil {
			return nil, err
		}
		return &Result{Message: "abandoned"}, nil
	}
	if rec.NewCluster == "" || (len(rec.Voters) == 0 && !rec.Abandoned) {
		return failf(wire.Invalid, "split: no new cluster or no voters"), nil
	}
	if rec.At <= cur.Start || (cur.End != 0 && rec.At >= cur.End) {
		return failf(wire.Invalid, "split: cut point %#016x is not strictly inside the range %v", rec.At, cur), nil
	}
	if old != nil && !old.Cleaned && !old.Abandoned {
		// The record of the previous split drives its cleanup; finish it first.
		return failf(wire.Unavailable, "split: the half moved by the previous split (to %s) is not cleaned up yet", old.NewCluster), nil
	}
	rec.End = cur.End
	rec.Index = index
	rec.Cleaned = false
	if err := f.setRange(b, &wire.Range{Start: cur.Start, End: rec.At}); err != nil {
		return nil, err
	}
	if err := writeSplit(b, &rec); err != nil {
		return nil, err
	}
	return &Result{Message: fmt.Sprintf("split at index %d", index), Split: &rec}, nil
}

// applySplitCleanup deletes up to c.Size entries (files and directories,
// with their blocks) whose root lies outside the owned range, and releases
// their chunk references. On a split's source that is the half the split
// moved; on the new cluster, the half it forked with and does not own.
// Message "more" says entries remain. When none remain on a source whose
// record is not cleaned yet, the record is marked cleaned (the next split
// waits for that).
func (f *FSM) applySplitCleanup(b *pebble.Batch, index uint64, c *Command) (*Result, error) {
	rec, err := readSplit(b)
	if err != nil {
		return nil, err
	}
	cur, ok, err := f.ownedRange(b)
	if err != nil {
		return nil, err
	}
	if !ok {
		return &Result{Message: "cleaned", Cleaned: true}, nil // owns nothing yet: nothing is foreign
	}
	t := &tx{f: f, b: b, index: index, c: c, outside: &cur}
	dropped, more, err := t.dropOutside(cur, max(1, c.Size))
	if err != nil {
		return nil, err
	}
	if err := t.flush(); err != nil {
		return nil, err
	}
	if more {
		return &Result{Message: "more", Dropped: dropped}, nil
	}
	if rec != nil && !rec.Cleaned && !rec.Abandoned {
		rec.Cleaned = true
		if err := writeSplit(b, rec); err != nil {
			return nil, err
		}
	}
	return &Result{Message: fmt.Sprintf("cleaned: dropped %d entries", dropped), Dropped: dropped, Cleaned: true}, nil
}

// dropOutside deletes up to limit entries whose root's point lies outside
// cur, with their blocks (references released in t) and, for a root
// directory, its root record; it reports how many it deleted and whether
// more remain.
func (t *tx) dropOutside(cur wire.Range, limit int64) (int, bool, error) {
	var paths []string
	var keys [][]byte
	more := false
	for _, span := range outsideSpans(cur) {
		if more {
			break
		}
		it, err := t.b.NewIter(&pebble.IterOptions{LowerBound: span[0], UpperBound: span[1]})
		if err != nil {
			return 0, false, storageErr("scan", err)
		}
		for valid := it.First(); valid; valid = it.Next() {
			if int64(len(keys)) >= limit {
				more = true
				break
			}
			k := bytes.Clone(it.Key())
			p, ok := pathOfEntryKey(k)
			if !ok {
				_ = it.Close()
				return 0, false, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("corrupt entry key %q", k)}
			}
			keys = append(keys, k)
			paths = append(paths, p)
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return 0, false, storageErr("scan", err)
		}
	}
	for i, p := range paths {
		if err := t.dropBlocks(blocksPrefix(p)); err != nil {
			return 0, false, err
		}
		t.f.forgetEntries(keys[i : i+1])
		if err := t.b.Delete(keys[i], nil); err != nil {
			return 0, false, storageErr("delete "+p, err)
		}
		if parent, name := fspath.Split(p); parent == "/" {
			if err := t.b.Delete(rootKey(name), nil); err != nil {
				return 0, false, storageErr("delete "+p, err)
			}
		}
	}
	return len(paths), more, nil
}

// outsideSpans returns the entry-key spans [lower, upper) of the points
// outside r: below its start and at or above its end.
func outsideSpans(r wire.Range) [][2][]byte {
	var spans [][2][]byte
	if r.Start > 0 {
		spans = append(spans, [2][]byte{[]byte(entryPrefix), binary.BigEndian.AppendUint64([]byte(entryPrefix), r.Start)})
	}
	if r.End != 0 {
		spans = append(spans, [2][]byte{binary.BigEndian.AppendUint64([]byte(entryPrefix), r.End), upperBound([]byte(entryPrefix))})
	}
	return spans
}
