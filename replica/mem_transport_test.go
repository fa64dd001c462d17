package replica

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cleavefs/cleave/internal/eventually"
)

// memNet connects in-process replicas. Each message is cloned (as a real
// network would copy it) and handed to the receiver's Step, whose bounded
// inbox is the per-peer queue. drop, if set, decides per (from, to).
type memNet struct {
	mu    sync.Mutex
	nodes map[uint64]*Replica
	drop  func(from, to uint64, m *pb.Message) bool
	// snapHook, if set, runs before a snapshot is streamed; an error
	// fails the send. It may block (until ctx ends).
	snapHook func(ctx context.Context, from, to uint64, index uint64) error
	snaps    atomic.Int64 // snapshots delivered
}

func newMemNet() *memNet { return &memNet{nodes: make(map[uint64]*Replica)} }

func (n *memNet) set(id uint64, r *Replica) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r == nil {
		delete(n.nodes, id)
	} else {
		n.nodes[id] = r
	}
}

func (n *memNet) setDrop(f func(from, to uint64, m *pb.Message) bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.drop = f
}

// partition drops every message between a node in side and one outside it.
func (n *memNet) partition(side ...uint64) {
	in := func(id uint64) bool { return slices.Contains(side, id) }
	n.setDrop(func(from, to uint64, _ *pb.Message) bool { return in(from) != in(to) })
}

func (n *memNet) heal() { n.setDrop(nil) }

type memTransport struct {
	net  *memNet
	from uint64
}

func (t *memTransport) Send(g Group, msgs []*pb.Message) {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	for _, m := range msgs {
		to := m.GetTo()
		if t.net.drop != nil && t.net.drop(t.from, to, m) {
			continue
		}
		if r := t.net.nodes[to]; r != nil {
			r.Step(g, proto.CloneOf(m))
		}
	}
}

// SendSnapshot implements SnapshotTransport in process: chunks are copied
// and fed to the receiver's ReceiveSnapshot in order.
func (t *memTransport) SendSnapshot(ctx context.Context, m *pb.Message, s *SnapshotStream) error {
	t.net.mu.Lock()
	hook := t.net.snapHook
	t.net.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, t.from, m.GetTo(), s.Index()); err != nil {
			return err
		}
	}
	t.net.mu.Lock()
	r := t.net.nodes[m.GetTo()]
	t.net.mu.Unlock()
	if r == nil {
		return errors.New("mem transport: no such node")
	}
	var off uint64
	first := proto.CloneOf(m)
	for {
		data, err := s.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		c := SnapshotChunk{Group: s.Group(), From: t.from, ID: s.ID(), Offset: off, Data: slices.Clone(data), Msg: first}
		first = nil
		if err := r.ReceiveSnapshot(ctx, c); err != nil {
			return err
		}
		off += uint64(len(data))
	}
	err := r.ReceiveSnapshot(ctx, SnapshotChunk{Group: s.Group(), From: t.from, ID: s.ID(), Offset: off, Msg: first, Done: true, CRC: s.CRC()})
	if err == nil {
		t.net.snaps.Add(1)
	}
	return err
}

// testSM appends each command to a key and counts applies, both through the
// batch, and records an error if an index is applied twice or out of order.
type testSM struct {
	countOnly  bool // skip the data key (benchmarks)
	violations atomic.Int64
	// faultPrefix, if set, makes Apply fail (a local fault) on commands
	// that start with it.
	faultPrefix atomic.Pointer[string]
}

var (
	smLastKey  = []byte("sm/last")
	smCountKey = []byte("sm/count")
	smDataKey  = []byte("sm/data")
)

func getU64(r pebble.Reader, key []byte) uint64 {
	v, c, err := r.Get(key)
	if err != nil {
		return 0
	}
	defer c.Close()
	return binary.BigEndian.Uint64(v)
}

func (s *testSM) Apply(b *pebble.Batch, index uint64, cmd []byte) (any, error) {
	if p := s.faultPrefix.Load(); p != nil && bytes.HasPrefix(cmd, []byte(*p)) {
		return nil, fmt.Errorf("injected fault at %d", index)
	}
	if last := getU64(b, smLastKey); index <= last {
		s.violations.Add(1)
	}
	b.Set(smLastKey, binary.BigEndian.AppendUint64(nil, index), nil)
	b.Set(smCountKey, binary.BigEndian.AppendUint64(nil, getU64(b, smCountKey)+1), nil)
	if s.countOnly {
		return index, nil
	}
	var data []byte
	if v, c, err := b.Get(smDataKey); err == nil {
		data = append(data, v...)
		c.Close()
	}
	data = append(append(data, cmd...), '\n')
	b.Set(smDataKey, data, nil)
	return index, nil
}

// testCluster runs replicas over real Pebble DBs in t.TempDir().
type testCluster struct {
	t    testing.TB
	net  *memNet
	ids  []uint64
	cfg  func(id uint64) Config
	dirs map[uint64]string
	dbs  map[uint64]*pebble.DB
	reps map[uint64]*Replica
	sms  map[uint64]*testSM
	join map[uint64]bool // nodes started empty with Config.Join
	mu   sync.Mutex
	root string

	countOnly bool
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newTestCluster(t testing.TB, n int) *testCluster {
	root := t.TempDir()
	c := &testCluster{
		t:    t,
		net:  newMemNet(),
		dirs: make(map[uint64]string),
		dbs:  make(map[uint64]*pebble.DB),
		reps: make(map[uint64]*Replica),
		sms:  make(map[uint64]*testSM),
		join: make(map[uint64]bool),
		root: root,
	}
	for i := 1; i <= n; i++ {
		id := uint64(i)
		c.ids = append(c.ids, id)
		c.dirs[id] = filepath.Join(root, strconv.Itoa(i))
	}
	c.cfg = func(id uint64) Config {
		c.mu.Lock()
		defer c.mu.Unlock()
		cfg := DefaultConfig()
		cfg.ID = id
		cfg.Peers = c.ids
		cfg.TickInterval = 10 * time.Millisecond
		// 0.5–1 s: shorter timeouts make a process starved by the race
		// detector and parallel packages elect spuriously mid-test.
		cfg.ElectionTicks = 50
		cfg.Logger = testLogger()
		cfg.Join = c.join[id]
		cfg.SnapshotDir = filepath.Join(root, "snap-"+strconv.FormatUint(id, 10))
		cfg.LogDir = filepath.Join(root, "log-"+strconv.FormatUint(id, 10))
		cfg.PeerAddrs = map[uint64]string{}
		for _, p := range cfg.Peers {
			cfg.PeerAddrs[p] = "addr-" + strconv.FormatUint(p, 10)
		}
		if cfg.Join {
			cfg.Peers, cfg.PeerAddrs = nil, nil
		}
		return cfg
	}
	t.Cleanup(func() {
		c.mu.Lock()
		all := slices.Collect(maps.Keys(c.reps))
		c.mu.Unlock()
		for _, id := range all {
			c.stop(id)
		}
	})
	return c
}

// addJoiner registers a new node that starts with an empty DB and
// Config.Join (it is not in anyone's Peers).
func (c *testCluster) addJoiner(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.join[id] = true
	c.dirs[id] = filepath.Join(c.root, strconv.FormatUint(id, 10))
}

func (c *testCluster) startAll() {
	for _, id := range c.ids {
		c.start(id)
	}
}

func (c *testCluster) start(id uint64) {
	c.t.Helper()
	db, err := pebble.Open(c.dirs[id], &pebble.Options{Logger: quietPebble{}, DisableWAL: true})
	if err != nil {
		c.t.Fatalf("open pebble %d: %v", id, err)
	}
	sm := &testSM{countOnly: c.countOnly}
	r, err := Open(c.cfg(id), db, sm, &memTransport{net: c.net, from: id})
	if err != nil {
		db.Close()
		c.t.Fatalf("open replica %d: %v", id, err)
	}
	c.mu.Lock()
	c.dbs[id], c.reps[id], c.sms[id] = db, r, sm
	c.mu.Unlock()
	c.net.set(id, r)
}

func (c *testCluster) stop(id uint64) {
	c.mu.Lock()
	r, db, sm := c.reps[id], c.dbs[id], c.sms[id]
	delete(c.reps, id)
	delete(c.dbs, id)
	c.mu.Unlock()
	if r == nil {
		return
	}
	c.net.set(id, nil)
	if err := r.Close(); err != nil {
		c.t.Errorf("close replica %d: %v", id, err)
	}
	if err := db.Close(); err != nil {
		c.t.Errorf("close db %d: %v", id, err)
	}
	if v := sm.violations.Load(); v != 0 {
		c.t.Errorf("node %d applied an index twice or out of order (%d times)", id, v)
	}
}

// crashed removes node id, whose replica stopped on its own with a fatal
// error, and returns that error.
func (c *testCluster) crashed(id uint64) error {
	c.mu.Lock()
	r, db := c.reps[id], c.dbs[id]
	delete(c.reps, id)
	delete(c.dbs, id)
	c.mu.Unlock()
	c.net.set(id, nil)
	err := r.Close()
	if cerr := db.Close(); cerr != nil {
		c.t.Errorf("close db %d: %v", id, cerr)
	}
	return err
}

// checkSameData fails t for each node whose data is not ref ("node N data
// differs <when>") or, unless count is negative, whose state machine did
// not apply count commands.
func (c *testCluster) checkSameData(t *testing.T, ref, when string, count int) {
	t.Helper()
	for _, id := range c.ids {
		if got := c.data(id); got != ref {
			t.Errorf("node %d data differs "+when+":\n%s\nvs\n%s", id, got, ref)
		}
		if count < 0 {
			continue
		}
		if n := c.count(id); n != uint64(count) {
			t.Errorf("node %d applied %d commands, want %d", id, n, count)
		}
	}
}

// running returns the ids of the nodes that are started.
func (c *testCluster) running() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.reps))
}

func (c *testCluster) rep(id uint64) *Replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reps[id]
}

func (c *testCluster) db(id uint64) *pebble.DB {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dbs[id]
}

// waitLeader waits until one of ids leads and every one of ids knows it.
func (c *testCluster) waitLeader(ids ...uint64) uint64 {
	c.t.Helper()
	if len(ids) == 0 {
		ids = c.ids
	}
	var lead uint64
	waitFor(c.t, 10*time.Second, "a leader known to "+strconv.Quote(idsString(ids)), func() bool {
		lead = 0
		for _, id := range ids {
			st := c.rep(id).Status()
			if st.Role == "leader" {
				lead = id
			}
		}
		if lead == 0 {
			return false
		}
		for _, id := range ids {
			if c.rep(id).Leader() != lead {
				return false
			}
		}
		return true
	})
	return lead
}

func (c *testCluster) waitApplied(ids []uint64, index uint64) {
	c.t.Helper()
	waitFor(c.t, 10*time.Second, "applied >= "+strconv.FormatUint(index, 10), func() bool {
		for _, id := range ids {
			if c.rep(id).Applied() < index {
				return false
			}
		}
		return true
	})
}

func (c *testCluster) data(id uint64) string {
	v, cl, err := c.db(id).Get(smDataKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return ""
	}
	if err != nil {
		c.t.Fatalf("read data of %d: %v", id, err)
	}
	defer cl.Close()
	return string(v)
}

func (c *testCluster) count(id uint64) uint64 { return getU64(c.db(id), smCountKey) }

func (c *testCluster) propose(id uint64, cmd string) uint64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, idx, err := c.rep(id).Propose(ctx, []byte(cmd))
	if err != nil {
		c.t.Fatalf("propose %q on %d: %v", cmd, id, err)
	}
	if res.(uint64) != idx {
		c.t.Fatalf("propose %q: result %v, index %d", cmd, res, idx)
	}
	return idx
}

func idsString(ids []uint64) string {
	s := ""
	for i, id := range ids {
		if i > 0 {
			s += ","
		}
		s += strconv.FormatUint(id, 10)
	}
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	eventually.Holds(t, timeout, what, func() error { return eventually.True(cond(), "not yet") })
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic("pebble: fatal: " + format)
}
