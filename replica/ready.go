package replica

import (
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// handleReady persists, applies, sends and advances one Ready. Everything it
// writes goes into one indexed batch, synced when raft requires it.
//
// A leader sends its messages (appends, heartbeats) before it persists:
// its followers then write the new entries while it writes them, instead
// of after (Raft thesis §10.2.1; etcd does the same). This is safe because
// a leader's messages do not depend on its own durable state: its
// HardState's term and vote do not change while it leads, and an entry
// counts as committed only once the followers' acknowledgements are
// stepped, in a later iteration of the loop, after this Ready's write has
// been synced; so no entry is applied or acknowledged to a client before
// the leader's copy is durable too. Followers and candidates send after
// persisting, as raft requires (their messages acknowledge entries and
// grant votes).
func (r *Replica) handleReady() error {
	leading := r.rn.BasicStatus().RaftState == raft.StateLeader
	rd := r.rn.Ready()
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := r.restore(rd.Snapshot); err != nil {
			return err
		}
	}
	msgs, snaps := splitSnapshots(rd.Messages)
	if r.sendsBeforePersisting(leading, rd.HardState) && len(msgs) > 0 {
		r.tr.Send(r.Group(), msgs)
		msgs = nil
	}
	ds, err := r.persistAndApply(rd)
	if err != nil {
		return err
	}
	if len(msgs) > 0 {
		r.tr.Send(r.Group(), msgs)
	}
	if r.membersDirty && len(ds) > 0 {
		// A conf change applied: whoever waits for it reads the member list
		// from Status as soon as it is told, so publish first.
		r.publishStatus()
	}
	for _, d := range ds {
		d.p.done <- d.res
	}
	r.readStatesArrived(rd.ReadStates)
	r.releaseReads()
	r.rn.Advance(rd)
	for _, m := range snaps {
		r.sendSnapshot(m)
	}
	return nil
}

// splitSnapshots separates snapshot messages, which go their own way
// (sendSnapshot, after Advance), from the rest.
func splitSnapshots(all []*pb.Message) (msgs, snaps []*pb.Message) {
	if !slices.ContainsFunc(all, isSnap) {
		return all, nil
	}
	for _, m := range all {
		if isSnap(m) {
			snaps = append(snaps, m)
		} else {
			msgs = append(msgs, m)
		}
	}
	return msgs, snaps
}

func isSnap(m *pb.Message) bool { return m.GetType() == pb.MsgSnap }

// sendsBeforePersisting reports whether this Ready's messages may go out
// before its write (see handleReady): only a leader's, and only while its
// term and vote stay as last written — a change cannot happen while it
// leads, but if one shows, be conservative and send after.
func (r *Replica) sendsBeforePersisting(leading bool, hs *pb.HardState) bool {
	if hs != nil && (hs.GetTerm() != r.hsTerm || hs.GetVote() != r.hsVote) {
		return false
	}
	return leading
}

// persistAndApply writes rd's entries and HardState, applies its committed
// entries and commits it all as one batch. It returns what the own
// proposals it settled get, to be delivered once the caller has sent the
// Ready's remaining messages.
func (r *Replica) persistAndApply(rd raft.Ready) ([]delivery, error) {
	b := r.db.NewIndexedBatch()
	defer b.Close()
	if err := r.store.writeEntries(b, rd.Entries); err != nil {
		return nil, fmt.Errorf("write log: %w", err)
	}
	ds := lost(nil, r.props.appended(rd.Entries, r.store.lastIndex)...)
	r.trackConf(rd.Entries)
	if rd.HardState != nil {
		if err := r.store.setHardState(b, rd.HardState); err != nil {
			return nil, fmt.Errorf("write hard state: %w", err)
		}
		r.hsTerm, r.hsVote = rd.HardState.GetTerm(), rd.HardState.GetVote()
	}
	ds, err := r.applyCommitted(b, rd.CommittedEntries, ds)
	if err != nil {
		return nil, err
	}
	if err := r.commitReady(b, rd.MustSync); err != nil {
		return nil, err
	}
	r.stats.readies.Add(1)
	r.stats.appended.Add(uint64(len(rd.Entries)))
	r.stats.applied.Add(uint64(len(rd.CommittedEntries)))
	r.store.commitEntries(rd.Entries)
	if r.hand != nil && r.hand.afterReady != nil {
		r.hand.afterReady()
	}
	return ds, nil
}

// applyCommitted applies ents through b, appends to ds what the own
// proposals they settle get, and records the applied index in b.
func (r *Replica) applyCommitted(b *pebble.Batch, ents []*pb.Entry, ds []delivery) ([]delivery, error) {
	for _, e := range ents {
		idx := e.GetIndex()
		landed := r.props.takeLanded(idx)
		res, err := r.applyEntry(b, e)
		if err != nil {
			// Nothing of this Ready is applied here, but its entries are
			// committed in the group (and replayed here after a restart):
			// whoever proposed them cannot learn the outcome from this node.
			answerUnknown(landed, ds)
			return nil, err
		}
		ds = r.props.settle(ds, e, landed, res)
		r.applied = idx
	}
	if len(ents) > 0 {
		if err := r.store.setApplied(b, r.applied); err != nil {
			return nil, fmt.Errorf("write applied index: %w", err)
		}
	}
	return ds, nil
}

// answerUnknown answers ErrOutcomeUnknown to p (if any) and to the
// proposals in ds that were to be told they applied, when the Ready that
// applies them is not committed because an entry could not be applied.
func answerUnknown(p *proposal, ds []delivery) {
	if p != nil {
		p.done <- proposalResult{err: ErrOutcomeUnknown}
	}
	for _, d := range ds {
		if d.res.err == nil {
			d.p.done <- proposalResult{err: ErrOutcomeUnknown}
		}
	}
}

// applyEntry applies one committed entry through b: a command through the
// state machine, a conf change to raft and the replica's member state.
// An error stops the replica with b uncommitted.
func (r *Replica) applyEntry(b *pebble.Batch, e *pb.Entry) (any, error) {
	switch e.GetType() {
	case pb.EntryNormal:
		data := e.GetData()
		if len(data) == 0 {
			return nil, nil // a new leader's empty entry
		}
		if len(data) < idLen {
			r.log.Error("skipping malformed entry", "index", e.GetIndex(), "len", len(data))
			return nil, nil
		}
		res, err := r.sm.Apply(b, e.GetIndex(), data[idLen:])
		if err != nil {
			// b is not committed: nothing of this Ready is applied.
			return nil, fmt.Errorf("%w: entry %d: %w", ErrApplyFault, e.GetIndex(), err)
		}
		return res, nil
	case pb.EntryConfChange, pb.EntryConfChangeV2:
		return nil, r.applyConfChange(b, e)
	}
	return nil, nil
}

// commitReady commits b, with fsync if raft requires it, unless it is empty.
func (r *Replica) commitReady(b *pebble.Batch, mustSync bool) error {
	if b.Empty() {
		return nil
	}
	opts := pebble.NoSync
	var start time.Time
	if mustSync {
		opts = pebble.Sync
		start = time.Now()
	}
	if err := b.Commit(opts); err != nil {
		return fmt.Errorf("commit ready: %w", err)
	}
	if mustSync {
		r.stats.syncs.Add(1)
		r.stats.syncNanos.Add(uint64(time.Since(start)))
	}
	return nil
}

func (r *Replica) applyConfChange(b *pebble.Batch, e *pb.Entry) error {
	var cc pb.ConfChangeI
	if e.GetType() == pb.EntryConfChange {
		c := &pb.ConfChange{}
		if err := proto.Unmarshal(e.GetData(), c); err != nil {
			return fmt.Errorf("decode conf change at %d: %w", e.GetIndex(), err)
		}
		cc = c
	} else {
		c := &pb.ConfChangeV2{}
		if err := proto.Unmarshal(e.GetData(), c); err != nil {
			return fmt.Errorf("decode conf change at %d: %w", e.GetIndex(), err)
		}
		cc = c
	}
	if c, ok := cc.(*pb.ConfChange); ok {
		if err := r.recordMemberAddr(b, c); err != nil {
			return fmt.Errorf("write member address: %w", err)
		}
	}
	cs := r.rn.ApplyConfChange(cc)
	if err := r.store.setConfState(b, cs); err != nil {
		return fmt.Errorf("write conf state: %w", err)
	}
	r.store.cs = cs
	old := r.members
	r.setMembers(cs)
	if f, ok := r.tr.(PeerForgetter); ok {
		for id := range old {
			if !r.members[id] && id != r.cfg.ID {
				f.Forget(id)
			}
		}
	}
	r.log.Info("applied conf change", "index", e.GetIndex(), "voters", cs.GetVoters(), "learners", cs.GetLearners())
	return nil
}
