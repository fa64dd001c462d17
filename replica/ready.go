package replica

import (
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cleavefs/cleave/internal/durable"
)

// readyWrite is one Ready between startReady and finishReady: its log
// entries (written and synced first) and its batch (HardState, the
// applied state and the applied index) are being written by the writer
// goroutine, and what it leaves to do once they are durable.
type readyWrite struct {
	rd      raft.Ready
	apply   []*pb.Entry // the committed entries b applies (applyDurable took the others)
	log     *segWrite   // rd's entries, nil if none
	b       *pebble.Batch
	sync    bool          // raft's MustSync: the entries are synced, and b made durable too if syncDB
	syncDB  bool          // b must be durable too (durable.Commit): it changes term or vote, or adds member marks
	msgs    []*pb.Message // to send once durable: after the log write if !syncDB, else after b
	snaps   []*pb.Message // snapshot messages, sent after Advance
	ds      []delivery    // own proposals' answers, delivered once b is durable
	applied uint64        // the applied index b records (r.applied until then)
	took    time.Duration // the commit's duration, set by the writer
	err     error         // the commit's error, set by the writer
}

// startReady takes the next Ready, installs its snapshot if it has one,
// on a leader applies ahead the committed entries the durable log holds if
// the Ready must be synced (applyDurable), builds its batch — entries (a
// conflicting suffix deleted), HardState, the other committed entries
// applied through the state machine and the applied index, all in one
// indexed batch — and hands the batch to the writer goroutine if it must
// be fsynced and the loop is under load (else the loop commits it itself:
// writesInPlace). It returns the write in
// flight, or nil when the Ready is already finished. The caller must not
// take another Ready before finishReady: the next batch's reads fall
// through to the DB, which must hold this one first.
//
// A leader sends its messages (appends, heartbeats) before it persists:
// its followers then write the new entries while it writes them, instead
// of after (Raft thesis §10.2.1; etcd does the same). This is safe because
// a leader's messages do not depend on its own durable state: its
// HardState's term and vote do not change while it leads, and an entry
// counts as committed only once the followers' acknowledgements are
// stepped — and the leader's own, which raft steps in Advance, after this
// Ready's write has been synced; so no entry is applied or acknowledged to
// a client before the leader's copy is durable too. Followers and
// candidates send after persisting, as raft requires (their messages
// acknowledge entries and grant votes): once the entries are synced to
// the log when the batch changes neither term nor vote (write sends
// them), else once the batch is synced too (finishReady).
func (r *Replica) startReady() (*readyWrite, error) {
	leading := r.rn.BasicStatus().RaftState == raft.StateLeader
	rd := r.rn.Ready()
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := r.restore(rd.Snapshot); err != nil {
			return nil, err
		}
	}
	w := &r.ready // at most one Ready is in flight: reuse its record
	*w = readyWrite{rd: rd, apply: rd.CommittedEntries, sync: rd.MustSync}
	kept := dropSuperseded(rd.Messages)
	r.stats.superseded.Add(uint64(len(rd.Messages) - len(kept)))
	msgs := r.holdNotices(leading && !r.cfg.SendNotices, kept)
	w.msgs, w.snaps = splitSnapshots(msgs)
	r.stats.sent.Add(uint64(len(w.msgs)))
	r.noteSent(leading, msgs)
	r.noteHeartbeats(leading, msgs)
	if r.sendsBeforePersisting(leading, rd.HardState) && len(w.msgs) > 0 {
		r.tr.Send(r.Group(), w.msgs)
		w.msgs = nil
	}
	if w.sync && leading && raft.IsEmptySnap(rd.Snapshot) {
		if err := r.applyDurable(w); err != nil {
			return nil, err
		}
	}
	w.applied = r.applied
	w.b = r.db.NewIndexedBatch()
	if err := r.buildReady(w); err != nil {
		w.b.Close()
		return nil, err
	}
	if w.b.Empty() && w.log == nil {
		return nil, r.finishReady(w)
	}
	// Written here, the batch is the same as the writer's, and so is the
	// order, since no other write is in flight; the writer goroutine's two
	// wake-ups are spared where the loop would only have waited for them.
	switch {
	case !w.sync: // nothing to wait for on the disk
		r.write(w)
	case r.writesInPlace(): // little else to do while the disk works
		r.write(w)
		r.noteLoad(r.queued())
	default:
		r.stats.handoffs.Add(1)
		r.arrived = 0
		r.writec <- w
		return w, nil
	}
	return nil, r.finishReady(w)
}

// buildReady encodes w's entries for the log, writes its HardState into
// w.b and applies its committed entries through it, collecting the own
// proposals they settle.
func (r *Replica) buildReady(w *readyWrite) error {
	rd := w.rd
	var err error
	if w.log, err = r.store.writeEntries(rd.Entries); err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	w.ds = lost(nil, r.props.appended(rd.Entries, r.store.lastIndex)...)
	r.trackConf(rd.Entries)
	w.syncDB = len(r.ackedNew) > 0
	if rd.HardState != nil {
		w.syncDB = w.syncDB || rd.HardState.GetTerm() != r.hsTerm || rd.HardState.GetVote() != r.hsVote
		if err := r.store.setHardState(w.b, rd.HardState); err != nil {
			return fmt.Errorf("write hard state: %w", err)
		}
		r.hsTerm, r.hsVote, r.hsCommit = rd.HardState.GetTerm(), rd.HardState.GetVote(), rd.HardState.GetCommit()
	}
	if err := r.writeAcked(w.b); err != nil {
		return fmt.Errorf("write member marks: %w", err)
	}
	w.ds, w.applied, err = r.applyCommitted(w.b, w.apply, w.ds)
	return err
}

// applyDurable applies the committed entries of w that the durable log
// already holds, and that w does not overwrite, in a batch of their own
// committed without fsync, then answers their proposers and releases the
// reads they satisfy, before w's batch (new entries, HardState, the other
// committed entries) goes to the writer goroutine for its fsync. Without
// it a leader answered the entries a quorum had just made durable only
// after its own next append was synced too: one more fsync on every
// write's path under load. Only a leader does it: a follower has no one
// to answer, and the extra commit would only cost it.
//
// Why nothing is lost (docs/robustness.md, "The Ready loop does not wait
// for fsync"): the entries are committed, so durable on a quorum, and in
// this node's durable log; a crash that loses the unsynced apply batch
// replays them from the log, as it does after the unsynced batches of
// Readies that need no fsync. The batch records its applied index with
// the state, and a HardState whose commit covers it (term and vote as
// last written), so that whatever prefix of the WAL survives, the stored
// applied index never passes the stored commit.
func (r *Replica) applyDurable(w *readyWrite) error {
	durable := r.store.lastIndex
	if ents := w.rd.Entries; len(ents) > 0 {
		durable = min(durable, ents[0].GetIndex()-1)
	}
	n := 0
	for n < len(w.apply) && w.apply[n].GetIndex() <= durable {
		n++
	}
	if n == 0 {
		return nil
	}
	ents := w.apply[:n]
	w.apply = w.apply[n:]
	b := r.db.NewIndexedBatch()
	defer b.Close()
	ds, applied, err := r.applyCommitted(b, ents, nil)
	if err != nil {
		return err
	}
	if applied > r.hsCommit {
		hs := &pb.HardState{Term: new(r.hsTerm), Vote: new(r.hsVote), Commit: new(applied)}
		if err := r.store.setHardState(b, hs); err != nil {
			return fmt.Errorf("write hard state: %w", err)
		}
	}
	if err := commitBatch(r.db, b, false); err != nil {
		answerUnknown(nil, ds)
		return err
	}
	r.hsCommit = max(r.hsCommit, applied)
	r.applied = applied
	if r.hand != nil && r.hand.afterApply != nil {
		r.hand.afterApply()
	}
	r.deliver(ds)
	r.releaseReads()
	return nil
}

// deliver answers the proposals in ds. Status is published first, so
// whoever is told of a write and then reads Status sees it committed and
// applied (and, for a conf change, the new member list).
func (r *Replica) deliver(ds []delivery) {
	if len(ds) == 0 {
		return // a follower's Ready, every time: no clock read
	}
	r.publishStatus()
	now := time.Now()
	for _, d := range ds {
		if p := d.p; d.res.err == nil && !p.answered && !p.landed.IsZero() {
			r.stats.proposals.Add(1)
			r.stats.queuedNanos.Add(uint64(p.landed.Sub(p.made)))
			r.stats.replicatedNanos.Add(uint64(now.Sub(p.landed)))
		}
		d.p.finish(d.res)
	}
}

// finishReady completes a Ready whose batch the writer committed (or that
// had nothing to write): the log view and the applied index move, the
// remaining messages are sent, results delivered, reads released, and
// raft is told (Advance). A failed commit stops the replica.
func (r *Replica) finishReady(w *readyWrite) error {
	w.b.Close()
	if w.err != nil {
		answerUnknown(nil, w.ds)
		return w.err
	}
	defer func() { *w = readyWrite{} }() // keep nothing of it alive
	rd := w.rd
	if w.sync {
		r.stats.syncs.Add(1)
		r.stats.syncNanos.Add(uint64(w.took))
		r.stats.syncHist.observe(w.took)
	}
	r.stats.readies.Add(1)
	r.stats.appended.Add(uint64(len(rd.Entries)))
	r.stats.applied.Add(uint64(len(rd.CommittedEntries)))
	r.store.commitEntries(rd.Entries, w.log)
	r.applied = w.applied
	if r.hand != nil && r.hand.afterReady != nil {
		r.hand.afterReady()
	}
	if len(w.msgs) > 0 {
		r.tr.Send(r.Group(), w.msgs)
	}
	r.deliver(w.ds)
	r.readStatesArrived(rd.ReadStates)
	r.releaseReads()
	r.rn.Advance(rd)
	for _, m := range w.snaps {
		r.sendSnapshot(m)
	}
	return nil
}

// writer is the writer goroutine: it writes each Ready the loop hands it,
// in order, and hands it back. While it waits for the disk the loop keeps
// stepping messages, proposals and reads into raft, so the next Ready
// carries everything that arrived meanwhile.
func (r *Replica) writer() {
	defer close(r.writtenc)
	for w := range r.writec {
		r.write(w)
		r.writtenc <- w
	}
}

// write appends w's entries to the log and syncs them, then commits w's
// batch, made durable (durable.Commit) only if syncDB: every entry the batch applies is in
// the synced log by then (a crash that loses the batch replays them), and
// the HardState's commit never passes the durable log's last index. It
// records the duration and the error in w.
//
// Unless syncDB, w's messages go out as soon as the entries are synced,
// before the batch is committed: what they promise (a follower's
// acknowledgement: these entries are durable here) is then true, and the
// batch holds nothing they depend on — its HardState keeps the term and
// vote already durable, and its commit index and applied state are this
// node's alone. So a follower's acknowledgement does not wait for the
// apply of the entries its Ready commits. The loop sends nothing while a
// write is in flight, so the transport is never used by both at once.
func (r *Replica) write(w *readyWrite) {
	start := time.Now()
	if w.log != nil {
		if w.err = w.log.write(); w.err != nil {
			return
		}
		if w.sync {
			r.stats.logSyncNanos.Add(uint64(time.Since(start)))
		}
		if !w.syncDB && len(w.msgs) > 0 {
			r.tr.Send(r.Group(), w.msgs)
			w.msgs = nil
		}
		if r.hand != nil && r.hand.afterLogSync != nil {
			r.hand.afterLogSync()
		}
	}
	if w.err = commitBatch(r.db, w.b, w.syncDB); w.err == nil {
		w.took = time.Since(start)
	}
}

// dropSuperseded returns one Ready's messages without those a later
// message of the same Ready and term to the same peer makes redundant:
//
//   - an append without entries, when another append follows. Such an
//     append only tells a follower a commit index (raft sends one each
//     time the commit moves), and the later append carries a commit
//     index at least as high; to a follower being replicated to it also
//     has the same previous entry, and any entries: the follower does
//     with it alone what it would do with both. (To a follower being
//     probed, a later probe supersedes an earlier one.)
//   - a follower's acknowledgement, when a later one acknowledges at
//     least as far. The leader's progress only moves forward, so the
//     later acknowledgement moves it as far as both, in one commit
//     check. Rejections are never dropped.
//
// Under load about two in five of a leader's empty appends were followed
// so. Dropping one is a lost message to raft, which it is built to
// tolerate; the slice is copied only when something is dropped.
func dropSuperseded(msgs []*pb.Message) []*pb.Message {
	superseded := func(i int) bool {
		m := msgs[i]
		switch m.GetType() {
		case pb.MsgApp:
			if len(m.Entries) > 0 {
				return false
			}
		case pb.MsgAppResp:
			if m.GetReject() {
				return false
			}
		default:
			return false
		}
		for _, later := range msgs[i+1:] {
			if later.GetType() != m.GetType() || later.GetTo() != m.GetTo() || later.GetTerm() != m.GetTerm() {
				continue
			}
			if m.GetType() == pb.MsgApp || (!later.GetReject() && later.GetIndex() >= m.GetIndex()) {
				return true
			}
		}
		return false
	}
	for i := range msgs {
		if !superseded(i) {
			continue
		}
		kept := slices.Clone(msgs[:i])
		for j := i + 1; j < len(msgs); j++ {
			if !superseded(j) {
				kept = append(kept, msgs[j])
			}
		}
		return kept
	}
	return msgs
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
// before its write (see startReady): only a leader's, and only while its
// term and vote stay as last written — a change cannot happen while it
// leads, but if one shows, be conservative and send after.
func (r *Replica) sendsBeforePersisting(leading bool, hs *pb.HardState) bool {
	if hs != nil && (hs.GetTerm() != r.hsTerm || hs.GetVote() != r.hsVote) {
		return false
	}
	return leading
}

// applyCommitted applies ents through b, appends to ds what the own
// proposals they settle get, and records the applied index in b. It
// returns the applied index b records; r.applied moves only once b is
// committed (finishReady), so reads are released against durable state.
func (r *Replica) applyCommitted(b *pebble.Batch, ents []*pb.Entry, ds []delivery) ([]delivery, uint64, error) {
	applied := r.applied
	for _, e := range ents {
		idx := e.GetIndex()
		landed := r.props.takeLanded(idx)
		res, err := r.applyEntry(b, e)
		if err != nil {
			// Nothing of this Ready is applied here, but its entries are
			// committed in the group (and replayed here after a restart):
			// whoever proposed them cannot learn the outcome from this node.
			answerUnknown(landed, ds)
			return nil, 0, err
		}
		ds = r.props.settle(ds, e, landed, res)
		applied = idx
	}
	if len(ents) > 0 {
		if err := r.store.setApplied(b, applied); err != nil {
			return nil, 0, fmt.Errorf("write applied index: %w", err)
		}
	}
	return ds, applied, nil
}

// answerUnknown answers ErrOutcomeUnknown to p (if any) and to the
// proposals in ds that were to be told they applied, when the Ready that
// applies them is not committed because an entry could not be applied.
func answerUnknown(p *proposal, ds []delivery) {
	if p != nil {
		p.finish(proposalResult{err: ErrOutcomeUnknown})
	}
	for _, d := range ds {
		if d.res.err == nil {
			d.p.finish(proposalResult{err: ErrOutcomeUnknown})
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

// commitBatch commits b into db, durably if flush (durable.Commit).
// write calls it; it touches nothing else.
func commitBatch(db *pebble.DB, b *pebble.Batch, flush bool) error {
	var err error
	if flush {
		err = durable.Commit(db, b)
	} else {
		err = b.Commit(pebble.NoSync)
	}
	if err != nil {
		return fmt.Errorf("commit ready: %w", err)
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
	forget, _ := r.tr.(PeerForgetter)
	removed := false
	for id := range old {
		if r.members[id] {
			continue
		}
		removed = true
		if forget != nil && id != r.cfg.ID {
			forget.Forget(id)
		}
	}
	r.dropLease(removed)
	r.log.Info("applied conf change", "index", e.GetIndex(), "voters", cs.GetVoters(), "learners", cs.GetLearners())
	return nil
}
