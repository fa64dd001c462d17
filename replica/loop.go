package replica

import (
	"fmt"
	"os"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/cleavefs/cleave/internal/durable"
)

// run is the loop goroutine: it owns the RawNode, the log store and all
// loop-owned fields of r. It starts the writer goroutine and ends it.
func (r *Replica) run() {
	var tickc <-chan time.Time
	if r.hand != nil {
		tickc = r.hand.tick
	} else {
		r.ticker = time.NewTicker(r.cfg.TickInterval)
		defer r.ticker.Stop()
		tickc = r.ticker.C
	}
	go r.writer()
	err := r.loop(tickc)
	if err != nil {
		r.log.Error("replica stopped on fatal error", "err", err)
		r.fatalErr = err
	}
	close(r.writec)
	for range r.writtenc {
		// The loop returned with no write in flight; this only waits for
		// the writer goroutine to end.
	}
	if err == nil {
		// A clean stop leaves the state durable, so that the next open
		// replays nothing from the log: the DB may run without a WAL.
		// Replaying is correct too, so a flush that fails or takes
		// too long is only logged.
		if err := durable.Flush(r.db); err != nil {
			r.log.Warn("flush at close", "err", err)
		}
	}
	r.store.close()
	close(r.loopDone)
	r.sendCancel()
	r.wg.Wait()
	r.dropUnsentSnapshots()
	if req := r.pendingRestore; req != nil {
		r.pendingRestore = nil
		r.cfg.FS.Remove(req.path)
		req.done <- ErrStopped
	}
	r.recvMu.Lock()
	if r.recv != nil {
		r.recv.abort()
		r.recv = nil
	}
	r.recvMu.Unlock()
	if r.confStepped != nil {
		r.confStepped.finish(proposalResult{err: ErrOutcomeUnknown})
		r.confStepped = nil
	}
	r.failProposals()
	r.failReads()
	r.publishStatus()
	if r.tmpSnapDir != "" {
		os.RemoveAll(r.tmpSnapDir)
	}
	close(r.donec)
}

// loop is the Ready loop. At most one Ready is in flight: startReady
// builds its batch and, under load, hands it to the writer goroutine when
// it must be fsynced (committing it at once otherwise), and until the
// writer hands it back (writtenc) the loop keeps folding inputs into raft
// — peer messages, proposals, reads, ticks — without taking the next
// Ready. So while one fsync runs, the next Ready fills with everything
// that arrives meanwhile, and the entries per fsync grow with the load.
// Under a light load the loop writes a synced batch itself (writesInPlace).
//
// Why this keeps every promise (docs/robustness.md has the argument in full):
// each Ready's entries are synced to the log before its batch — HardState,
// the state its committed entries produce and the applied index, atomic —
// is committed, so a restart finds every entry a surviving batch applied
// and replays the rest exactly (on a leader, committed entries already in
// the durable log may go first, in an unsynced batch of their own:
// applyDurable); messages that
// acknowledge entries are sent only once the entries are synced, and
// messages that grant votes (or go with any other change of term or vote)
// only in finishReady, after the batch is durable; results are delivered, and r.applied (which releases
// reads and is published) moves, only once the batch that applied them is
// committed; and raft is advanced (which steps the leader's own
// acknowledgement of its entries) only after the write, so no entry counts as
// committed before the leader's copy is durable. Stepping into
// raft between Ready and Advance is what raft's own node.go does. What
// needs the DB to match the loop's view waits for the write: restoring a
// snapshot, compaction, declining an unneeded snapshot and dropping an
// unsent one run only with no write in flight, and a hand-driven loop finishes each write within
// its step so that scenarios replay exactly.
func (r *Replica) loop(tickc <-chan time.Time) error {
	for {
		var handDone chan struct{}
		var written <-chan *readyWrite
		restorec := r.restorec
		if r.writing != nil {
			written, restorec = r.writtenc, nil
		}
		select {
		case w := <-written:
			if err := r.finish(w); err != nil {
				return err
			}
		case <-tickc:
			r.tick()
		case p := <-r.propc:
			r.propose(p)
		case m := <-r.recvc:
			r.step(m)
		case w := <-r.readc:
			r.readJoin(w)
		case id := <-r.unreachc:
			r.rn.ReportUnreachable(id)
		case <-r.campaignc:
			r.campaign()
		case <-r.wakec:
			r.noteActivity()
		case req := <-r.confc:
			r.noteActivity()
			r.proposeConf(req)
		case req := <-restorec:
			r.noteActivity()
			r.stepRestore(req)
		case d := <-r.snapDonec:
			r.snapshotDone(d)
		case s := <-r.handSteps:
			if s.before != nil {
				s.before()
			}
			handDone = s.done
		case <-r.stopc:
			return r.finishInFlight()
		}
		if err := r.iterate(); err != nil {
			return err
		}
		if handDone != nil {
			close(handDone)
		}
	}
}

// iterate folds queued inputs into raft and, unless a write is in flight,
// starts the next Ready (handling them to the end while the loop is
// driven by hand) and does what needs no write in flight.
func (r *Replica) iterate() error {
	r.drain()
	if r.writing == nil || len(r.props.buf) >= r.cfg.MaxBatch {
		// While a write is in flight, proposals wait for it in the
		// buffer: stepped one by one, each would become its own append
		// message to every follower; stepped together, they are one.
		r.flushProposals()
	}
	r.maybeStartRead()
	for r.writing == nil && r.rn.HasReady() {
		w, err := r.startReady()
		if err != nil {
			return err
		}
		r.writing = w
		if r.hand != nil {
			if err := r.finishInFlight(); err != nil {
				return err
			}
		}
	}
	if r.writing == nil {
		// Every Ready raft had is taken: a received snapshot it did not
		// ask to install, or a stream it prepared but did not send, is
		// not needed. (With a write in flight, the next Ready may carry
		// them.)
		r.declineRestore()
		r.dropUnsentSnapshots()
		if err := r.maybeCompact(); err != nil {
			return err
		}
	}
	r.publishStatus()
	return nil
}

// finish completes the write in flight w, which the writer handed back.
func (r *Replica) finish(w *readyWrite) error {
	r.writing = nil
	r.noteLoad(r.arrived)
	return r.finishReady(w)
}

// lightLoad is how many inputs may arrive during one synced write for the
// load to count as light: two from each peer, as with a lone proposal in
// flight (a follower's acknowledgement of its entry, and at times its
// answer to a heartbeat or a notice).
func (r *Replica) lightLoad() int { return 2 * max(1, len(r.members)-1) }

// writesInPlace reports whether the loop should write the synced batch of
// the next Ready itself rather than hand it to the writer goroutine. The
// writer lets the loop fold inputs in while the disk works, which pays
// when many arrive meanwhile; when few do (one client, an idle group),
// the hand-off and the hand-back are two goroutine wake-ups on the path of
// every write, and the loop would only have waited. The last synced write
// decides: in place after a write that saw at most lightLoad inputs
// arrive, else handed off.
func (r *Replica) writesInPlace() bool { return !r.loaded }

// noteLoad records how many inputs arrived during the synced write just
// ended, for writesInPlace.
func (r *Replica) noteLoad(arrived int) { r.loaded = arrived > r.lightLoad() }

// arrive counts an input folded in while a write is in flight.
func (r *Replica) arrive() {
	if r.writing != nil {
		r.arrived++
	}
}

// queued is how many inputs wait in the loop's queues: those that
// arrived during a write in place.
func (r *Replica) queued() int { return len(r.propc) + len(r.recvc) + len(r.readc) }

// finishInFlight waits for the write in flight, if any, and completes it.
func (r *Replica) finishInFlight() error {
	if r.writing == nil {
		return nil
	}
	return r.finish(<-r.writtenc)
}

// drain folds up to MaxBatch already queued inputs into this iteration.
func (r *Replica) drain() {
	for range r.cfg.MaxBatch {
		select {
		case p := <-r.propc:
			r.propose(p)
		case m := <-r.recvc:
			r.step(m)
		case w := <-r.readc:
			r.readJoin(w)
		case id := <-r.unreachc:
			r.rn.ReportUnreachable(id)
		case <-r.campaignc:
			r.campaign()
		case d := <-r.snapDonec:
			r.snapshotDone(d)
		default:
			return
		}
	}
}

func (r *Replica) tick() {
	r.held.due = len(r.held.msgs) > 0
	r.rn.Tick()
	r.ticks++
	r.stats.ticks.Add(1)
	r.retryReads()
	r.maybeIdle()
}

// propose queues p for the next flush into raft.
func (r *Replica) propose(p *proposal) {
	r.noteActivity()
	r.arrive()
	r.props.buf = append(r.props.buf, p)
}

// campaign runs on the loop.
func (r *Replica) campaign() {
	r.noteActivity()
	if r.rn.BasicStatus().Lead != 0 {
		return
	}
	if err := r.rn.Campaign(); err != nil {
		r.log.Debug("campaign", "err", err)
	}
}

// step hands a peer's message to raft unless validateMessage refuses it
// (a forged or corrupt frame must never reach raft, which panics on some
// and would act on others). Snapshots arrive through ReceiveSnapshot,
// with their data, never here.
func (r *Replica) step(m *pb.Message) {
	r.arrive()
	if err := validateMessage(m, r.peerView(), false); err != nil {
		r.dropped(m, err)
		return
	}
	if r.refusesVotes(m) {
		r.stats.refusedVotes.Add(1)
		r.log.Debug("restarted less than an election timeout ago: vote request not answered", "type", m.GetType(), "from", m.GetFrom())
		return
	}
	r.noteMessage(m)
	if err := r.rn.Step(m); err != nil {
		r.log.Debug("raft rejected message", "type", m.GetType(), "from", m.GetFrom(), "err", err)
		return
	}
	r.noteAcked(m)
	r.noteLeaseAck(m)
}

// peerView is what validateMessage checks a frame against. Loop goroutine.
func (r *Replica) peerView() peerView {
	return peerView{self: r.cfg.ID, term: r.hsTerm, lastIndex: r.logLast(), members: r.members}
}

// logLast is the last index of the log as raft has handed it out: the
// last entry of the Ready being written, if it has entries, else the
// durable log's. A leader sends a Ready's appends before its own write
// ends, so a follower may acknowledge them while it is in flight; entries
// raft holds that no Ready has carried yet were sent to no one.
func (r *Replica) logLast() uint64 {
	if w := r.writing; w != nil && len(w.rd.Entries) > 0 {
		return w.rd.Entries[len(w.rd.Entries)-1].GetIndex()
	}
	return r.store.lastIndex
}

// maybeCompact drops applied log entries beyond Config.LogRetention, never
// past the index of a snapshot being sent (its follower needs the entries
// after it), and then the segment files of entries dropped before
// (maybeCompactFiles).
func (r *Replica) maybeCompact() error {
	if err := r.compactLog(); err != nil {
		return err
	}
	return r.maybeCompactFiles()
}

// maybeCompactFiles removes the segment files that hold only entries the
// log dropped, once the state and the record of that are durable: it
// starts a flush of the DB when the log has dropped Config.LogRetention/4
// entries (at least 1) past the files, and removes the files up to where
// the log started when the flush began, on a later call after it ended.
// A flush writes what the DB's memtables hold, so it often falls between
// the DB's own flushes rather than adding one.
func (r *Replica) maybeCompactFiles() error {
	if r.filesFlush != nil {
		select {
		case <-r.filesFlush:
		default:
			return nil
		}
		r.filesFlush = nil
		if err := r.store.compactFiles(r.filesFlushTo); err != nil {
			return fmt.Errorf("drop log segments to %d: %w", r.filesFlushTo, err)
		}
		r.filesTo = max(r.filesTo, r.filesFlushTo)
	}
	if r.store.truncIndex < r.filesTo+max(1, r.cfg.LogRetention/4) {
		return nil
	}
	c, err := r.db.AsyncFlush()
	if err != nil {
		return fmt.Errorf("flush before dropping log segments: %w", err)
	}
	r.filesFlush, r.filesFlushTo = c, r.store.truncIndex
	return nil
}

// compactLog drops applied log entries beyond Config.LogRetention, never
// past the index of a snapshot being sent.
func (r *Replica) compactLog() error {
	ret := r.cfg.LogRetention
	if r.applied <= ret {
		return nil
	}
	to := r.applied - ret
	for _, s := range r.inflight {
		to = min(to, s.index)
	}
	if to < r.store.truncIndex+max(1, ret/16) {
		return nil
	}
	if err := r.store.compact(to); err != nil {
		return fmt.Errorf("compact log to %d: %w", to, err)
	}
	return nil
}
