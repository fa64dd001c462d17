package router_test

// Router tests against real storage nodes (internal/testcluster: two
// clusters of three cluster.Node each, Raft over loopback). The stand-ins
// of standin_test.go remain for what a real node cannot be made to do on
// demand: stay silent forever, answer WRONG_RANGE or UNAVAILABLE to every
// request, or name a given leader.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/internal/testcluster"
	"github.com/cleavefs/cleave/router"
	"github.com/cleavefs/cleave/wire"
)

func dialRouter(t *testing.T, d *testcluster.Deployment) *rpc.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := rpc.Dial(ctx, d.Addr, rpc.DialConfig{Client: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// call is the package's own test helper: req through the router with a
// 5s deadline.
var call = router.Call

func TestRealClusters(t *testing.T) {
	d := testcluster.Start(t, testcluster.Options{Clusters: 2})
	c := dialRouter(t, d)
	a, b := "/"+d.RootIn(t, "c1", "a"), "/"+d.RootIn(t, "c2", "b")
	var seq uint64
	mut := func(req *wire.Request) *wire.Response {
		seq++
		req.Session, req.Seq = 42, seq
		return call(t, c, req)
	}
	for _, p := range []string{a + "/f", b + "/f"} {
		if resp := mut(&wire.Request{Op: wire.OpPut, Path: p, Data: []byte("x"), Flags: wire.FlagParents}); resp.Code != wire.OK {
			t.Fatalf("put %s: %v", p, resp.Err())
		}
		if resp := call(t, c, &wire.Request{Op: wire.OpGet, Path: p}); resp.Code != wire.OK || string(resp.Data) != "x" {
			t.Fatalf("get %s: %v %q", p, resp.Err(), resp.Data)
		}
	}

	t.Run("cross root", func(t *testing.T) {
		for _, op := range []wire.Op{wire.OpRename, wire.OpCopy} {
			resp := mut(&wire.Request{Op: op, Path: a + "/f", To: b + "/g"})
			ra, rb := strings.TrimPrefix(a, "/"), strings.TrimPrefix(b, "/")
			if resp.Code != wire.CrossRoot || !strings.Contains(resp.Message, ra) || !strings.Contains(resp.Message, rb) {
				t.Errorf("%v across roots: %v, want CROSS_ROOT naming %s and %s", op, resp.Err(), ra, rb)
			}
		}
		for _, to := range []string{"", "/", a + "//x", "rel"} {
			if resp := mut(&wire.Request{Op: wire.OpRename, Path: a + "/f", To: to}); resp.Code != wire.Invalid {
				t.Errorf("rename to %q: %v, want INVALID", to, resp.Err())
			}
		}
	})

	t.Run("within root", func(t *testing.T) {
		resp := mut(&wire.Request{Op: wire.OpRename, Path: b + "/f", To: b + "/g"})
		if resp.Code != wire.OK {
			t.Fatalf("rename within %s: %v", b, resp.Err())
		}
		if resp := call(t, c, &wire.Request{Op: wire.OpGet, Path: b + "/g"}); resp.Code != wire.OK || string(resp.Data) != "x" {
			t.Errorf("renamed file: %v %q", resp.Err(), resp.Data)
		}
	})

	t.Run("chunk and commit route by path", func(t *testing.T) {
		resp := call(t, c, &wire.Request{Op: wire.OpChunk, Path: b + "/big", Data: []byte("chunk")})
		if resp.Code != wire.OK || resp.Chunk == "" {
			t.Fatalf("chunk: %v %q", resp.Err(), resp.Chunk)
		}
		resp = mut(&wire.Request{Op: wire.OpCommit, Path: b + "/big", Chunks: []string{resp.Chunk, resp.Chunk}, Size: 10})
		if resp.Code != wire.OK {
			t.Fatalf("commit: %v", resp.Err())
		}
		if resp := call(t, c, &wire.Request{Op: wire.OpGet, Path: b + "/big"}); string(resp.Data) != "chunkchunk" {
			t.Errorf("committed file: %v %q", resp.Err(), resp.Data)
		}
	})

	t.Run("top pages", func(t *testing.T) {
		var names []string
		after := ""
		for range 10 {
			resp := call(t, c, &wire.Request{Op: wire.OpList, Path: "/", Limit: 1, After: after})
			if resp.Code != wire.OK || len(resp.Entries) > 1 {
				t.Fatalf("list / page: %v, %d entries", resp.Err(), len(resp.Entries))
			}
			for _, e := range resp.Entries {
				names = append(names, e.Name)
			}
			if resp.Next == "" {
				break
			}
			after = resp.Next
		}
		want := []string{strings.TrimPrefix(a, "/"), strings.TrimPrefix(b, "/")}
		if want[0] > want[1] {
			want[0], want[1] = want[1], want[0]
		}
		if strings.Join(names, ",") != strings.Join(want, ",") {
			t.Errorf("paged / = %v, want %v", names, want)
		}
		if resp := call(t, c, &wire.Request{Op: wire.OpList, Path: "/", After: "!!"}); resp.Code != wire.Invalid {
			t.Errorf("bad token: %v, want INVALID", resp.Err())
		}
		if resp := call(t, c, &wire.Request{Op: wire.OpList, Path: "/", Flags: wire.FlagRecursive}); resp.Code != wire.Invalid {
			t.Errorf("recursive /: %v, want INVALID", resp.Err())
		}
	})

	t.Run("leader killed", func(t *testing.T) {
		// The router follows a real leader change in c2 (a port of
		// TestForwardLeaderClosedMidway with a real election).
		for _, n := range d.Nodes["c2"] {
			if n.Status().Role == "leader" {
				d.StopNode(n)
				break
			}
		}
		// The request's own 8s, not call's 5s: closing the leader and
		// electing another takes 3-5s under the race detector on a busy
		// machine.
		seq++
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		resp, err := c.Call(ctx, &wire.Request{Op: wire.OpPut, Path: b + "/after", Data: []byte("y"), Session: 42, Seq: seq})
		if err != nil {
			t.Fatalf("put after the leader died: %v", err)
		}
		if resp.Code != wire.OK {
			t.Fatalf("put after the leader died: %v", resp.Err())
		}
	})
}
