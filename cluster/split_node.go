package cluster

// The node's side of a split (docs/split.md): the leader proposes SPLIT
// and SPLIT_CLEANUP; a departing learner fences the source's log after the
// SPLIT entry and restarts its replica as a member of the new group.
//
// Lock order: splitState.mu, then whatever the replica takes. The gate's
// fields are owned by the replica's loop goroutine (Apply, Restored), and
// by the fork goroutine while no replica runs.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cleavefs/cleave/fsm"
	"github.com/cleavefs/cleave/internal/durable"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/replica"
	"github.com/cleavefs/cleave/wire"
)

// splitMaxLag is how far (in entries) a new node's match index may trail
// the source leader's last index for the leader to propose SPLIT: it
// bounds how long the new cluster waits for its members to reach the
// SPLIT entry.
const splitMaxLag = 100

// replicaRef is the node's current replica. A departing learner replaces
// its replica once, at the split (fork); everything else holds the ref.
// Safe for concurrent use; between the old replica's Close and the new
// one's Store, calls reach the closed replica and fail with ErrStopped,
// which the node answers UNAVAILABLE (the router retries).
type replicaRef struct {
	p atomic.Pointer[replica.Replica]
}

func newReplicaRef(r *replica.Replica) *replicaRef {
	ref := &replicaRef{}
	ref.p.Store(r)
	return ref
}

func (r *replicaRef) get() *replica.Replica { return r.p.Load() }

// The methods below go to the replica current at the call. A split that
// replaces it closes the old one, which ends what it had not finished as
// Replica.Close does.

func (r *replicaRef) Close() error                        { return r.get().Close() }
func (r *replicaRef) Done() <-chan struct{}               { return r.get().Done() }
func (r *replicaRef) Leader() uint64                      { return r.get().Leader() }
func (r *replicaRef) Wake()                               { r.get().Wake() }
func (r *replicaRef) Applied() uint64                     { return r.get().Applied() }
func (r *replicaRef) Status() replica.Status              { return r.get().Status() }
func (r *replicaRef) Members() []replica.Member           { return r.get().Members() }
func (r *replicaRef) MemberAddr(id uint64) string         { return r.get().MemberAddr(id) }
func (r *replicaRef) ReadIndex(ctx context.Context) error { return r.get().ReadIndex(ctx) }
func (r *replicaRef) ReadIndexFunc(then func(*replica.ReadScope, error)) bool {
	return r.get().ReadIndexFunc(then)
}
func (r *replicaRef) Propose(ctx context.Context, cmd []byte) (any, uint64, error) {
	return r.get().Propose(ctx, cmd)
}
func (r *replicaRef) ProposeFunc(cmd []byte, then func(any, uint64, error)) bool {
	return r.get().ProposeFunc(cmd, then)
}
func (r *replicaRef) ServeWire(ctx context.Context, req *wire.Request) (*wire.Response, bool) {
	return r.get().ServeWire(ctx, req)
}

func (r *replicaRef) ServeWireFrom(ctx context.Context, req *wire.Request, sender uint64) (*wire.Response, bool) {
	return r.get().ServeWireFrom(ctx, req, sender)
}
func (r *replicaRef) AddLearner(ctx context.Context, id uint64, addr string) error {
	return r.get().AddLearner(ctx, id, addr)
}
func (r *replicaRef) Promote(ctx context.Context, id uint64) error {
	return r.get().Promote(ctx, id)
}
func (r *replicaRef) RemoveMember(ctx context.Context, id uint64) error {
	return r.get().RemoveMember(ctx, id)
}

// splitState is a node's split machinery: the gate in front of the fsm.FSM,
// the fork, and the routing-version hint of WRONG_RANGE answers.
type splitState struct {
	n  *Node
	rc replica.Config // the config the node's replica was opened with

	// hint is the last split record seen; its Table is the routing version
	// WRONG_RANGE answers carry.
	hint atomic.Pointer[fsm.SplitRecord]

	// fenceAt, owned by the replica loop: the index of the SPLIT entry at
	// which this node left the group; later entries are not applied.
	fenceAt uint64
	// fenced mirrors fenceAt != 0 for readers: a fenced node's state is
	// frozen at the split, so it serves no reads until it has forked.
	fenced atomic.Bool
	forkc  chan struct{}

	mu     sync.Mutex // guards closed, the fork and swapc
	closed bool
	swapc  chan struct{} // closed (and replaced) when the fork opens the new group's replica
	wg     sync.WaitGroup
	stopc  chan struct{}
	forked atomic.Bool
	// campaign: this node is the new group's lowest id and stands for
	// election as soon as the group is formed (set by rewrite).
	campaign bool
	// dropped counts what SPLIT_CLEANUP steps deleted since the last
	// compaction was requested (apply goroutine only).
	dropped int
}

func newSplitState(n *Node) *splitState {
	s := &splitState{n: n, forkc: make(chan struct{}, 1), stopc: make(chan struct{}), swapc: make(chan struct{})}
	return s
}

// swapped returns a channel closed once the node's replica is no longer
// rep (the fork replaced it), or never if it still is when the node stops.
func (s *splitState) swapped(rep *replica.Replica) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n.rep.get() != rep {
		closed := make(chan struct{})
		close(closed)
		return closed
	}
	return s.swapc
}

// load reads the split record at start. It reports whether this node left
// its group at a split and has not yet restarted as the new group: the
// caller forks before opening the replica.
func (s *splitState) load() (bool, error) {
	rec, err := s.n.fsm.Split()
	if err != nil {
		return false, err
	}
	if rec == nil {
		return false, nil
	}
	s.hint.Store(rec)
	return rec.HasVoter(s.n.cfg.NodeID), nil
}

// start runs the fork watcher.
func (s *splitState) start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-s.forkc:
				if err := s.fork(); err != nil {
					s.n.log.Error("split: restarting as the new cluster failed", "err", err)
				}
			case <-s.stopc:
				return
			}
		}
	}()
}

// stop ends the watcher and waits for a fork in progress. Idempotent.
func (s *splitState) stop() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.stopc)
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *splitState) signal() {
	select {
	case s.forkc <- struct{}{}:
	default:
	}
}

// splitGate is the replica's state machine: the fsm.FSM, except that a node
// named in an applied SPLIT stops applying the source's entries there.
type splitGate struct{ s *splitState }

// Apply implements replica.StateMachine. An INTERNAL result (a local read
// or decode fault: the fsm.FSM could not apply the entry as its peers do) is
// returned as an error, which stops the replica before anything of the
// entry is committed.
func (g splitGate) Apply(b *pebble.Batch, index uint64, cmd []byte) (any, error) {
	s := g.s
	if s.fenceAt != 0 && index > s.fenceAt {
		return &fsm.Result{Code: wire.Unavailable, Message: fmt.Sprintf("this node left the cluster at the split (index %d)", s.fenceAt)}, nil
	}
	if isCheckEntry(cmd) {
		s.n.check.take(b, index)
		return &fsm.Result{}, nil
	}
	r := s.n.fsm.Apply(b, index, cmd)
	if r.Code == wire.Internal {
		return nil, errors.New(r.Message)
	}
	if s.dropped += r.Dropped; r.Cleaned && s.dropped > 0 {
		s.dropped = 0
		s.n.compact.request(index)
	}
	if r.Split != nil {
		s.hint.Store(r.Split)
		if r.Split.Index == index && r.Split.HasVoter(s.n.cfg.NodeID) {
			s.fenceAt = index
			s.fenced.Store(true)
			s.n.log.Info("split: applied SPLIT; leaving for the new cluster", "index", index, "new_cluster", r.Split.NewCluster)
			s.signal()
		}
	}
	return r, nil
}

// Restored implements replica.Restorer. A split record that does not
// load, or a taint that cannot be recorded, is fatal: the fork would bring
// the wrong state into the new group.
func (g splitGate) Restored(index uint64) error {
	s := g.s
	if rs, ok := any(s.n.fsm).(replica.Restorer); ok {
		if err := rs.Restored(index); err != nil {
			return err
		}
	}
	rec, err := s.n.fsm.Split()
	if err != nil {
		return fmt.Errorf("split: read the split record: %w", err)
	}
	if rec == nil {
		return nil
	}
	s.hint.Store(rec)
	if !rec.HasVoter(s.n.cfg.NodeID) {
		return nil
	}
	// A snapshot that already holds our SPLIT: we leave at once. If it was
	// taken after the SPLIT entry, our state is not the state at the split
	// and we must not bring it into the new group.
	s.fenceAt = rec.Index
	s.fenced.Store(true)
	if index > rec.Index {
		s.n.log.Warn("split: restored a snapshot taken after the split; joining the new cluster empty", "snapshot", index, "split", rec.Index)
		if err := s.n.fsm.MarkSplitTainted(); err != nil {
			return fmt.Errorf("split: mark the restored state as taken after the split: %w", err)
		}
	}
	s.signal()
	return nil
}

// fork stops the source's replica, rewrites this node's raft state as the
// new group's (one atomic batch with the new owned range), and opens the
// replica again.
func (s *splitState) fork() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.forked.Load() {
		return nil
	}
	n := s.n
	start := time.Now()
	n.rep.Close() // the old group's replica; in-flight calls get ErrStopped
	if err := s.rewrite(); err != nil {
		return err
	}
	rep, err := s.open()
	if err != nil {
		return err
	}
	n.rep.p.Store(rep)
	n.tr.SetReplica(rep)
	close(s.swapc)
	s.swapc = make(chan struct{})
	n.log.Info("split: now a member of the new cluster", "took", time.Since(start).Round(time.Millisecond))
	if s.campaign {
		go campaignFirst(rep)
	}
	return nil
}

// campaignFirst makes the new group's first member (the lowest id) stand
// for election at once instead of after an election timeout, so the upper
// half's writes pause for about one round trip, not 0.5–1 s. The other
// members fork at the same SPLIT entry at about the same moment; if they
// have not reopened yet the vote is lost, so it tries a few times, 100 ms
// apart, until the group has a leader.
func campaignFirst(rep *replica.Replica) {
	for range 5 {
		if rep.Leader() != 0 {
			return
		}
		rep.Campaign()
		select {
		case <-rep.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// rewrite commits the fork batch; it needs no replica running.
func (s *splitState) rewrite() error {
	n := s.n
	rec, err := n.fsm.Split()
	if err != nil {
		return err
	}
	if rec == nil || !rec.HasVoter(n.cfg.NodeID) {
		return errors.New("split: no split record names this node")
	}
	tainted, err := n.fsm.SplitTainted()
	if err != nil {
		return fmt.Errorf("split: fork: %w", err)
	}
	b := n.db.NewBatch()
	defer b.Close()
	src, err := replica.LoadGroup(n.db, s.rc.Prefix)
	if err != nil {
		return fmt.Errorf("split: fork: %w", err)
	}
	g := replica.Group{Name: rec.NewCluster, Epoch: src.Epoch + 1}
	if err := replica.ForkGroup(b, s.rc.Prefix, g, rec.Index, voterRecords(rec.Voters), tainted); err != nil {
		return fmt.Errorf("split: fork: %w", err)
	}
	if err := n.fsm.ForkState(b, rec, tainted); err != nil {
		return fmt.Errorf("split: fork: %w", err)
	}
	if err := durable.Commit(n.db, b); err != nil {
		return fmt.Errorf("split: fork: %w", err)
	}
	s.fenceAt = 0
	s.fenced.Store(false)
	s.campaign = !tainted && slices.IndexFunc(rec.Voters, func(m wire.Member) bool { return m.ID < n.cfg.NodeID }) < 0
	s.rc.Join = tainted
	s.rc.Peers = nil
	s.rc.PeerAddrs = nil
	s.forked.Store(true)
	n.log.Info("split: raft state rewritten for the new cluster", "group", g.String(), "index", rec.Index, "range", rec.Upper().String(), "voters", len(rec.Voters), "empty", tainted)
	return nil
}

func (s *splitState) open() (*replica.Replica, error) {
	rep, err := replica.Open(s.rc, s.n.db, splitGate{s}, s.n.tr)
	if err != nil {
		return nil, fmt.Errorf("split: open the new group's replica: %w", err)
	}
	return rep, nil
}

// handle wraps Node.handle: split ops, the snapshot guard, and the routing
// version on WRONG_RANGE answers.
func (s *splitState) handle(ctx context.Context, req *wire.Request) *wire.Response {
	switch req.Op {
	case wire.OpSnapshot:
		if req.Snap != nil && req.Snap.Offset == 0 && !s.memberOrEmpty(req.Snap.From) {
			// A source leader streaming to a learner that has left for the
			// new cluster: installing it would undo the split.
			return &wire.Response{Code: wire.Unavailable, Message: fmt.Sprintf("node %d is not a member of this node's group", req.Snap.From)}
		}
	case wire.OpSplitFork:
		return s.proposeSplit(ctx, req)
	case wire.OpSplitCleanup:
		return s.proposeCleanup(ctx, req)
	}
	return s.hinted(req, s.n.handle(ctx, req))
}

// Handle implements rpc.Handler: handle.
func (s *splitState) Handle(ctx context.Context, req *wire.Request) *wire.Response {
	return s.handle(ctx, req)
}

// HandleAsync implements rpc.AsyncHandler: the writes that need no
// preparing (Node.writeAsync) and linearizable reads (Node.readAsync),
// with the same routing hint as handle.
func (s *splitState) HandleAsync(ctx context.Context, req *wire.Request, reply func(*wire.Response)) bool {
	hinted := func(resp *wire.Response) { reply(s.hinted(req, resp)) }
	return s.n.writeAsync(ctx, req, hinted) || s.n.readAsync(ctx, req, hinted)
}

// hinted is resp with the routing version a WRONG_RANGE answer to req
// carries (tableHint), unless it has one.
func (s *splitState) hinted(req *wire.Request, resp *wire.Response) *wire.Response {
	if resp != nil && resp.Code == wire.WrongRange && resp.Table == 0 {
		resp.Table = s.tableHint(req)
	}
	return resp
}

// tableHint is the routing version a WRONG_RANGE answer to req carries:
// the one the last split's record names, and, for a path that split moved
// away from this node, more than the version req was routed with. The
// record's version was the meta version + 1 when SPLIT was proposed; other
// table changes may commit before the split's own, so a router may already
// hold that version without the split in it. Its table still gives the
// path to this node, which no longer owns it: a newer version exists or
// is coming, and the router should wait for it rather than count a
// misroute.
func (s *splitState) tableHint(req *wire.Request) uint64 {
	rec := s.hint.Load()
	if rec == nil {
		return 0
	}
	v := rec.Table
	if req.Path != "" && !rec.Abandoned && rec.Cluster == s.n.cfg.ClusterID && rec.Upper().Contains(ring.PathPoint(req.Path)) && req.Table >= v {
		v = req.Table + 1
	}
	return v
}

func (s *splitState) memberOrEmpty(id uint64) bool {
	ms := s.n.rep.Members()
	return len(ms) == 0 || slices.ContainsFunc(ms, func(m replica.Member) bool { return m.ID == id })
}

// proposeSplit serves SPLIT_FORK on the source's leader.
func (s *splitState) proposeSplit(ctx context.Context, req *wire.Request) *wire.Response {
	n := s.n
	sp := req.Split
	if sp == nil || sp.NewCluster == "" || (len(sp.Nodes) == 0 && !sp.Abandon) {
		return &wire.Response{Code: wire.Invalid, Message: "SPLIT_FORK needs split.new_cluster and split.nodes"}
	}
	if l := n.rep.Leader(); l != n.cfg.NodeID {
		return n.notLeader(l)
	}
	rng, err := n.fsm.Range()
	if err != nil {
		return errResponse(err)
	}
	old, err := n.fsm.Split()
	if err != nil {
		return errResponse(err)
	}
	if old != nil && old.NewCluster == sp.NewCluster && !old.Abandoned && !sp.Abandon {
		return &wire.Response{Split: recordStatus(old)} // already applied
	}
	if sp.Abandon {
		return s.propose(ctx, &fsm.SplitRecord{Cluster: n.cfg.ClusterID, NewCluster: sp.NewCluster, Abandoned: true})
	}
	at := sp.At
	if at == 0 {
		at = ring.Mid(rng)
	}
	st := n.rep.Status()
	for _, m := range sp.Nodes {
		i := slices.IndexFunc(st.Members, func(x replica.Member) bool { return x.ID == m.ID })
		switch {
		case i < 0:
			return &wire.Response{Code: wire.Unavailable, Message: fmt.Sprintf("split: node %d is not a learner of this cluster yet", m.ID)}
		case st.Members[i].Voter:
			return &wire.Response{Code: wire.Invalid, Message: fmt.Sprintf("split: node %d is a voter of this cluster, not a learner", m.ID)}
		case st.Members[i].Match+splitMaxLag < st.LastIndex:
			return &wire.Response{Code: wire.Unavailable, Message: fmt.Sprintf("split: learner %d is behind (match %d, last index %d)", m.ID, st.Members[i].Match, st.LastIndex)}
		}
	}
	return s.propose(ctx, &fsm.SplitRecord{
		Cluster: n.cfg.ClusterID, NewCluster: sp.NewCluster, At: at, Voters: sp.Nodes, Table: sp.Table,
	})
}

// propose replicates a SPLIT entry and answers with its outcome.
func (s *splitState) propose(ctx context.Context, rec *fsm.SplitRecord) *wire.Response {
	n := s.n
	cmd, err := fsm.EncodeSplitCommand(rec, time.Now().UnixNano(), n.clock.stamp(time.Now()))
	r, resp := n.proposeApplied(ctx, cmd, err)
	if resp != nil {
		return resp
	}
	if rec.Abandoned {
		n.log.Info("split: abandoned", "new_cluster", rec.NewCluster)
		return &wire.Response{Split: &wire.SplitStatus{Cluster: rec.Cluster, NewCluster: rec.NewCluster, Phase: wire.SplitAbandoned}}
	}
	n.log.Info("split: SPLIT committed", "index", r.Split.Index, "at", r.Split.At, "new_cluster", r.Split.NewCluster)
	return &wire.Response{Split: recordStatus(r.Split)}
}

// proposeCleanup serves SPLIT_CLEANUP on the source's leader: one entry
// deleting up to req.Limit moved entries; Exists reports that more remain.
func (s *splitState) proposeCleanup(ctx context.Context, req *wire.Request) *wire.Response {
	n := s.n
	if l := n.rep.Leader(); l != n.cfg.NodeID {
		return n.notLeader(l)
	}
	limit := int64(req.Limit)
	if limit == 0 {
		limit = 256
	}
	cmd, err := fsm.EncodeCommand(&fsm.Command{Op: wire.OpSplitCleanup, Size: limit, Time: time.Now().UnixNano(), Clock: n.clock.stamp(time.Now()), ChunkTTL: int64(n.cfg.ChunkTTL)})
	r, resp := n.proposeApplied(ctx, cmd, err)
	if resp != nil {
		return resp
	}
	return &wire.Response{Exists: r.Message == "more", Message: r.Message}
}

// proposeApplied proposes a split command cmd (encErr: it did not encode)
// and returns its Result if it applied OK, else the response that says why
// not.
func (n *Node) proposeApplied(ctx context.Context, cmd []byte, encErr error) (*fsm.Result, *wire.Response) {
	if encErr != nil {
		return nil, &wire.Response{Code: wire.Invalid, Message: encErr.Error()}
	}
	r, resp := n.proposeEntry(ctx, cmd)
	if resp != nil {
		return nil, resp
	}
	if r.Code != wire.OK {
		return nil, &wire.Response{Code: r.Code, Message: r.Message}
	}
	return r, nil
}

func recordStatus(r *fsm.SplitRecord) *wire.SplitStatus {
	return &wire.SplitStatus{
		Cluster: r.Cluster, NewCluster: r.NewCluster, Nodes: r.Voters,
		At: r.At, Index: r.Index, Version: r.Table, Phase: wire.SplitCommitted,
	}
}

func errResponse(err error) *wire.Response {
	var we *wire.Error
	if errors.As(err, &we) {
		return &wire.Response{Code: we.Code, Message: we.Message}
	}
	return &wire.Response{Code: wire.Internal, Message: err.Error()}
}

// voterRecords returns a split's new members by id, their addresses in
// wire.JoinAddrs's form: what the new group records as its members.
func voterRecords(voters []wire.Member) map[uint64]string {
	m := make(map[uint64]string, len(voters))
	for _, v := range voters {
		m[v.ID] = wire.JoinAddrs(v.Addr, v.PeerAddr)
	}
	return m
}
