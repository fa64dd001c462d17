package replica

import (
	"fmt"
	"os"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// run is the loop goroutine: it owns the RawNode, the log store and all
// loop-owned fields of r.
func (r *Replica) run() {
	var tickc <-chan time.Time
	if r.hand != nil {
		tickc = r.hand.tick
	} else {
		ticker := time.NewTicker(r.cfg.TickInterval)
		defer ticker.Stop()
		tickc = ticker.C
	}
	err := r.loop(tickc)
	if err != nil {
		r.log.Error("replica stopped on fatal error", "err", err)
		r.fatalErr = err
	}
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
		r.confStepped.done <- proposalResult{err: ErrOutcomeUnknown}
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

func (r *Replica) loop(tickc <-chan time.Time) error {
	for {
		var handDone chan struct{}
		select {
		case <-tickc:
			r.tick()
		case p := <-r.propc:
			r.props.buf = append(r.props.buf, p)
		case m := <-r.recvc:
			r.step(m)
		case w := <-r.readc:
			r.readJoin(w)
		case id := <-r.unreachc:
			r.rn.ReportUnreachable(id)
		case <-r.campaignc:
			r.campaign()
		case req := <-r.confc:
			r.proposeConf(req)
		case req := <-r.restorec:
			r.stepRestore(req)
		case d := <-r.snapDonec:
			r.snapshotDone(d)
		case s := <-r.handSteps:
			if s.before != nil {
				s.before()
			}
			handDone = s.done
		case <-r.stopc:
			return nil
		}
		r.drain()
		r.flushProposals()
		r.maybeStartRead()
		for r.rn.HasReady() {
			if err := r.handleReady(); err != nil {
				return err
			}
		}
		r.declineRestore()
		r.dropUnsentSnapshots()
		if err := r.maybeCompact(); err != nil {
			return err
		}
		r.publishStatus()
		if handDone != nil {
			close(handDone)
		}
	}
}

// drain folds up to MaxBatch already queued inputs into this iteration.
func (r *Replica) drain() {
	for range r.cfg.MaxBatch {
		select {
		case p := <-r.propc:
			r.props.buf = append(r.props.buf, p)
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
	r.rn.Tick()
	r.ticks++
	r.retryReads()
}

// campaign runs on the loop.
func (r *Replica) campaign() {
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
	if err := validateMessage(m, r.peerView(), false); err != nil {
		r.dropped(m, err)
		return
	}
	if err := r.rn.Step(m); err != nil {
		r.log.Debug("raft rejected message", "type", m.GetType(), "from", m.GetFrom(), "err", err)
	}
}

// peerView is what validateMessage checks a frame against. Loop goroutine.
func (r *Replica) peerView() peerView {
	return peerView{self: r.cfg.ID, term: r.hsTerm, lastIndex: r.store.lastIndex, members: r.members}
}

// maybeCompact drops applied log entries beyond Config.LogRetention, never
// past the index of a snapshot being sent (its follower needs the entries
// after it).
func (r *Replica) maybeCompact() error {
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
