package router

import (
	"context"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

func TestForwardFollowsLeaderHint(t *testing.T) {
	nodes := startStandins(t, "c1", 3, 2) // members[0] is a follower
	_, c := startRouter(t, []wire.ClusterInfo{{ID: "c1", Members: members(addrs(nodes)...)}}, nil)

	resp := call(t, c, &wire.Request{Op: wire.OpPut, Path: "/photos/a.jpg", Data: []byte("hi"), Session: 7, Seq: 9, TimeoutMs: 3000})
	if resp.Code != wire.OK {
		t.Fatalf("put: %v", resp.Err())
	}
	if got := nodes[0].calls.Load(); got != 1 {
		t.Errorf("follower 0 got %d requests, want 1 (then the hint)", got)
	}
	if got := nodes[1].calls.Load(); got != 0 {
		t.Errorf("follower 1 got %d requests, want 0: the hint should be followed", got)
	}
	rs := nodes[2].requests()
	if len(rs) != 1 {
		t.Fatalf("leader got %d requests, want 1", len(rs))
	}
	got := rs[0]
	if got.Op != wire.OpPut || got.Path != "/photos/a.jpg" || string(got.Data) != "hi" || got.Session != 7 || got.Seq != 9 {
		t.Errorf("leader got %+v, want the client's request", got)
	}
	if got.Table != 1 {
		t.Errorf("forwarded table version %d, want 1", got.Table)
	}
	if got.TimeoutMs == 0 || got.TimeoutMs > 3000 {
		t.Errorf("forwarded TimeoutMs %d, want the remaining deadline in (0, 3000]", got.TimeoutMs)
	}

	// The leader is cached now: the next request goes straight to it.
	resp = call(t, c, &wire.Request{Op: wire.OpGet, Path: "/photos/a.jpg"})
	if resp.Code != wire.OK || string(resp.Data) != "hi" {
		t.Fatalf("get: %v %q", resp.Err(), resp.Data)
	}
	if got := nodes[0].calls.Load(); got != 1 {
		t.Errorf("follower 0 got %d requests, want still 1 with the leader cached", got)
	}

	// Leader moves: the old one now points at node 1.
	nodes[1].set("leader", "")
	nodes[2].set("follower", nodes[1].addr)
	nodes[0].set("follower", nodes[1].addr)
	resp = call(t, c, &wire.Request{Op: wire.OpPut, Path: "/photos/b.jpg", Data: []byte("b")})
	if resp.Code != wire.OK {
		t.Fatalf("put after leader change: %v", resp.Err())
	}
	if got := nodes[1].calls.Load(); got != 1 {
		t.Errorf("new leader got %d requests, want 1", got)
	}
}

func TestForwardSkipsDeadMember(t *testing.T) {
	nodes := startStandins(t, "c1", 1, 0)
	_, c := startRouter(t, []wire.ClusterInfo{{ID: "c1", Members: members(deadAddr(t), nodes[0].addr)}}, nil)
	for i := range 3 {
		resp := call(t, c, &wire.Request{Op: wire.OpPut, Path: "/a/" + strconv.Itoa(i), Data: []byte("x"), TimeoutMs: 3000})
		if resp.Code != wire.OK {
			t.Fatalf("put %d: %v", i, resp.Err())
		}
	}
	if got := nodes[0].calls.Load(); got != 3 {
		t.Errorf("leader got %d requests, want 3", got)
	}
}

func TestForwardLeaderClosedMidway(t *testing.T) {
	nodes := startStandins(t, "c1", 2, 0)
	_, c := startRouter(t, []wire.ClusterInfo{{ID: "c1", Members: members(addrs(nodes)...)}}, nil)
	if resp := call(t, c, &wire.Request{Op: wire.OpPut, Path: "/a/x", Data: []byte("1")}); resp.Code != wire.OK {
		t.Fatalf("put: %v", resp.Err())
	}
	// The cached leader dies and node 1 takes over.
	nodes[0].srv.Close()
	nodes[1].set("leader", "")
	resp := call(t, c, &wire.Request{Op: wire.OpPut, Path: "/a/y", Data: []byte("2"), TimeoutMs: 3000})
	if resp.Code != wire.OK {
		t.Fatalf("put after leader death: %v", resp.Err())
	}
}

func TestForwardDeadline(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) []string
		want  []wire.Code
		last  string // the message must give this as the last error ("" if no check)
	}{
		// Mostly UNAVAILABLE; TIMEOUT when the deadline cuts short a try
		// at a live follower, which may have reached it (the outcome is
		// then unknown, and TIMEOUT is the router's answer by contract).
		{"dead and leaderless", func(t *testing.T) []string {
			nodes := startStandins(t, "c1", 2, -1) // followers that know no leader
			return []string{deadAddr(t), nodes[0].addr, nodes[1].addr}
		}, []wire.Code{wire.Unavailable, wire.Timeout}, ""},
		// UNAVAILABLE, or TIMEOUT when the deadline cuts short a try in
		// flight (as above: the node may have the request); the message
		// still gives the node's UNAVAILABLE as the last error.
		{"unavailable", func(t *testing.T) []string {
			nodes := startStandins(t, "c1", 1, 0)
			nodes[0].failWith(wire.Unavailable)
			return []string{nodes[0].addr}
		}, []wire.Code{wire.Unavailable, wire.Timeout}, "told to fail with UNAVAILABLE"},
		{"silent", func(t *testing.T) []string {
			nodes := startStandins(t, "c1", 1, 0)
			nodes[0].set("silent", "")
			return []string{nodes[0].addr}
		}, []wire.Code{wire.Timeout}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c := startRouter(t, []wire.ClusterInfo{{ID: "c1", Members: members(tc.setup(t)...)}}, nil)
			// Long enough that a loaded machine (race detector, parallel
			// packages) answers each stand-in try well within it.
			const timeout = 3 * time.Second
			start := time.Now()
			resp := call(t, c, &wire.Request{Op: wire.OpPut, Path: "/a/b", Data: []byte("x"), TimeoutMs: uint32(timeout.Milliseconds())})
			took := time.Since(start)
			ok := false
			for _, w := range tc.want {
				ok = ok || resp.Code == w
			}
			if !ok {
				t.Fatalf("got %v, want one of %v", resp.Err(), tc.want)
			}
			if !strings.Contains(resp.Message, "cluster c1") || !strings.Contains(resp.Message, "last error") {
				t.Errorf("message %q should name the cluster and the last error", resp.Message)
			}
			if !strings.Contains(resp.Message, tc.last) {
				t.Errorf("message %q should give %q as the last error", resp.Message, tc.last)
			}
			// Generous bound: the point is that the router answers before the
			// caller's deadline, not how fast it is.
			if took > timeout+time.Second {
				t.Errorf("answered after %v, deadline was %v", took, timeout)
			}
		})
	}
}

func TestForwardWrongRange(t *testing.T) {
	nodes := startStandins(t, "c1", 1, 0)
	nodes[0].failWith(wire.WrongRange)
	_, c := startRouter(t, []wire.ClusterInfo{{ID: "c1", Members: members(nodes[0].addr)}}, nil)
	resp := call(t, c, &wire.Request{Op: wire.OpGet, Path: "/a/b", TimeoutMs: 5000})
	if resp.Code != wire.WrongRange {
		t.Fatalf("got %v, want WRONG_RANGE", resp.Err())
	}
	if got := nodes[0].calls.Load(); got != wrongRangeTries {
		t.Errorf("node got %d requests, want %d", got, wrongRangeTries)
	}
}

func TestPathValidatedAtRouter(t *testing.T) {
	nodes := startStandins(t, "c1", 1, 0)
	_, c := startRouter(t, []wire.ClusterInfo{{ID: "c1", Members: members(nodes[0].addr)}}, nil)
	for _, p := range []string{"", "a", "/a//b", "/a/../b", "/a/"} {
		resp := call(t, c, &wire.Request{Op: wire.OpPut, Path: p})
		if resp.Code != wire.Invalid || !strings.Contains(resp.Message, "invalid path") {
			t.Errorf("put %q: got %v, want INVALID naming the rule", p, resp.Err())
		}
	}
	if got := nodes[0].calls.Load(); got != 0 {
		t.Errorf("node got %d requests for invalid paths", got)
	}
}

func TestTopDirectory(t *testing.T) {
	c1 := startStandins(t, "c1", 2, 1)
	c2 := startStandins(t, "c2", 1, 0)
	r, c := startRouter(t, []wire.ClusterInfo{
		{ID: "c1", Members: members(addrs(c1)...)},
		{ID: "c2", Members: members(addrs(c2)...)},
	}, nil)
	tab := r.Table().Current()
	want := []string{rootIn(t, tab, "c1", "p"), rootIn(t, tab, "c2", "q"), rootIn(t, tab, "c1", "r"), rootIn(t, tab, "c2", "s")}
	for _, root := range want {
		if resp := call(t, c, &wire.Request{Op: wire.OpPut, Path: "/" + root + "/f", Data: []byte(root)}); resp.Code != wire.OK {
			t.Fatalf("put under %s: %v", root, resp.Err())
		}
	}
	// c2 still holds a root that the table gives to c1 (as after a split,
	// before the background delete): it must not be listed twice.
	c2[0].store.mu.Lock()
	c2[0].store.roots[want[0]] = true
	c2[0].store.mu.Unlock()

	resp := call(t, c, &wire.Request{Op: wire.OpList, Path: "/"})
	if resp.Code != wire.OK {
		t.Fatalf("list /: %v", resp.Err())
	}
	var got []string
	for _, e := range resp.Entries {
		got = append(got, e.Name)
	}
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("list / = %v, want %v", got, want)
	}

	if resp := call(t, c, &wire.Request{Op: wire.OpStat, Path: "/"}); resp.Code != wire.OK || resp.Stat == nil || resp.Stat.Type != wire.TypeDir {
		t.Errorf("stat /: %v %+v", resp.Err(), resp.Stat)
	}
	if resp := call(t, c, &wire.Request{Op: wire.OpExists, Path: "/"}); resp.Code != wire.OK || !resp.Exists {
		t.Errorf("exists /: %v %v", resp.Err(), resp.Exists)
	}
	for _, op := range []wire.Op{wire.OpPut, wire.OpMkdir, wire.OpRemove} {
		if resp := call(t, c, &wire.Request{Op: op, Path: "/"}); resp.Code != wire.Invalid {
			t.Errorf("%v /: got %v, want INVALID", op, resp.Err())
		}
	}

	// One cluster down: the listing fails (never a silent partial listing).
	for _, n := range c2 {
		n.failWith(wire.Unavailable)
	}
	resp = call(t, c, &wire.Request{Op: wire.OpList, Path: "/", TimeoutMs: 300})
	if resp.Code != wire.Unavailable || !strings.Contains(resp.Message, "c2") {
		t.Errorf("list / with c2 down: got %v, want UNAVAILABLE naming c2", resp.Err())
	}
}

func TestStatusWithNodeDown(t *testing.T) {
	c1 := startStandins(t, "c1", 2, 1)
	c2 := startStandins(t, "c2", 1, 0)
	dead := deadAddr(t)
	_, c := startRouter(t, []wire.ClusterInfo{
		{ID: "c1", Members: members(c1[0].addr, c1[1].addr, dead)},
		{ID: "c2", Members: members(c2[0].addr)},
	}, nil)
	resp := call(t, c, &wire.Request{Op: wire.OpStatus})
	if resp.Code != wire.OK || resp.Status == nil {
		t.Fatalf("status: %v", resp.Err())
	}
	st := resp.Status
	if st.Router != "r1" || st.Version != 1 || len(st.Clusters) != 2 {
		t.Fatalf("status = %+v", st)
	}
	cs := st.Clusters[0]
	if cs.ID != "c1" || cs.Leader != c1[1].addr || len(cs.Nodes) != 3 {
		t.Fatalf("cluster c1 = %+v", cs)
	}
	if cs.Range != ring.Even(2)[0] {
		t.Errorf("c1 range %v, want %v", cs.Range, ring.Even(2)[0])
	}
	roles := []string{"follower", "leader", RoleDown}
	for i, n := range cs.Nodes {
		if n.Role != roles[i] {
			t.Errorf("c1 node %d role %q, want %q", i, n.Role, roles[i])
		}
	}
	if d := cs.Nodes[2]; d.Addr != dead || d.ID != 3 || d.Error == "" {
		t.Errorf("down node = %+v, want its address, id and an error", d)
	}
	if cs := st.Clusters[1]; cs.Leader != c2[0].addr || len(cs.Nodes) != 1 || cs.Nodes[0].Role != "leader" {
		t.Errorf("cluster c2 = %+v", cs)
	}

	tr := call(t, c, &wire.Request{Op: wire.OpTable})
	if tr.Code != wire.OK || tr.Routes == nil || tr.Routes.Version != 1 || len(tr.Routes.Ranges) != 2 {
		t.Errorf("table: %v %+v", tr.Err(), tr.Routes)
	}
}

// refreshingTable is a Table that catches up when asked, like a meta-group
// follower would.
type refreshingTable struct {
	*control.FileTable
	refresh func(ctx context.Context, seen uint64) error
}

func (t refreshingTable) Refresh(ctx context.Context, seen uint64) error { return t.refresh(ctx, seen) }

func TestForwardWrongRangeRefreshes(t *testing.T) {
	c1 := startStandins(t, "c1", 1, 0)
	c2 := startStandins(t, "c2", 1, 0)
	c1[0].failWith(wire.WrongRange) // c1 split its range away to c2
	ft, err := control.OpenFileTable(filepath.Join(t.TempDir(), TableFile), control.BootstrapTable([]wire.ClusterInfo{
		{ID: "c1", Members: members(c1[0].addr)},
		{ID: "c2", Members: members(c2[0].addr)},
	}))
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Uint64
	tab := refreshingTable{ft, func(ctx context.Context, v uint64) error {
		seen.Store(v)
		return ft.Update(ctx, func(tab *wire.TableInfo) error {
			for i := range tab.Ranges {
				tab.Ranges[i].Cluster = "c2"
			}
			return nil
		})
	}}
	_, c := startRouter(t, nil, func(cfg *Config) { cfg.Table = tab })
	path := "/" + rootIn(t, ft.Current(), "c1", "m") + "/f"
	resp := call(t, c, &wire.Request{Op: wire.OpPut, Path: path, Data: []byte("x")})
	if resp.Code != wire.OK {
		t.Fatalf("put: %v", resp.Err())
	}
	if seen.Load() != 2 || c2[0].calls.Load() != 1 || ft.Current().Version != 2 {
		t.Errorf("refresh saw %d, c2 got %d requests, table version %d; want 2, 1, 2", seen.Load(), c2[0].calls.Load(), ft.Current().Version)
	}
}

// A write whose outcome is unknown (a node answered TIMEOUT) is retried
// only when it carries a session, which makes the retry exactly-once;
// without one the router answers TIMEOUT after that one try instead of
// possibly applying it twice. Reads are always retried.
func TestForwardNoBlindRetryOfUnknownOutcome(t *testing.T) {
	for _, tc := range []struct {
		name     string
		req      wire.Request
		retried  bool
		wantCode wire.Code
	}{
		{"append without session", wire.Request{Op: wire.OpAppend, Path: "/a/b", Data: []byte("x")}, false, wire.Timeout},
		{"rename without session", wire.Request{Op: wire.OpRename, Path: "/a/b", To: "/a/c"}, false, wire.Timeout},
		{"put if absent without session", wire.Request{Op: wire.OpPut, Path: "/a/b", Flags: wire.FlagIfAbsent}, false, wire.Timeout},
		{"put without session (idempotent)", wire.Request{Op: wire.OpPut, Path: "/a/b", Data: []byte("x")}, true, wire.Timeout},
		{"write with session", wire.Request{Op: wire.OpAppend, Path: "/a/b", Data: []byte("x"), Session: 5, Seq: 1}, true, wire.Timeout},
		{"read", wire.Request{Op: wire.OpGet, Path: "/a/b"}, true, wire.Timeout},
		{"chunk (content-addressed)", wire.Request{Op: wire.OpChunk, Path: "/a/b", Data: []byte("x")}, true, wire.Timeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := startStandins(t, "c1", 2, 0)
			for _, n := range nodes {
				n.failWith(wire.Timeout)
			}
			_, c := startRouter(t, []wire.ClusterInfo{{ID: "c1", Members: members(addrs(nodes)...)}}, nil)
			req := tc.req
			req.TimeoutMs = 1500
			resp := call(t, c, &req)
			if resp.Code != tc.wantCode {
				t.Fatalf("got %v, want %v", resp.Err(), tc.wantCode)
			}
			tries := nodes[0].calls.Load() + nodes[1].calls.Load()
			if tc.retried && tries < 2 {
				t.Fatalf("%d tries, want a retry", tries)
			}
			if !tc.retried && tries != 1 {
				t.Fatalf("%d tries, want exactly one", tries)
			}
		})
	}
}

// A leader slower than AttemptTimeout (a slow disk) is waited for, not sent
// the request again: each copy would be applied work, and a slow leader
// sent copies of every slow write only gets slower. The one copy it gets
// carries the caller's whole deadline, not the attempt's. A request that
// is not retried after an unknown outcome is waited for the same way.
func TestForwardWaitsForSlowLeader(t *testing.T) {
	for _, req := range []wire.Request{
		{Op: wire.OpChunk, Path: "/a/b", Data: []byte("chunk")},
		{Op: wire.OpAppend, Path: "/a/b", Data: []byte("x")}, // no session: never sent twice
	} {
		t.Run(req.Op.String(), func(t *testing.T) {
			nodes := startStandins(t, "c1", 3, 0)
			nodes[0].slowBy(900 * time.Millisecond)
			_, c := startRouter(t, []wire.ClusterInfo{{ID: "c1", Members: members(addrs(nodes)...)}}, func(cfg *Config) {
				cfg.AttemptTimeout = 200 * time.Millisecond
			})
			req.TimeoutMs = 4000
			if resp := call(t, c, &req); resp.Code == wire.Timeout || resp.Code == wire.Unavailable {
				t.Fatalf("%v through a slow leader: %v, want its answer", req.Op, resp.Err())
			}
			rs := nodes[0].requests()
			if len(rs) != 1 {
				t.Fatalf("the slow leader got %d copies of the %v, want 1", len(rs), req.Op)
			}
			if rs[0].TimeoutMs <= 1000 {
				t.Errorf("the leader was given %d ms, want the caller's deadline, not the attempt's 200 ms", rs[0].TimeoutMs)
			}
			if n := nodes[1].calls.Load() + nodes[2].calls.Load(); n != 0 {
				t.Errorf("the followers got %d requests while the leader worked, want 0", n)
			}
		})
	}
}
