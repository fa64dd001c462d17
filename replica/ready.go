package replica

import (
	"encoding/binary"
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
	msgs := rd.Messages
	var snaps []*pb.Message
	if slices.ContainsFunc(msgs, isSnap) {
		// Snapshots go their own way (sendSnapshot, after Advance).
		msgs = nil
		for _, m := range rd.Messages {
			if isSnap(m) {
				snaps = append(snaps, m)
			} else {
				msgs = append(msgs, m)
			}
		}
	}
	if hs := rd.HardState; leading && hs != nil && (hs.GetTerm() != r.hsTerm || hs.GetVote() != r.hsVote) {
		leading = false // cannot happen while leading; be conservative
	}
	if leading && len(msgs) > 0 {
		r.tr.Send(r.Group(), msgs)
		msgs = nil
	}
	b := r.db.NewIndexedBatch()
	defer b.Close()

	var delivered []proposalResult
	var deliverTo []*proposal
	lose := func(p *proposal) {
		delivered = append(delivered, proposalResult{err: ErrProposalLost})
		deliverTo = append(deliverTo, p)
	}

	if err := r.store.writeEntries(b, rd.Entries); err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	r.trackLanded(rd.Entries, lose)
	r.trackConf(rd.Entries)
	if rd.HardState != nil {
		if err := r.store.setHardState(b, rd.HardState); err != nil {
			return fmt.Errorf("write hard state: %w", err)
		}
		r.hsTerm, r.hsVote = rd.HardState.GetTerm(), rd.HardState.GetVote()
	}
	for _, e := range rd.CommittedEntries {
		idx := e.GetIndex()
		p := r.landed[idx]
		delete(r.landed, idx)
		var res any
		ours := false
		switch e.GetType() {
		case pb.EntryNormal:
			data := e.GetData()
			if len(data) == 0 {
				break // a new leader's empty entry
			}
			if len(data) < idLen {
				r.log.Error("skipping malformed entry", "index", idx, "len", len(data))
				break
			}
			id := binary.BigEndian.Uint64(data)
			var err error
			if res, err = r.sm.Apply(b, idx, data[idLen:]); err != nil {
				// b is not committed: nothing of this Ready is applied.
				return fmt.Errorf("%w: entry %d: %w", ErrApplyFault, idx, err)
			}
			if p == nil {
				// Raft did not show us where it landed; match by id.
				if q, ok := r.unlanded[id]; ok {
					delete(r.unlanded, id)
					p = q
				}
			}
			ours = p != nil && p.id == id
		case pb.EntryConfChange, pb.EntryConfChangeV2:
			if err := r.applyConfChange(b, e); err != nil {
				return err
			}
			ours = p != nil && e.GetType() == pb.EntryConfChange && confChangeID(e.GetData()) == p.id
		}
		if p != nil {
			if ours {
				delivered = append(delivered, proposalResult{result: res, index: idx})
				deliverTo = append(deliverTo, p)
			} else {
				lose(p)
			}
		}
		r.applied = idx
	}
	if len(rd.CommittedEntries) > 0 {
		if err := r.store.setApplied(b, r.applied); err != nil {
			return fmt.Errorf("write applied index: %w", err)
		}
	}
	if !b.Empty() {
		opts := pebble.NoSync
		var start time.Time
		if rd.MustSync {
			opts = pebble.Sync
			start = time.Now()
		}
		if err := b.Commit(opts); err != nil {
			return fmt.Errorf("commit ready: %w", err)
		}
		if rd.MustSync {
			r.stats.syncs.Add(1)
			r.stats.syncNanos.Add(uint64(time.Since(start)))
		}
	}
	r.stats.readies.Add(1)
	r.stats.appended.Add(uint64(len(rd.Entries)))
	r.stats.applied.Add(uint64(len(rd.CommittedEntries)))
	r.store.commitEntries(rd.Entries)
	if r.hand != nil && r.hand.afterReady != nil {
		r.hand.afterReady()
	}

	if len(msgs) > 0 {
		r.tr.Send(r.Group(), msgs)
	}
	for i, p := range deliverTo {
		p.done <- delivered[i]
	}
	for _, rs := range rd.ReadStates {
		i := slices.IndexFunc(r.readReqs, func(rr *readRound) bool { return string(rs.RequestCtx) == string(rr.ctx) })
		if i < 0 {
			continue // an answer to an attempt since retried
		}
		rr := r.readReqs[i]
		rr.index = rs.Index
		r.readWait = append(r.readWait, rr)
		r.readReqs = slices.Delete(r.readReqs, i, i+1)
	}
	r.releaseReads()
	r.rn.Advance(rd)
	for _, m := range snaps {
		r.sendSnapshot(m)
	}
	return nil
}

func isSnap(m *pb.Message) bool { return m.GetType() == pb.MsgSnap }

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

func (r *Replica) setMembers(cs *pb.ConfState) {
	m := make(map[uint64]bool)
	for _, ids := range [][]uint64{cs.GetVoters(), cs.GetVotersOutgoing(), cs.GetLearners(), cs.GetLearnersNext()} {
		for _, id := range ids {
			m[id] = true
		}
	}
	r.members = m
	r.learner = slices.Contains(cs.GetLearners(), r.cfg.ID) || slices.Contains(cs.GetLearnersNext(), r.cfg.ID)
	r.membersDirty = true
}
