package control

// The split driver (docs/split.md): the meta leader walks each split
// through its phases, one idempotent step at a time, recording every phase
// in the meta group before the next step. A new meta leader resumes from
// the record (Start's loop); every step is safe to repeat.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// splitStepTimeout bounds one step of the driver; a failed step is retried.
const splitStepTimeout = 10 * time.Second

// Clusters is how the split driver reaches the storage clusters; the
// router implements it over its connection pools. Its methods are called
// from the driver's goroutines and from Handle's caller, concurrently, and
// may block until ctx ends.
type Clusters interface {
	// CallCluster sends req to the leader of cluster id as the routing
	// table names it, following NOT_LEADER and retrying within ctx; the
	// answer is never nil (a failure is an error response). An op of the
	// nodes' peer plane (wire.NodePlane) goes to the members' peer
	// addresses.
	CallCluster(ctx context.Context, id string, req *wire.Request) *wire.Response
	// CallNode sends req to the one node at addr, without retries.
	CallNode(ctx context.Context, addr string, req *wire.Request) (*wire.Response, error)
}

// DriverConfig configures a Driver.
type DriverConfig struct {
	Meta     *MetaTable   // the meta group member whose records are driven; required
	Clusters Clusters     // reaches the source and the new cluster; required
	Logger   *slog.Logger // required

	// HoldAt is a test-only switch: the driver holds every split for
	// HoldFor when it reaches this phase, so tests can crash processes at
	// a chosen phase. Empty (always, outside tests): no holding.
	HoldAt  wire.SplitPhase
	HoldFor time.Duration
}

// Driver drives the splits recorded in the meta group while this member
// leads it. Safe for concurrent use.
type Driver struct {
	cfg      DriverConfig
	meta     *MetaTable
	clusters Clusters
	log      *slog.Logger
	done     chan struct{} // closed by Close

	mu      sync.Mutex                     // guards running; a leaf lock
	running map[uint64]bool                // split id → a goroutine drives it
	once    sync.Once                      // starts the resume loop
	hooks   atomic.Pointer[splitTestHooks] // nil outside tests
	closed  sync.Once

	// step is the driver's lock (a channel so a caller can give up when
	// its context ends): a driver holds it for one step, from reading the
	// record to recording the next phase, and an abandon for its whole
	// decision. It is held across calls to the clusters and meta
	// proposals, on purpose: the step is a read-decide-write that an
	// abandon must not interleave with. No other lock is held when it is
	// taken.
	step chan struct{}
}

// NewDriver returns a driver for cfg; Start begins resuming splits.
func NewDriver(cfg DriverConfig) *Driver {
	return &Driver{
		cfg: cfg, meta: cfg.Meta, clusters: cfg.Clusters, log: cfg.Logger,
		done:    make(chan struct{}),
		running: map[uint64]bool{},
		step:    make(chan struct{}, 1),
	}
}

// Close stops the resume loop and every driver at its next step; it does
// not wait for a step in flight.
func (d *Driver) Close() { d.closed.Do(func() { close(d.done) }) }

// SetTestHooks installs hooks that let tests steer the driver into a
// chosen interleaving with an abandon; either may be nil. For tests only:
// beforeStep is called before the driver takes its lock for rec's step
// (rec as read before the lock); call wraps every request the driver sends
// to a cluster's leader (send sends it; call returns what the driver sees).
func (d *Driver) SetTestHooks(beforeStep func(rec wire.SplitStatus), call func(ctx context.Context, cluster string, req *wire.Request, send func() *wire.Response) *wire.Response) {
	d.hooks.Store(&splitTestHooks{beforeStep: beforeStep, call: call})
}

// lockSplits takes the driver's lock; false if ctx ended or the driver
// closed first.
func (d *Driver) lockSplits(ctx context.Context) bool {
	select {
	case d.step <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	case <-d.done:
		return false
	}
}

func (d *Driver) unlockSplits() { <-d.step }

// splitTestHooks are SetTestHooks'; nil (always, outside tests) changes
// nothing.
type splitTestHooks struct {
	// beforeStep is called by the driver before it takes the driver's
	// lock for rec's step (rec as read before the lock).
	beforeStep func(rec wire.SplitStatus)
	// call wraps every request sent to a cluster's leader (callCluster):
	// send sends req and returns the answer; call returns what the caller
	// sees.
	call func(ctx context.Context, cluster string, req *wire.Request, send func() *wire.Response) *wire.Response
}

func (d *Driver) findSplit(id uint64) (wire.SplitStatus, bool) {
	for _, s := range d.meta.Splits() {
		if s.ID == id {
			return s, true
		}
	}
	return wire.SplitStatus{}, false
}

// Start starts the loop that resumes unfinished splits whenever this
// member leads the meta group. Idempotent.
func (d *Driver) Start() {
	d.once.Do(func() {
		go func() {
			tk := time.NewTicker(250 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-d.done:
					return
				case <-tk.C:
				}
				if !d.meta.IsLeader() {
					continue
				}
				for _, s := range d.meta.Splits() {
					if !s.Phase.Final() {
						d.driveSplit(s.ID)
					}
				}
			}
		}()
	})
}

// driveSplit starts the driver of split id unless one runs.
func (d *Driver) driveSplit(id uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running[id] {
		return
	}
	d.running[id] = true
	go func() {
		defer func() {
			d.mu.Lock()
			delete(d.running, id)
			d.mu.Unlock()
		}()
		d.runSplit(id)
	}()
}

func (d *Driver) runSplit(id uint64) {
	backoff := 50 * time.Millisecond
	held := false
	for {
		select {
		case <-d.done:
			return
		default:
		}
		rec, ok := d.findSplit(id)
		if !ok || rec.Phase.Final() || !d.meta.IsLeader() {
			return
		}
		if rec.Phase == d.cfg.HoldAt && !held {
			held = true
			d.log.Warn("split: holding at this phase (test switch CLEAVE_TEST_SPLIT_HOLD)", "split", id, "phase", rec.Phase, "for", d.cfg.HoldFor)
			if !d.wait(context.Background(), d.cfg.HoldFor) {
				return
			}
			continue
		}
		if h := d.hooks.Load(); h != nil && h.beforeStep != nil {
			h.beforeStep(rec)
		}
		stop, err := d.lockedStep(id)
		if stop {
			return
		}
		if err == nil {
			backoff = 50 * time.Millisecond
			continue
		}
		d.log.Info("split: step failed; retrying", "split", id, "phase", rec.Phase, "err", err)
		if !d.wait(context.Background(), backoff) {
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
func (d *Driver) lockedStep(id uint64) (stop bool, err error) {
	if !d.lockSplits(context.Background()) {
		return true, nil
	}
	defer d.unlockSplits()
	rec, ok := d.findSplit(id)
	if !ok || rec.Phase.Final() || !d.meta.IsLeader() {
		return true, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), splitStepTimeout)
	defer cancel()
	return false, d.splitStep(ctx, rec)
}

// callCluster sends req to cluster id's leader, through the test hook if
// one is set.
func (d *Driver) callCluster(ctx context.Context, id string, req *wire.Request) *wire.Response {
	send := func() *wire.Response { return d.clusters.CallCluster(ctx, id, req) }
	if h := d.hooks.Load(); h != nil && h.call != nil {
		return h.call(ctx, id, req, send)
	}
	return send()
}

// splitStep does the work of rec's phase and records the next phase.
func (d *Driver) splitStep(ctx context.Context, rec wire.SplitStatus) error {
	next := rec
	var table func(*wire.TableInfo) error
	switch rec.Phase {
	case wire.SplitPlanned:
		for _, m := range rec.Nodes {
			resp := d.callCluster(ctx, rec.Cluster, &wire.Request{Op: wire.OpAddLearner, Member: &wire.Member{ID: m.ID, Addr: m.Addr, PeerAddr: m.PeerAddr}})
			if err := resp.Err(); err != nil {
				return fmt.Errorf("add learner %d to %s: %w", m.ID, rec.Cluster, err)
			}
		}
		next.Phase = wire.SplitLearnersAdded
	case wire.SplitLearnersAdded:
		if err := d.learnersCaughtUp(ctx, rec); err != nil {
			return err
		}
		next.Phase = wire.SplitCaughtUp
	case wire.SplitCaughtUp:
		resp := d.callCluster(ctx, rec.Cluster, &wire.Request{Op: wire.OpSplitFork, Split: &wire.SplitSpec{
			Cluster: rec.Cluster, NewCluster: rec.NewCluster, Nodes: rec.Nodes, At: rec.At,
			Table: d.meta.Current().Version + 1,
		}})
		if resp.Code == wire.Conflict {
			// The source was fenced by an abandon that may not have got
			// as far as removing the learners or recording its phase.
			if err := d.removeLearners(ctx, rec); err != nil {
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
		if err := d.newClusterUp(ctx, rec); err != nil {
			return err
		}
		next.Phase = wire.SplitTableUpdated
		table = func(t *wire.TableInfo) error { return SplitTable(t, &rec) }
	case wire.SplitTableUpdated:
		if err := d.removeLearners(ctx, rec); err != nil {
			return err
		}
		// Each side drops what it does not own: the source the half it
		// gave away, the new cluster the half it forked with.
		for _, c := range []string{rec.Cluster, rec.NewCluster} {
			if err := d.cleanup(ctx, c); err != nil {
				return err
			}
		}
		next.Phase = wire.SplitCleaned
	default:
		return nil
	}
	next.Error = ""
	got, err := d.meta.RecordSplit(ctx, next, table)
	if err != nil {
		return err
	}
	d.log.Info("split: phase recorded", "split", got.ID, "cluster", got.Cluster, "new_cluster", got.NewCluster, "phase", got.Phase, "index", got.Index, "version", got.Version)
	return nil
}

// cleanup has cluster c drop, in bounded steps, every entry outside its
// range, until none remain.
func (d *Driver) cleanup(ctx context.Context, c string) error {
	for more := true; more; {
		resp := d.callCluster(ctx, c, &wire.Request{Op: wire.OpSplitCleanup, Limit: 512})
		if err := resp.Err(); err != nil {
			return fmt.Errorf("clean what %s does not own: %w", c, err)
		}
		more = resp.Exists
	}
	return nil
}

// removeLearners takes rec's new nodes out of the source's group; removing
// a node that is not a member is a no-op, so it is safe to repeat.
func (d *Driver) removeLearners(ctx context.Context, rec wire.SplitStatus) error {
	for _, m := range rec.Nodes {
		resp := d.callCluster(ctx, rec.Cluster, &wire.Request{Op: wire.OpRemoveMember, Member: &wire.Member{ID: m.ID}})
		if err := resp.Err(); err != nil {
			return fmt.Errorf("remove learner %d from %s: %w", m.ID, rec.Cluster, err)
		}
	}
	return nil
}

// learnersCaughtUp checks on the source's leader that every new node is a
// learner within a small lag of its log.
func (d *Driver) learnersCaughtUp(ctx context.Context, rec wire.SplitStatus) error {
	resp := d.callCluster(ctx, rec.Cluster, &wire.Request{Op: wire.OpStatus})
	if err := resp.Err(); err != nil {
		return err
	}
	st := resp.Node
	if st == nil {
		return errors.New("status without node")
	}
	if st.Role != "leader" && st.LeaderAddr != "" {
		resp, err := d.clusters.CallNode(ctx, st.LeaderAddr, &wire.Request{Op: wire.OpStatus})
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
func (d *Driver) newClusterUp(ctx context.Context, rec wire.SplitStatus) error {
	want := wire.Range{Start: rec.At, End: rec.Range.End}
	start := time.Now()
	for {
		up := 0
		for _, m := range rec.Nodes {
			// Each call is bounded on its own: a node that hangs (its
			// socket accepts, nothing answers) must not hold the wait past
			// the majority rule below.
			cctx, cancel := context.WithTimeout(ctx, newClusterCallTimeout)
			resp, err := d.clusters.CallNode(cctx, m.Addr, &wire.Request{Op: wire.OpStatus})
			cancel()
			if err == nil && resp.Node != nil && resp.Node.Range == want && len(resp.Node.Members) == len(rec.Nodes) {
				up++
			}
		}
		if up == len(rec.Nodes) || (up > len(rec.Nodes)/2 && time.Since(start) > 3*time.Second) {
			return nil
		}
		if !d.wait(ctx, 10*time.Millisecond) {
			return fmt.Errorf("%d of %d nodes of %s have left %s", up, len(rec.Nodes), rec.NewCluster, rec.Cluster)
		}
	}
}

// Handle serves a SPLIT request on the meta leader: it starts (or
// returns) the split req.Split names, or abandons one. The caller has
// checked that this member leads the meta group and that req.Split is set.
func (d *Driver) Handle(ctx context.Context, req *wire.Request) *wire.Response {
	sp := req.Split
	d.Start()
	splits := d.meta.Splits()
	if sp.Abandon {
		return d.abandonSplit(ctx, req, sp)
	}
	for _, s := range splits {
		if s.NewCluster == sp.NewCluster && s.Cluster == sp.Cluster && s.Phase != wire.SplitAbandoned {
			if !s.Phase.Final() {
				d.driveSplit(s.ID)
			}
			return &wire.Response{Split: &s}
		}
	}
	var id uint64
	for _, s := range splits {
		id = max(id, s.ID)
	}
	rec, err := PlanSplit(d.meta.Current(), splits, id+1, sp)
	if err != nil {
		return wire.Errorf(req.ID, wire.Invalid, "split %s: %v", sp.Cluster, err)
	}
	if rec, err = d.meta.RecordSplit(ctx, rec, nil); err != nil {
		return wire.Errorf(req.ID, wire.Unavailable, "record split: %v", err)
	}
	d.log.Info("split: planned", "split", rec.ID, "cluster", rec.Cluster, "new_cluster", rec.NewCluster, "at", rec.At)
	d.driveSplit(rec.ID)
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
func (d *Driver) abandonSplit(ctx context.Context, req *wire.Request, sp *wire.SplitSpec) *wire.Response {
	if !d.lockSplits(ctx) {
		return wire.Errorf(req.ID, wire.Unavailable, "abandon %s: the split driver did not finish its step in time; nothing was done", sp.Cluster)
	}
	defer d.unlockSplits()
	if err := d.meta.Replica().ReadIndex(ctx); err != nil {
		return wire.Errorf(req.ID, wire.Unavailable, "abandon %s: read the meta group: %v; nothing was done", sp.Cluster, err)
	}
	var rec wire.SplitStatus
	found := false
	for _, s := range d.meta.Splits() {
		if s.Cluster == sp.Cluster && !s.Phase.Final() {
			rec, found = s, true
		}
	}
	if !found {
		return wire.Errorf(req.ID, wire.NotFound, "no split of %s in progress", sp.Cluster)
	}
	if err := NextPhase(rec.Phase, wire.SplitAbandoned); err != nil {
		return wire.Errorf(req.ID, wire.Conflict, "split %d: %v", rec.ID, err)
	}
	resp := d.callCluster(ctx, rec.Cluster, &wire.Request{Op: wire.OpSplitFork, Split: &wire.SplitSpec{Cluster: rec.Cluster, NewCluster: rec.NewCluster, Abandon: true}})
	if resp.Code == wire.Conflict {
		d.driveSplit(rec.ID)
		return wire.Errorf(req.ID, wire.Conflict, "split %d: %s has already committed SPLIT, so it cannot be abandoned and goes on (%s)", rec.ID, rec.Cluster, resp.Message)
	}
	if err := resp.Err(); err != nil {
		return wire.Errorf(req.ID, resp.Code, "split %d: fence %s: %v", rec.ID, rec.Cluster, err)
	}
	if err := d.removeLearners(ctx, rec); err != nil {
		return wire.Errorf(req.ID, wire.Unavailable, "split %d: %s is fenced, but: %v; retry the abandon", rec.ID, rec.Cluster, err)
	}
	rec.Phase = wire.SplitAbandoned
	got, err := d.meta.RecordSplit(ctx, rec, nil)
	if err != nil {
		code := wire.Unavailable
		switch {
		case errors.Is(err, ErrBadTransition):
			code = wire.Conflict
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
			code = wire.Timeout
		}
		return wire.Errorf(req.ID, code, "split %d: %s is fenced, but recording abandoned failed: %v", rec.ID, rec.Cluster, err)
	}
	d.log.Info("split: abandoned", "split", got.ID, "cluster", got.Cluster, "new_cluster", got.NewCluster)
	return &wire.Response{Split: &got}
}

// wait sleeps for d; false if ctx ended or the driver closed first.
func (d *Driver) wait(ctx context.Context, dur time.Duration) bool {
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-d.done:
		return false
	}
}
