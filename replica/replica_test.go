package replica

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"
)

func others(ids []uint64, not uint64) []uint64 {
	var out []uint64
	for _, id := range ids {
		if id != not {
			out = append(out, id)
		}
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	base := DefaultConfig()
	base.ID, base.Peers, base.LogDir = 1, []uint64{1, 2, 3}, "/log"
	tests := []struct {
		name string
		edit func(*Config)
		want string // substring of the error, "" for valid
	}{
		{"default", func(*Config) {}, ""},
		{"zero id", func(c *Config) { c.ID = 0 }, "ID must be nonzero"},
		{"id not in peers", func(c *Config) { c.ID = 4 }, "does not contain ID 4"},
		{"duplicate peer", func(c *Config) { c.Peers = []uint64{1, 2, 2} }, "contains 2 twice"},
		{"election <= heartbeat", func(c *Config) { c.ElectionTicks, c.HeartbeatTicks = 2, 2 }, "greater than HeartbeatTicks"},
		{"negative batch", func(c *Config) { c.MaxBatch = -1 }, "MaxBatch"},
		{"no log dir", func(c *Config) { c.LogDir = "" }, "LogDir must be set"},
		{"restart without peers", func(c *Config) { c.Peers = nil }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.edit(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestElectionAndProposeInOrder(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()

	var last uint64
	var want strings.Builder
	for i := range 20 {
		cmd := fmt.Sprintf("cmd-%d", i)
		idx := c.propose(lead, cmd)
		if idx <= last {
			t.Fatalf("proposal %d landed at %d, not after %d", i, idx, last)
		}
		last = idx
		want.WriteString(cmd + "\n")
	}

	// Concurrent proposers: every one gets its own index.
	var wg sync.WaitGroup
	idxs := make(chan uint64, 50)
	for i := range 50 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, idx, err := c.rep(lead).Propose(ctx, fmt.Appendf(nil, "par-%d", i))
			if err != nil {
				t.Errorf("concurrent propose %d: %v", i, err)
			}
			idxs <- idx
		})
	}
	wg.Wait()
	close(idxs)
	seen := map[uint64]bool{}
	for idx := range idxs {
		if seen[idx] {
			t.Fatalf("two proposals at index %d", idx)
		}
		seen[idx] = true
		last = max(last, idx)
	}

	c.waitApplied(c.ids, last)
	ref := c.data(lead)
	if !strings.HasPrefix(ref, want.String()) {
		t.Fatalf("leader data does not start with the sequential commands:\n%s", ref)
	}
	c.checkSameData(t, ref, "from leader's", 70)
}

func TestProposeOnFollowerReturnsNotLeader(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	f := others(c.ids, lead)[0]
	_, _, err := c.rep(f).Propose(context.Background(), []byte("x"))
	var nl *NotLeaderError
	if !errors.As(err, &nl) || !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Propose on follower = %v, want *NotLeaderError", err)
	}
	if nl.Leader != lead {
		t.Fatalf("NotLeaderError.Leader = %d, want %d", nl.Leader, lead)
	}
}

func TestLeaderFailoverAndCatchUp(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	old := c.waitLeader()
	for i := range 5 {
		c.propose(old, fmt.Sprintf("before-%d", i))
	}
	c.stop(old)

	rest := others(c.ids, old)
	lead := c.waitLeader(rest...)
	var last uint64
	for i := range 5 {
		last = c.propose(lead, fmt.Sprintf("after-%d", i))
	}

	c.start(old)
	c.waitApplied(c.ids, last)
	ref := c.data(lead)
	c.checkSameData(t, ref, "after catch-up", 10)
}

func TestRestartAllReplaysNothingTwice(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	var last uint64
	for i := range 10 {
		last = c.propose(lead, fmt.Sprintf("cmd-%d", i))
	}
	c.waitApplied(c.ids, last)
	for _, id := range c.ids {
		c.stop(id) // checks the state machine saw no index twice
	}

	c.startAll()
	for _, id := range c.ids {
		if got := c.rep(id).Applied(); got < last {
			t.Errorf("node %d reopened with applied %d, want >= %d", id, got, last)
		}
	}
	lead = c.waitLeader()
	last = c.propose(lead, "after-restart")
	c.waitApplied(c.ids, last)
	for _, id := range c.ids {
		if n := c.count(id); n != 11 {
			t.Errorf("node %d applied %d commands, want 11", id, n)
		}
	}
}

func TestReadIndexOnFollower(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	for _, f := range others(c.ids, lead) {
		for i := range 5 {
			cmd := fmt.Sprintf("w-%d-%d", f, i)
			c.propose(lead, cmd)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := c.rep(f).ReadIndex(ctx)
			cancel()
			if err != nil {
				t.Fatalf("ReadIndex on %d: %v", f, err)
			}
			if !strings.Contains(c.data(f), cmd+"\n") {
				t.Fatalf("follower %d does not see %q after ReadIndex", f, cmd)
			}
		}
	}

	// Many concurrent readers on leader and followers.
	var wg sync.WaitGroup
	for i := range 30 {
		id := c.ids[i%len(c.ids)]
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.rep(id).ReadIndex(ctx); err != nil {
				t.Errorf("concurrent ReadIndex on %d: %v", id, err)
			}
		})
	}
	wg.Wait()
}

func TestReadIndexSlowFollowerWaitsForApply(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	f := others(c.ids, lead)[0]
	// Hold back appends to f: the leader commits with the third node.
	var hold sync.Mutex
	holding := true
	c.net.setDrop(func(from, to uint64, m *pb.Message) bool {
		hold.Lock()
		defer hold.Unlock()
		return holding && to == f && m.GetType() == pb.MsgApp
	})
	c.propose(lead, "held")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- c.rep(f).ReadIndex(ctx)
	}()
	select {
	case err := <-done:
		t.Fatalf("ReadIndex returned %v before the follower could apply the write", err)
	case <-time.After(100 * time.Millisecond): // a bounded wait for a non-event
	}
	hold.Lock()
	holding = false
	hold.Unlock()
	if err := <-done; err != nil {
		t.Fatalf("ReadIndex: %v", err)
	}
	if !strings.Contains(c.data(f), "held\n") {
		t.Fatalf("follower does not see the write after ReadIndex")
	}
}

func TestPartitionedLeaderCannotCommit(t *testing.T) {
	c := newTestCluster(t, 3)
	base := c.cfg
	c.cfg = func(id uint64) Config {
		cfg := base(id)
		cfg.ElectionTicks = 100 // the isolated leader keeps its role for a while
		return cfg
	}
	c.startAll()
	old := c.waitLeader()
	c.propose(old, "before")
	c.net.partition(old)

	// A short proposal on the isolated leader times out (or, if it already
	// stepped down, is refused).
	short := make(chan error, 1)
	long := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		_, _, err := c.rep(old).Propose(ctx, []byte("minority-short"))
		short <- err
	}()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _, err := c.rep(old).Propose(ctx, []byte("minority-long"))
		long <- err
	}()
	if err := <-short; !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrNotLeader) {
		t.Fatalf("minority Propose = %v, want deadline exceeded", err)
	}

	rest := others(c.ids, old)
	lead := c.waitLeader(rest...)
	var last uint64
	for i := range 5 {
		last = c.propose(lead, fmt.Sprintf("majority-%d", i))
	}

	c.net.heal()
	// The old leader learns the new term; its uncommitted entries are
	// overwritten and the waiting proposer learns so.
	if err := <-long; !errors.Is(err, ErrProposalLost) && !errors.Is(err, ErrNotLeader) {
		t.Fatalf("isolated leader's proposal after heal = %v, want ErrProposalLost", err)
	} else if errors.Is(err, ErrNotLeader) {
		t.Logf("isolated leader stepped down before the proposal arrived; ErrProposalLost not exercised")
	}
	c.waitApplied(c.ids, last)
	ref := c.data(lead)
	if strings.Contains(ref, "minority") {
		t.Fatalf("a minority proposal was applied:\n%s", ref)
	}
	c.checkSameData(t, ref, "after heal", -1)
}

func TestBadMessagesAreDropped(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	r := c.rep(lead)
	bad := []*pb.Message{
		nil,
		{},
		{Type: pb.MsgApp.Enum(), From: new(uint64(9)), To: new(lead), Term: new(uint64(1000))},
		{Type: pb.MsgProp.Enum(), From: new(others(c.ids, lead)[0]), To: new(lead), Entries: []*pb.Entry{{Data: []byte("injected")}}},
		{Type: pb.MsgHup.Enum(), From: new(uint64(2)), To: new(lead)},
		{Type: pb.MsgSnap.Enum(), From: new(uint64(2)), To: new(lead)},
		{Type: pb.MsgAppResp.Enum(), From: new(uint64(77)), To: new(lead)},
		{Type: pb.MsgHeartbeat.Enum(), From: new(uint64(2)), To: new(uint64(42))},
	}
	for _, m := range bad {
		r.Step(r.Group(), m)
	}
	idx := c.propose(lead, "ok")
	c.waitApplied(c.ids, idx)
	if d := c.data(lead); strings.Contains(d, "injected") {
		t.Fatalf("an injected proposal was applied: %q", d)
	}
	if got := c.rep(lead).Status().Term; got >= 1000 {
		t.Fatalf("a message from a non-member changed the term to %d", got)
	}
}

func TestCloseFailsPendingAndLaterCalls(t *testing.T) {
	c := newTestCluster(t, 1)
	c.startAll()
	lead := c.waitLeader()
	c.propose(lead, "one")
	r := c.rep(lead)
	if err := r.ReadIndex(context.Background()); err != nil {
		t.Fatalf("single-node ReadIndex: %v", err)
	}
	c.stop(lead)
	if _, _, err := r.Propose(context.Background(), []byte("x")); !errors.Is(err, ErrStopped) {
		t.Fatalf("Propose after Close = %v, want ErrStopped", err)
	}
	if err := r.ReadIndex(context.Background()); !errors.Is(err, ErrStopped) {
		t.Fatalf("ReadIndex after Close = %v, want ErrStopped", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

func BenchmarkPropose(b *testing.B) {
	c := newTestCluster(b, 3)
	c.countOnly = true
	c.startAll()
	lead := c.waitLeader()
	r := c.rep(lead)
	cmd := make([]byte, 128)
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, _, err := r.Propose(ctx, cmd); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// Honest peers' frames are never dropped as invalid, however the writes
// of the leader and followers overlap with their messages: a follower may
// acknowledge entries the leader sent before its own fsync ended, and the
// leader must count that acknowledgement, not drop it as forged.
func TestNoHonestFrameDroppedUnderLoad(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	r := c.rep(lead)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for i := range 20 {
				if _, _, err := r.Propose(ctx, fmt.Appendf(nil, "w%d-%d", w, i)); err != nil {
					t.Errorf("propose: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	idx := c.propose(lead, "last")
	c.waitApplied(c.ids, idx)
	for _, id := range c.ids {
		if st := c.rep(id).Stats(); st.Invalid != 0 || st.BadCommit != 0 {
			t.Errorf("node %d dropped honest frames: %d invalid, %d commit beyond log", id, st.Invalid, st.BadCommit)
		}
	}
	c.checkSameData(t, c.data(lead), "after the load", 32*20+1)
}

// TestProposeFunc: proposals made without a waiting goroutine are each
// answered exactly once, with what Propose returns: on the leader their
// result and index once applied, on a follower *NotLeaderError; a stopped
// replica takes none.
func TestProposeFunc(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	type answer struct {
		cmd    string
		result any
		index  uint64
		err    error
	}
	const n = 50
	answers := make(chan answer, 2*n)
	for i := range n {
		cmd := fmt.Sprintf("f-%d", i)
		if !c.rep(lead).ProposeFunc([]byte(cmd), func(result any, index uint64, err error) {
			answers <- answer{cmd, result, index, err}
		}) {
			t.Fatalf("ProposeFunc(%s) was not queued", cmd)
		}
	}
	seen := map[string]bool{}
	var last uint64
	for range n {
		a := <-answers
		if a.err != nil || seen[a.cmd] || a.result != a.index {
			t.Fatalf("answer %+v: want one answer per command, no error, Apply's result (its index)", a)
		}
		seen[a.cmd] = true
		last = max(last, a.index)
	}
	c.waitApplied(c.ids, last)
	for i := range n {
		if cmd := fmt.Sprintf("f-%d\n", i); !strings.Contains(c.data(lead), cmd) {
			t.Fatalf("f-%d answered but not applied", i)
		}
	}

	f := others(c.ids, lead)[0]
	if !c.rep(f).ProposeFunc([]byte("x"), func(result any, index uint64, err error) {
		answers <- answer{"x", result, index, err}
	}) {
		t.Fatal("ProposeFunc on a follower was not queued")
	}
	var nl *NotLeaderError
	if a := <-answers; !errors.As(a.err, &nl) || nl.Leader != lead {
		t.Fatalf("ProposeFunc on a follower answered %+v, want *NotLeaderError naming %d", a, lead)
	}

	stopped := c.rep(f)
	c.stop(f)
	if stopped.ProposeFunc([]byte("y"), func(any, uint64, error) { t.Error("a stopped replica answered") }) {
		t.Fatal("a stopped replica took a proposal")
	}
	select {
	case a := <-answers:
		t.Fatalf("extra answer %+v", a)
	default:
	}
}

// TestStatusCoversAnsweredProposals: by the time a proposal is answered,
// Status shows it committed and applied, so whoever was told of a write
// and then reads Status (a test waiting for followers to catch up, an
// operator's status command) never sees an index before it.
func TestStatusCoversAnsweredProposals(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	type answer struct {
		index uint64
		err   error
		st    Status
	}
	const n = 20
	answers := make(chan answer, n)
	for i := range n {
		rep := c.rep(lead)
		if !rep.ProposeFunc([]byte(fmt.Sprintf("s-%d", i)), func(_ any, index uint64, err error) {
			answers <- answer{index, err, rep.Status()}
		}) {
			t.Fatalf("proposal %d was not queued", i)
		}
	}
	for range n {
		a := <-answers
		if a.err != nil || a.st.Commit < a.index || a.st.Applied < a.index {
			t.Fatalf("proposal at index %d answered (err %v) while Status showed commit %d, applied %d", a.index, a.err, a.st.Commit, a.st.Applied)
		}
	}
	for i := range n {
		_, index, err := c.rep(lead).Propose(context.Background(), []byte(fmt.Sprintf("p-%d", i)))
		if st := c.rep(lead).Status(); err != nil || st.Commit < index || st.Applied < index {
			t.Fatalf("Propose answered index %d (err %v), then Status showed commit %d, applied %d", index, err, st.Commit, st.Applied)
		}
	}
}

// ReadIndexFunc's then is called once per read, off the loop (it may call
// the replica, even wait for a proposal), and sees every write committed
// before the call, on the leader and on a follower.
func TestReadIndexFunc(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	f := others(c.ids, lead)[0]
	c.propose(lead, "before")
	type seen struct {
		id   uint64
		data string
		err  error
	}
	const n = 40
	answers := make(chan seen, 2*n)
	for i := range n {
		id := []uint64{lead, f}[i%2]
		db := c.db(id)
		if !c.rep(id).ReadIndexFunc(func(scope *ReadScope, err error) {
			if err != nil {
				answers <- seen{id, "", err}
				return
			}
			// The round's reads share one snapshot, opened by the first.
			snap := scope.Shared(func() (any, func()) {
				s := db.NewSnapshot()
				return s, func() { s.Close() }
			}).(*pebble.Snapshot)
			v, cl, gerr := snap.Get(smDataKey)
			if gerr == nil {
				defer cl.Close()
			}
			answers <- seen{id, string(v), gerr}
		}) {
			t.Fatalf("read %d was not queued", i)
		}
	}
	for range n {
		a := <-answers
		if a.err != nil || !strings.Contains(a.data, "before\n") {
			t.Fatalf("read on %d: %v, data %q; want no error and the write committed before it", a.id, a.err, a.data)
		}
	}

	proposed := make(chan error, 1)
	if !c.rep(lead).ReadIndexFunc(func(_ *ReadScope, err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _, perr := c.rep(lead).Propose(ctx, []byte("from-then"))
		proposed <- errors.Join(err, perr)
	}) {
		t.Fatal("read not queued")
	}
	if err := <-proposed; err != nil {
		t.Fatalf("a proposal waited for inside then: %v", err)
	}

	stopped := c.rep(f)
	c.stop(f)
	if stopped.ReadIndexFunc(func(*ReadScope, error) { t.Error("a stopped replica answered") }) {
		t.Fatal("a stopped replica took a read")
	}
	select {
	case a := <-answers:
		t.Fatalf("extra answer %+v", a)
	default:
	}
}
