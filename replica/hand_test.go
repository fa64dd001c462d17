package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The hand driver: replicas whose loops run on their own goroutines as in
// production, but get no ticks and no input except what the test hands
// them, one loop iteration at a time, over Pebble on in-memory crashable
// file systems. Messages go to a queue the test delivers in a fixed order,
// snapshots wait until the test streams them. Every call returns only
// once the loops it touched are idle (no Ready pending, no snapshot send
// unaccounted for), so a scenario replays exactly.

// handWait bounds every wait of the driver; a wait that runs out is a
// test failure (a loop that does not answer), never a timing assumption.
const handWait = 10 * time.Second

// handMsg is a message queued between two replicas.
type handMsg struct {
	g Group
	m *pb.Message
}

// handSnap is a snapshot send waiting for the test to deliver it.
type handSnap struct {
	from uint64
	m    *pb.Message
	s    *SnapshotStream
	done chan error // the send's result
}

// handNet queues what the replicas send.
type handNet struct {
	mu    sync.Mutex
	msgs  []handMsg
	snaps []*handSnap
}

type handTransport struct {
	net  *handNet
	from uint64
}

func (t *handTransport) Send(g Group, msgs []*pb.Message) {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	for _, m := range msgs {
		t.net.msgs = append(t.net.msgs, handMsg{g: g, m: proto.CloneOf(m)})
	}
}

// SendSnapshot queues the send and blocks until the test delivers it (or
// the sender stops).
func (t *handTransport) SendSnapshot(ctx context.Context, m *pb.Message, s *SnapshotStream) error {
	hs := &handSnap{from: t.from, m: proto.CloneOf(m), s: s, done: make(chan error, 1)}
	t.net.mu.Lock()
	t.net.snaps = append(t.net.snaps, hs)
	t.net.mu.Unlock()
	select {
	case err := <-hs.done:
		return err
	case <-ctx.Done():
		t.net.mu.Lock()
		t.net.snaps = slices.DeleteFunc(t.net.snaps, func(o *handSnap) bool { return o == hs })
		t.net.mu.Unlock()
		return ctx.Err()
	}
}

// pendingSnaps returns the number of queued snapshot sends from id.
func (n *handNet) pendingSnaps(id uint64) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for _, s := range n.snaps {
		if s.from == id {
			k++
		}
	}
	return k
}

// handNode is one replica driven by hand, with its disk.
type handNode struct {
	id    uint64
	fs    *vfs.MemFS
	db    *pebble.DB
	r     *Replica
	sm    *testSM
	boot  bool // bootstraps the group (one of its first voters)
	join  bool // starts empty, waiting for a leader's snapshot
	tickc chan time.Time
	steps chan handStep
}

// handProp is a proposal the test made; done is filled by the loop.
type handProp struct {
	node uint64
	cmd  string
	p    *proposal
	seen bool
}

// handCluster is a set of hand-driven replicas and their network.
type handCluster struct {
	t     testing.TB
	net   *handNet
	nodes map[uint64]*handNode
	peers []uint64
	group string
	cut   func(from, to uint64) bool // partition; nil: none
	props []*handProp
	// out collects what the driver reports (delivered messages, proposal
	// outcomes); take returns and resets it.
	out strings.Builder
	// afterReady, if set, runs on a loop goroutine after each Ready of
	// node id is committed. Only one loop runs at a time under the
	// driver, so it may look at every node's disk.
	afterReady func(id uint64)
	// afterApply, if set, runs on node id's loop goroutine after it
	// applied committed entries ahead of its Ready's write (applyDurable).
	afterApply func(id uint64)
	// afterLogSync, if set, runs after node id synced a Ready's entries
	// to its log, before it commits the Ready's batch; every loop waits
	// meanwhile.
	afterLogSync func(id uint64)
	// logRetention and snapChunk configure new nodes.
	logRetention uint64
	snapChunk    int
}

func newHandCluster(t testing.TB) *handCluster {
	c := &handCluster{t: t, net: &handNet{}, nodes: map[uint64]*handNode{}, group: "c1", logRetention: 1000, snapChunk: 64}
	t.Cleanup(func() {
		for _, id := range c.ids() {
			if n := c.nodes[id]; n.r != nil {
				c.stop(id)
			}
		}
	})
	return c
}

// ids returns every node id, sorted.
func (c *handCluster) ids() []uint64 {
	return slices.Sorted(maps.Keys(c.nodes))
}

func (c *handCluster) node(id uint64) *handNode {
	c.t.Helper()
	n := c.nodes[id]
	if n == nil {
		c.t.Fatalf("no node %d", id)
	}
	return n
}

func (c *handCluster) running(id uint64) bool {
	n := c.nodes[id]
	return n != nil && n.r != nil
}

func (c *handCluster) rep(id uint64) *Replica {
	c.t.Helper()
	n := c.node(id)
	if n.r == nil {
		c.t.Fatalf("node %d is not running", id)
	}
	return n.r
}

// addNodes creates nodes with empty disks: the first ones bootstrap the
// group with each other as voters; join nodes start empty and wait for
// a leader's snapshot.
func (c *handCluster) addNodes(ids []uint64, join bool) {
	for _, id := range ids {
		if c.nodes[id] != nil {
			c.t.Fatalf("node %d exists", id)
		}
		c.nodes[id] = &handNode{id: id, fs: vfs.NewCrashableMem(), boot: !join, join: join}
		if !join {
			c.peers = append(c.peers, id)
		}
	}
	for _, id := range ids {
		c.start(id)
	}
}

func (c *handCluster) config(n *handNode) Config {
	cfg := DefaultConfig()
	cfg.ID = n.id
	cfg.Group = c.group
	cfg.ElectionTicks = 10
	cfg.HeartbeatTicks = 1
	cfg.Logger = testLogger()
	cfg.FS = n.fs
	cfg.SnapshotDir = "/snap"
	cfg.LogDir = "/log"
	cfg.LogSegmentBytes = 256 // a few entries: compaction removes and recycles segments
	cfg.LogRetention = c.logRetention
	cfg.SnapshotChunk = c.snapChunk
	cfg.MaxSnapshotSends = 1
	cfg.Join = n.join
	if n.boot {
		cfg.Peers = slices.Clone(c.peers)
		cfg.PeerAddrs = map[uint64]string{}
		for _, p := range c.peers {
			cfg.PeerAddrs[p] = "addr-" + strconv.FormatUint(p, 10)
		}
	}
	return cfg
}

// start opens node id over its disk.
func (c *handCluster) start(id uint64) {
	c.t.Helper()
	n := c.node(id)
	if n.db == nil {
		db, err := pebble.Open("/db", &pebble.Options{FS: n.fs, Logger: quietPebble{}, DisableWAL: true})
		if err != nil {
			c.t.Fatalf("open pebble %d: %v", id, err)
		}
		n.db = db
	}
	db := n.db
	n.sm = &testSM{}
	n.tickc, n.steps = make(chan time.Time), make(chan handStep)
	h := &handDriver{tick: n.tickc, steps: n.steps}
	if c.afterReady != nil {
		h.afterReady = func() { c.afterReady(id) }
	}
	if c.afterApply != nil {
		h.afterApply = func() { c.afterApply(id) }
	}
	if c.afterLogSync != nil {
		h.afterLogSync = func() { c.afterLogSync(id) }
	}
	r, err := open(c.config(n), db, n.sm, &handTransport{net: c.net, from: id}, h)
	if err != nil {
		db.Close()
		n.db = nil
		c.t.Fatalf("open replica %d: %v", id, err)
	}
	n.r = r
}

// stop closes node id's replica and DB (a clean shutdown) and returns
// the replica's fatal error, if any.
func (c *handCluster) stop(id uint64) error {
	c.t.Helper()
	n := c.node(id)
	err := n.r.Close()
	if cerr := n.db.Close(); cerr != nil {
		c.t.Errorf("close db %d: %v", id, cerr)
	}
	if v := n.sm.violations.Load(); v != 0 {
		c.t.Errorf("node %d applied an index twice or out of order (%d times)", id, v)
	}
	n.r, n.db = nil, nil
	c.dropQueued(id)
	return err
}

// crash stops node id as a power cut would: its disk becomes what was
// synced when crash was called, then the replica and DB are closed (their
// later writes go to the discarded file system).
func (c *handCluster) crash(id uint64) {
	c.t.Helper()
	n := c.node(id)
	clone := n.fs.CrashClone(vfs.CrashCloneCfg{})
	n.r.Close()
	n.db.Close()
	if v := n.sm.violations.Load(); v != 0 {
		c.t.Errorf("node %d applied an index twice or out of order (%d times)", id, v)
	}
	n.r, n.db, n.fs = nil, nil, clone
	c.dropQueued(id)
}

// dropQueued forgets queued messages from a node that stopped (a real
// network loses what a dead process had not sent).
func (c *handCluster) dropQueued(id uint64) {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	c.net.msgs = slices.DeleteFunc(c.net.msgs, func(m handMsg) bool { return m.m.GetFrom() == id })
}

// do runs one loop iteration of node id, with before run first on the
// loop goroutine, and returns when the iteration is over.
func (c *handCluster) do(id uint64, before func()) {
	c.t.Helper()
	r := c.rep(id)
	n := c.node(id)
	s := handStep{before: before, done: make(chan struct{})}
	timeout := time.NewTimer(handWait)
	defer timeout.Stop()
	select {
	case n.steps <- s:
	case <-r.Done():
		c.t.Fatalf("node %d stopped: %v", id, r.Err())
	case <-timeout.C:
		c.t.Fatalf("node %d: loop did not take a step in %v", id, handWait)
	}
	select {
	case <-s.done:
	case <-r.Done():
		c.t.Fatalf("node %d stopped: %v", id, r.Err())
	case <-timeout.C:
		c.t.Fatalf("node %d: loop step did not end in %v", id, handWait)
	}
	c.settleSnapshots(id)
	c.reportProposals()
}

// settleSnapshots waits until every snapshot send node id has in flight
// is queued in the network: raft asks for one in a Ready, and the replica
// starts the send on a goroutine of its own. Also waits, after a delivered
// send, until the sender's loop has taken its outcome.
func (c *handCluster) settleSnapshots(id uint64) {
	c.t.Helper()
	r := c.rep(id)
	deadline := time.Now().Add(handWait)
	for r.Status().Snapshots != c.net.pendingSnaps(id) {
		if time.Now().After(deadline) {
			c.t.Fatalf("node %d: %d snapshot sends in flight, %d queued", id, r.Status().Snapshots, c.net.pendingSnaps(id))
		}
		runtime.Gosched()
		c.doQuiet(id)
	}
}

// doQuiet is do without the settling (one empty iteration).
func (c *handCluster) doQuiet(id uint64) {
	c.t.Helper()
	n := c.node(id)
	s := handStep{done: make(chan struct{})}
	select {
	case n.steps <- s:
	case <-n.r.Done():
		c.t.Fatalf("node %d stopped: %v", id, n.r.Err())
	}
	select {
	case <-s.done:
	case <-n.r.Done():
		c.t.Fatalf("node %d stopped: %v", id, n.r.Err())
	}
}

// tick gives each of ids one tick, n times over, in id order.
func (c *handCluster) tick(ids []uint64, times int) {
	c.t.Helper()
	for range times {
		for _, id := range ids {
			n := c.node(id)
			r := c.rep(id)
			select {
			case n.tickc <- time.Time{}:
			case <-r.Done():
				c.t.Fatalf("node %d stopped: %v", id, r.Err())
			}
			c.do(id, nil) // the tick's iteration has ended when this one starts
		}
	}
}

// propose hands cmds to node id's loop as one batch, as concurrent
// Propose calls would arrive.
func (c *handCluster) propose(id uint64, cmds ...string) []*handProp {
	c.t.Helper()
	r := c.rep(id)
	var hp []*handProp
	for _, cmd := range cmds {
		hp = append(hp, &handProp{node: id, cmd: cmd, p: newHandProposal(r, cmd)})
	}
	c.props = append(c.props, hp...)
	c.do(id, func() {
		for _, h := range hp {
			r.propc <- h.p
		}
	})
	return hp
}

// newHandProposal builds r's proposal of cmd as Propose builds it.
func newHandProposal(r *Replica, cmd string) *proposal { return r.newProposal([]byte(cmd)) }

// reportProposals reports proposals whose outcome arrived, in the order
// they were made. The loop delivers outcomes before its iteration ends,
// so this sees each at a fixed point of the scenario.
func (c *handCluster) reportProposals() {
	for _, h := range c.props {
		if h.seen {
			continue
		}
		select {
		case res := <-h.p.done:
			h.seen = true
			h.p.done <- res // keep it for the test
			if res.err != nil {
				fmt.Fprintf(&c.out, "%d: proposal %q: %v\n", h.node, h.cmd, res.err)
			} else {
				fmt.Fprintf(&c.out, "%d: proposal %q applied at %d\n", h.node, h.cmd, res.index)
			}
		default:
		}
	}
}

// campaign makes node id start an election.
func (c *handCluster) campaign(id uint64) { c.do(id, c.rep(id).Campaign) }

// conf runs a membership call on node id. The call hands its request to
// the loop, which takes it in an iteration of its own; conf returns once
// it was taken: the error, if it failed at once, or nil with the change
// in the leader's log (its outcome shows in the members later).
func (c *handCluster) conf(id uint64, call func(ctx context.Context, r *Replica) error) error {
	c.t.Helper()
	r := c.rep(id)
	last := r.Status().LastIndex
	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	c.t.Cleanup(cancel)
	go func() { errc <- call(ctx, r) }()
	deadline := time.Now().Add(handWait)
	for {
		select {
		case err := <-errc:
			c.do(id, nil)
			return err
		default:
		}
		if r.Status().LastIndex > last {
			c.do(id, nil)
			return nil
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node %d: membership change not taken in %v", id, handWait)
		}
		runtime.Gosched()
		c.doQuiet(id)
	}
}

// deliver hands every queued message for id to it in one iteration (in
// the order they were sent) and reports them; messages across a partition
// or to a stopped node are dropped. It reports whether there were any.
func (c *handCluster) deliver(id uint64) bool {
	c.t.Helper()
	c.net.mu.Lock()
	var mine []handMsg
	c.net.msgs = slices.DeleteFunc(c.net.msgs, func(m handMsg) bool {
		if m.m.GetTo() == id {
			mine = append(mine, m)
			return true
		}
		return false
	})
	c.net.mu.Unlock()
	if len(mine) == 0 {
		return false
	}
	var in []handMsg
	for _, m := range mine {
		note := ""
		switch {
		case !c.running(id):
			note = " (dropped: down)"
		case c.cut != nil && c.cut(m.m.GetFrom(), id):
			note = " (dropped: partition)"
		default:
			if own := c.rep(id).Group(); !own.IsZero() && own != m.g {
				note = fmt.Sprintf(" (foreign: %d is in %s)", id, own)
			}
			in = append(in, m)
		}
		fmt.Fprintf(&c.out, "%s %s%s\n", m.g, describeMsg(m.m), note)
	}
	if len(in) > 0 {
		r := c.rep(id)
		c.do(id, func() {
			for _, m := range in {
				r.Step(m.g, m.m)
			}
		})
	}
	return true
}

// deliverSnapshots streams every queued snapshot send, in the order raft
// asked for them. It reports whether there were any.
func (c *handCluster) deliverSnapshots() bool {
	c.t.Helper()
	c.net.mu.Lock()
	snaps := c.net.snaps
	c.net.snaps = nil
	c.net.mu.Unlock()
	for _, hs := range snaps {
		to := hs.m.GetTo()
		md := hs.m.GetSnapshot().GetMetadata()
		fmt.Fprintf(&c.out, "%s snapshot %d->%d index=%d term=%d", hs.s.Group(), hs.from, to, md.GetIndex(), md.GetTerm())
		var err error
		switch {
		case !c.running(to):
			err = errors.New("dropped: down")
		case c.cut != nil && c.cut(hs.from, to):
			err = errors.New("dropped: partition")
		default:
			var chunks int
			chunks, err = c.stream(hs, c.rep(to))
			fmt.Fprintf(&c.out, " chunks=%d", chunks)
			c.do(to, nil) // the receiver's iteration that installed it has ended
		}
		if err != nil {
			fmt.Fprintf(&c.out, ": %v\n", err)
		} else {
			fmt.Fprintf(&c.out, ": ok\n")
		}
		hs.done <- err
		if c.running(hs.from) {
			c.settleSnapshots(hs.from)
		}
	}
	return len(snaps) > 0
}

// stream feeds the chunks of a queued send to the receiver, as a
// transport would.
func (c *handCluster) stream(hs *handSnap, to *Replica) (int, error) {
	ctx := context.Background()
	first := proto.CloneOf(hs.m)
	var off uint64
	chunks := 0
	for {
		data, err := hs.s.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return chunks, err
		}
		chunks++
		ch := SnapshotChunk{Group: hs.s.Group(), From: hs.from, ID: hs.s.ID(), Offset: off, Data: slices.Clone(data), Msg: first}
		first = nil
		if err := to.ReceiveSnapshot(ctx, ch); err != nil {
			return chunks, err
		}
		off += uint64(len(data))
	}
	chunks++
	return chunks, to.ReceiveSnapshot(ctx, SnapshotChunk{Group: hs.s.Group(), From: hs.from, ID: hs.s.ID(), Offset: off, Msg: first, Done: true, CRC: hs.s.CRC()})
}

// stabilize delivers messages and snapshots until none is queued: each
// round hands each node, in id order, what was queued for it.
func (c *handCluster) stabilize() {
	c.t.Helper()
	for range 1000 {
		any := false
		for _, id := range c.queuedFor() {
			any = c.deliver(id) || any
		}
		any = c.deliverSnapshots() || any
		if !any {
			return
		}
	}
	c.t.Fatalf("not stable after 1000 rounds")
}

// queuedFor returns the ids that messages are queued for, sorted.
func (c *handCluster) queuedFor() []uint64 {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	var ids []uint64
	for _, m := range c.net.msgs {
		if !slices.Contains(ids, m.m.GetTo()) {
			ids = append(ids, m.m.GetTo())
		}
	}
	slices.Sort(ids)
	return ids
}

// take returns what the driver reported since the last take.
func (c *handCluster) take() string {
	s := c.out.String()
	c.out.Reset()
	return s
}

// describeMsg describes m as raft does, with each normal entry's command
// (without the proposal id the replica prefixes it with).
func describeMsg(m *pb.Message) string {
	return raft.DescribeMessage(m, func(data []byte) string {
		if len(data) < idLen {
			return fmt.Sprintf("%q", data)
		}
		return fmt.Sprintf("%q", data[idLen:])
	})
}

// describeNode is one line of a node's state.
func (c *handCluster) describeNode(id uint64) string {
	n := c.node(id)
	if n.r == nil {
		return fmt.Sprintf("%d: down", id)
	}
	st, stats := n.r.Status(), n.r.Stats()
	var voters, learners []uint64
	for _, m := range st.Members {
		if m.Voter {
			voters = append(voters, m.ID)
		} else {
			learners = append(learners, m.ID)
		}
	}
	s := fmt.Sprintf("%d: %s group=%s term=%d lead=%d commit=%d applied=%d log=[%d,%d] voters=%v learners=%v",
		id, st.Role, n.r.Group(), st.Term, st.Leader, st.Commit, st.Applied, st.FirstIndex, st.LastIndex, voters, learners)
	if stats.Foreign > 0 || stats.BadCommit > 0 {
		s += fmt.Sprintf(" foreign=%d badcommit=%d", stats.Foreign, stats.BadCommit)
	}
	if stats.Invalid > 0 {
		s += fmt.Sprintf(" invalid=%d", stats.Invalid)
	}
	return s
}

// appliedCmds returns the commands node id's state machine applied, in order.
func (c *handCluster) appliedCmds(id uint64) []string {
	c.t.Helper()
	n := c.node(id)
	v, cl, err := n.db.Get(smDataKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		c.t.Fatalf("read data of %d: %v", id, err)
	}
	defer cl.Close()
	return strings.Split(strings.TrimSuffix(string(v), "\n"), "\n")
}
