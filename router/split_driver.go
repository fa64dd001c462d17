package router

// The split driver (docs/split.md): the meta leader walks each split
// through its phases, one idempotent step at a time, recording every phase
// in the meta group before the next step. A new meta leader resumes from
// the record (resumeSplits); every step is safe to repeat.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/wire"
)

// splitStepTimeout bounds one step of the driver; a failed step is retried.
const splitStepTimeout = 10 * time.Second

// splitDrivers tracks the drivers running on this router.
type splitDrivers struct {
	mu      sync.Mutex
	running map[uint64]bool
	once    sync.Once
	hooks   atomic.Pointer[splitTestHooks] // nil outside tests

	// step is the driver's lock (a channel so a caller can give up when
	// its context ends): a driver holds it for one step, from reading the
	// record to recording the next phase, and an abandon for its whole
	// decision. It is held across network calls and meta proposals; it is
	// taken before control.MetaTable.mu, never while holding another lock.
	step chan struct{}
}

// lockSplits takes the driver's lock; false if ctx ended or the router closed
// first.
func (r *Router) lockSplits(ctx context.Context) bool {
	select {
	case r.splits.step <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	case <-r.done:
		return false
	}
}

func (r *Router) unlockSplits() { <-r.splits.step }

// splitTestHooks let this package's tests steer the driver into a chosen
// interleaving with an abandon; nil (always, outside tests) changes nothing.
type splitTestHooks struct {
	// beforeStep is called by the driver before it takes the driver's
	// lock for rec's step (rec as read before the lock).
	beforeStep func(rec wire.SplitStatus)
	// call wraps every request sent to a cluster's leader (callCluster):
	// send sends req and returns the answer; call returns what the caller
	// sees.
	call func(ctx context.Context, cluster string, req *wire.Request, send func() *wire.Response) *wire.Response
}

func (r *Router) findSplit(id uint64) (wire.SplitStatus, bool) {
	for _, s := range r.meta.Splits() {
		if s.ID == id {
			return s, true
		}
	}
	return wire.SplitStatus{}, false
}

// isMetaLeader reports whether this router leads the meta group.
func (r *Router) isMetaLeader() bool {
	rep := r.meta.Replica()
	return rep.Leader() != 0 && rep.Leader() == rep.Status().ID
}

// startSplits starts the loop that resumes unfinished splits whenever this
// router leads the meta group. Idempotent.
func (r *Router) startSplits() {
	if r.meta == nil {
		return
	}
	r.splits.once.Do(func() {
		r.splits.running = map[uint64]bool{}
		go func() {
			tk := time.NewTicker(250 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-r.done:
					return
				case <-tk.C:
				}
				if !r.isMetaLeader() {
					continue
				}
				for _, s := range r.meta.Splits() {
					if !s.Phase.Final() {
						r.driveSplit(s.ID)
					}
				}
			}
		}()
	})
}

// driveSplit starts the driver of split id unless one runs.
func (r *Router) driveSplit(id uint64) {
	r.splits.mu.Lock()
	defer r.splits.mu.Unlock()
	if r.splits.running[id] {
		return
	}
	r.splits.running[id] = true
	go func() {
		defer func() {
			r.splits.mu.Lock()
			delete(r.splits.running, id)
			r.splits.mu.Unlock()
		}()
		r.runSplit(id)
	}()
}

func (r *Router) runSplit(id uint64) {
	backoff := 50 * time.Millisecond
	held := false
	for {
		select {
		case <-r.done:
			return
		default:
		}
		rec, ok := r.findSplit(id)
		if !ok || rec.Phase.Final() || !r.isMetaLeader() {
			return
		}
		if rec.Phase == r.cfg.TestHoldSplitAt && !held {
			held = true
			r.log.Warn("split: holding at this phase (test switch CLEAVE_TEST_SPLIT_HOLD)", "split", id, "phase", rec.Phase, "for", r.cfg.TestHoldSplitDuration)
			if !r.wait(context.Background(), r.cfg.TestHoldSplitDuration) {
				return
			}
			continue
		}
		if h := r.splits.hooks.Load(); h != nil && h.beforeStep != nil {
			h.beforeStep(rec)
		}
		stop, err := r.lockedStep(id)
		if stop {
			return
		}
		if err == nil {
			backoff = 50 * time.Millisecond
			continue
		}
		r.log.Info("split: step failed; retrying", "split", id, "phase", rec.Phase, "err", err)
		if !r.wait(context.Background(), backoff) {
			return
		}
		backoff = min(2*backoff, time.Second)
	}
}

// lockedStep does one step of split id under the driver's lock. It reads
// the record again under the lock: an abandon decides under the same lock,
// so a step never starts from a phase an abandon has ended, and never runs
// while an abandon fences the source. stop reports that the driver should
// end (the split is done, the router closed or no longer leads).
func (r *Router) lockedStep(id uint64) (stop bool, err error) {
	if !r.lockSplits(context.Background()) {
		return true, nil
	}
	defer r.unlockSplits()
	rec, ok := r.findSplit(id)
	if !ok || rec.Phase.Final() || !r.isMetaLeader() {
		return true, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), splitStepTimeout)
	defer cancel()
	return false, r.splitStep(ctx, rec)
}

// callCluster sends req to cluster id's leader, following NOT_LEADER.
func (r *Router) callCluster(ctx context.Context, id string, req *wire.Request) *wire.Response {
	send := func() *wire.Response {
		return r.forward(ctx, req, func(t *wire.TableInfo) (string, bool) {
			_, ok := control.Cluster(t, id)
			return id, ok
		})
	}
	if h := r.splits.hooks.Load(); h != nil && h.call != nil {
		return h.call(ctx, id, req, send)
	}
	return send()
}

// callNode sends req to one address.
func (r *Router) callNode(ctx context.Context, addr string, req *wire.Request) (*wire.Response, error) {
	conn, err := r.pool.Get(ctx, addr)
	if err != nil {
		return nil, err
	}
	return conn.Call(ctx, req)
}

// splitStep does the work of rec's phase and records the next phase.
func (r *Router) splitStep(ctx context.Context, rec wire.SplitStatus) error {
	next := rec
	var table func(*wire.TableInfo) error
	switch rec.Phase {
	case wire.SplitPlanned:
		for _, m := range rec.Nodes {
			resp := r.callCluster(ctx, rec.Cluster, &wire.Request{Op: wire.OpAddLearner, Member: &wire.Member{ID: m.ID, Addr: m.Addr}})
			if err := resp.Err(); err != nil {
				return fmt.Errorf("add learner %d to %s: %w", m.ID, rec.Cluster, err)
			}
		}
		next.Phase = wire.SplitLearnersAdded
	case wire.SplitLearnersAdded:
		if err := r.learnersCaughtUp(ctx, rec); err != nil {
			return err
		}
		next.Phase = wire.SplitCaughtUp
	case wire.SplitCaughtUp:
		resp := r.callCluster(ctx, rec.Cluster, &wire.Request{Op: wire.OpSplitFork, Split: &wire.SplitSpec{
			Cluster: rec.Cluster, NewCluster: rec.NewCluster, Nodes: rec.Nodes, At: rec.At,
			Table: r.table.Current().Version + 1,
		}})
		if resp.Code == wire.Conflict {
			// The source was fenced by an abandon that may not have got
			// as far as removing the learners or recording its phase.
			if err := r.removeLearners(ctx, rec); err != nil {
				return err
			}
			next.Phase = wire.SplitAbandoned
			break
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("SPLIT on %s: %w", rec.Cluster, err)
		}
		next.Phase, next.Index = wire.SplitCommitted, resp.Split.Index
	case wire.SplitCommitted:
		if err := r.newClusterUp(ctx, rec); err != nil {
			return err
		}
		next.Phase = wire.SplitTableUpdated
		table = func(t *wire.TableInfo) error { return control.SplitTable(t, &rec) }
	case wire.SplitTableUpdated:
		if err := r.removeLearners(ctx, rec); err != nil {
			return err
		}
		for more := true; more; {
			resp := r.callCluster(ctx, rec.Cluster, &wire.Request{Op: wire.OpSplitCleanup, Limit: 512})
			if err := resp.Err(); err != nil {
				return fmt.Errorf("clean the moved half from %s: %w", rec.Cluster, err)
			}
			more = resp.Exists
		}
		next.Phase = wire.SplitCleaned
	default:
		return nil
	}
	next.Error = ""
	got, err := r.meta.RecordSplit(ctx, next, table)
	if err != nil {
		return err
	}
	r.log.Info("split: phase recorded", "split", got.ID, "cluster", got.Cluster, "new_cluster", got.NewCluster, "phase", got.Phase, "index", got.Index, "version", got.Version)
	return nil
}

// removeLearners takes rec's new nodes out of the source's group; removing
// a node that is not a member is a no-op, so it is safe to repeat.
func (r *Router) removeLearners(ctx context.Context, rec wire.SplitStatus) error {
	for _, m := range rec.Nodes {
		resp := r.callCluster(ctx, rec.Cluster, &wire.Request{Op: wire.OpRemoveMember, Member: &wire.Member{ID: m.ID}})
		if err := resp.Err(); err != nil {
			return fmt.Errorf("remove learner %d from %s: %w", m.ID, rec.Cluster, err)
		}
	}
	return nil
}

// learnersCaughtUp checks on the source's leader that every new node is a
// learner within a small lag of its log.
func (r *Router) learnersCaughtUp(ctx context.Context, rec wire.SplitStatus) error {
	resp := r.callCluster(ctx, rec.Cluster, &wire.Request{Op: wire.OpStatus})
	if err := resp.Err(); err != nil {
		return err
	}
	st := resp.Node
	if st == nil {
		return errors.New("status without node")
	}
	if st.Role != "leader" && st.LeaderAddr != "" {
		resp, err := r.callNode(ctx, st.LeaderAddr, &wire.Request{Op: wire.OpStatus})
		if err != nil {
			return err
		}
		if resp.Node == nil {
			return resp.Err()
		}
		st = resp.Node
	}
	if st.Role != "leader" {
		return fmt.Errorf("%s has no leader", rec.Cluster)
	}
	for _, m := range rec.Nodes {
		i := slices.IndexFunc(st.Members, func(x wire.MemberStatus) bool { return x.ID == m.ID })
		if i < 0 {
			return fmt.Errorf("node %d is not a member of %s", m.ID, rec.Cluster)
		}
		if ms := st.Members[i]; ms.Match == 0 || ms.Match+splitMaxLag < st.Commit {
			return fmt.Errorf("learner %d at %d, %s commit %d", m.ID, ms.Match, rec.Cluster, st.Commit)
		}
	}
	return nil
}

// splitMaxLag matches the node's check before it proposes SPLIT.
const splitMaxLag = 100

// newClusterCallTimeout bounds one STATUS call of newClusterUp.
const newClusterCallTimeout = time.Second

// newClusterUp waits until the new cluster's nodes have left the source:
// all of them, or a majority once they have had a few seconds.
func (r *Router) newClusterUp(ctx context.Context, rec wire.SplitStatus) error {
	want := wire.Range{Start: rec.At, End: rec.Range.End}
	start := time.Now()
	for {
		up := 0
		for _, m := range rec.Nodes {
			// Each call is bounded on its own: a node that hangs (its
			// socket accepts, nothing answers) must not hold the wait past
			// the majority rule below.
			cctx, cancel := context.WithTimeout(ctx, newClusterCallTimeout)
			resp, err := r.callNode(cctx, m.Addr, &wire.Request{Op: wire.OpStatus})
			cancel()
			if err == nil && resp.Node != nil && resp.Node.Range == want && len(resp.Node.Members) == len(rec.Nodes) {
				up++
			}
		}
		if up == len(rec.Nodes) || (up > len(rec.Nodes)/2 && time.Since(start) > 3*time.Second) {
			return nil
		}
		if !r.wait(ctx, 10*time.Millisecond) {
			return fmt.Errorf("%d of %d nodes of %s have left %s", up, len(rec.Nodes), rec.NewCluster, rec.Cluster)
		}
	}
}

// handleSplit serves OpSplit: start (or return) a split, or abandon one.
// Any router takes it and passes it on to the meta leader.
func (r *Router) handleSplit(ctx context.Context, req *wire.Request) *wire.Response {
	if r.meta == nil {
		return wire.Errorf(req.ID, wire.Invalid, "splits need the routers' meta group (this router uses a table file)")
	}
	sp := req.Split
	if sp == nil {
		// No spec: report the splits (the CLI polls this way).
		return &wire.Response{Status: &wire.Status{Router: r.cfg.ID, Version: r.table.Current().Version, Splits: r.meta.Splits()}}
	}
	if !r.isMetaLeader() {
		rep := r.meta.Replica()
		addr := rep.MemberAddr(rep.Leader())
		if addr == "" {
			return wire.Errorf(req.ID, wire.Unavailable, "the meta group has no leader; retry")
		}
		out := *req
		out.ID = 0
		resp, err := r.callNode(ctx, addr, &out)
		if err != nil {
			return wire.Errorf(req.ID, wire.Unavailable, "meta leader %s: %v", addr, err)
		}
		return resp
	}
	r.startSplits()
	splits := r.meta.Splits()
	if sp.Abandon {
		return r.abandonSplit(ctx, req, sp)
	}
	for _, s := range splits {
		if s.NewCluster == sp.NewCluster && s.Cluster == sp.Cluster && s.Phase != wire.SplitAbandoned {
			if !s.Phase.Final() {
				r.driveSplit(s.ID)
			}
			return &wire.Response{Split: &s}
		}
	}
	var id uint64
	for _, s := range splits {
		id = max(id, s.ID)
	}
	rec, err := control.PlanSplit(r.table.Current(), splits, id+1, sp)
	if err != nil {
		return wire.Errorf(req.ID, wire.Invalid, "split %s: %v", sp.Cluster, err)
	}
	if rec, err = r.meta.RecordSplit(ctx, rec, nil); err != nil {
		return wire.Errorf(req.ID, wire.Unavailable, "record split: %v", err)
	}
	r.log.Info("split: planned", "split", rec.ID, "cluster", rec.Cluster, "new_cluster", rec.NewCluster, "at", rec.At)
	r.driveSplit(rec.ID)
	return &wire.Response{Split: &rec}
}

// abandonSplit stops a split of sp.Cluster that has not committed SPLIT.
//
// It decides under the driver's lock, so no step of the driver runs
// meanwhile, and reads the record after a ReadIndex, so it sees the phase
// the meta group committed last. Then, whatever that phase, it fences the
// source first: an abandon entry in the source's log, after which a SPLIT
// (from this driver, or from a driver that crashed with a SPLIT_FORK in
// flight) is refused when it applies. The source's log orders the two: if
// SPLIT applied first, the source answers CONFLICT, the abandon is refused
// and the split goes on. Only behind the fence are the learners removed and
// abandoned recorded; a failure after the fence leaves a fenced source,
// which a retried abandon, or the driver at caught-up, finishes.
func (r *Router) abandonSplit(ctx context.Context, req *wire.Request, sp *wire.SplitSpec) *wire.Response {
	if !r.lockSplits(ctx) {
		return wire.Errorf(req.ID, wire.Unavailable, "abandon %s: the split driver did not finish its step in time; nothing was done", sp.Cluster)
	}
	defer r.unlockSplits()
	if err := r.meta.Replica().ReadIndex(ctx); err != nil {
		return wire.Errorf(req.ID, wire.Unavailable, "abandon %s: read the meta group: %v; nothing was done", sp.Cluster, err)
	}
	var rec wire.SplitStatus
	found := false
	for _, s := range r.meta.Splits() {
		if s.Cluster == sp.Cluster && !s.Phase.Final() {
			rec, found = s, true
		}
	}
	if !found {
		return wire.Errorf(req.ID, wire.NotFound, "no split of %s in progress", sp.Cluster)
	}
	if err := control.NextPhase(rec.Phase, wire.SplitAbandoned); err != nil {
		return wire.Errorf(req.ID, wire.Conflict, "split %d: %v", rec.ID, err)
	}
	resp := r.callCluster(ctx, rec.Cluster, &wire.Request{Op: wire.OpSplitFork, Split: &wire.SplitSpec{Cluster: rec.Cluster, NewCluster: rec.NewCluster, Abandon: true}})
	if resp.Code == wire.Conflict {
		r.driveSplit(rec.ID)
		return wire.Errorf(req.ID, wire.Conflict, "split %d: %s has already committed SPLIT, so it cannot be abandoned and goes on (%s)", rec.ID, rec.Cluster, resp.Message)
	}
	if err := resp.Err(); err != nil {
		return wire.Errorf(req.ID, resp.Code, "split %d: fence %s: %v", rec.ID, rec.Cluster, err)
	}
	if err := r.removeLearners(ctx, rec); err != nil {
		return wire.Errorf(req.ID, wire.Unavailable, "split %d: %s is fenced, but: %v; retry the abandon", rec.ID, rec.Cluster, err)
	}
	rec.Phase = wire.SplitAbandoned
	got, err := r.meta.RecordSplit(ctx, rec, nil)
	if err != nil {
		code := wire.Unavailable
		switch {
		case errors.Is(err, control.ErrBadTransition):
			code = wire.Conflict
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
			code = wire.Timeout
		}
		return wire.Errorf(req.ID, code, "split %d: %s is fenced, but recording abandoned failed: %v", rec.ID, rec.Cluster, err)
	}
	r.log.Info("split: abandoned", "split", got.ID, "cluster", got.Cluster, "new_cluster", got.NewCluster)
	return &wire.Response{Split: &got}
}
