package router

import (
	"context"
	"testing"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// warm dials r's pool to every address, as earlier requests would have,
// so that HandleAsync finds live connections.
func warm(t *testing.T, r *Router, addrs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, a := range addrs {
		if _, err := r.pool.Get(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
}

// handleAsync offers req to r.HandleAsync and returns whether it took
// the request and where its reply arrives.
func handleAsync(ctx context.Context, r *Router, req wire.Request) (bool, <-chan *wire.Response) {
	ch := make(chan *wire.Response, 2)
	took := r.HandleAsync(ctx, &req, func(resp *wire.Response) { ch <- resp })
	return took, ch
}

// replyOf waits for the reply; it must come well within limit.
func replyOf(t *testing.T, ch <-chan *wire.Response, limit time.Duration) *wire.Response {
	t.Helper()
	select {
	case resp := <-ch:
		return resp
	case <-time.After(limit):
		t.Fatalf("no reply within %v", limit)
		return nil
	}
}

// A file operation whose node the pool is connected to is sent from the
// caller's reader (HandleAsync takes it) and behaves as forward does:
// answered by the leader, a follower's hint followed, a slow leader
// waited for rather than sent a second copy, a dying connection's request
// retried elsewhere when that is safe.
func TestHandleAsyncForwards(t *testing.T) {
	ctx := context.Background()
	t.Run("cached leader", func(t *testing.T) {
		nodes := startStandins(t, "c1", 3, 2)
		r, _ := startRouter(t, []wire.ClusterInfo{{ID: "c1", Members: members(addrs(nodes)...)}}, nil)
		warm(t, r, addrs(nodes)...)
		r.setLeader("c1", nodes[2].addr)
		took, ch := handleAsync(ctx, r, wire.Request{ID: 5, Op: wire.OpPut, Path: "/a/b", Data: []byte("x"), Session: 3, Seq: 1})
		if !took {
			t.Fatal("HandleAsync declined a put to a cached leader with a live connection")
		}
		if resp := replyOf(t, ch, 10*time.Second); resp.Code != wire.OK {
			t.Fatalf("put: %v", resp.Err())
		}
		if n0, n1 := nodes[0].calls.Load(), nodes[1].calls.Load(); n0+n1 != 0 {
			t.Errorf("followers got %d+%d requests, want none", n0, n1)
		}
		rs := nodes[2].requests()
		if len(rs) != 1 || rs[0].Session != 3 || rs[0].Seq != 1 || rs[0].Table != 1 || rs[0].ID == 5 {
			t.Errorf("leader got %+v, want the put once, with its session, the table version and the connection's own id", rs)
		}
	})
	t.Run("follower's hint", func(t *testing.T) {
		nodes := startStandins(t, "c1", 3, 2) // members[0], tried first, is a follower
		r, _ := startRouter(t, []wire.ClusterInfo{{ID: "c1", Members: members(addrs(nodes)...)}}, nil)
		warm(t, r, addrs(nodes)...)
		took, ch := handleAsync(ctx, r, wire.Request{Op: wire.OpPut, Path: "/a/b", Data: []byte("x")})
		if !took {
			t.Fatal("HandleAsync declined")
		}
		if resp := replyOf(t, ch, 10*time.Second); resp.Code != wire.OK {
			t.Fatalf("put: %v", resp.Err())
		}
		if n0, n1, n2 := nodes[0].calls.Load(), nodes[1].calls.Load(), nodes[2].calls.Load(); n0 != 1 || n1 != 0 || n2 != 1 {
			t.Errorf("calls %d, %d, %d; want 1 (the hint), 0, 1 (the leader)", n0, n1, n2)
		}
		if got := r.leader("c1"); got != nodes[2].addr {
			t.Errorf("cached leader %q, want %q", got, nodes[2].addr)
		}
	})
	t.Run("slow leader", func(t *testing.T) {
		nodes := startStandins(t, "c1", 3, 0)
		nodes[0].slowBy(900 * time.Millisecond)
		r, _ := startRouter(t, []wire.ClusterInfo{{ID: "c1", Members: members(addrs(nodes)...)}}, func(cfg *Config) {
			cfg.AttemptTimeout = 200 * time.Millisecond
		})
		warm(t, r, addrs(nodes)...)
		rctx, cancel := context.WithTimeout(ctx, 4*time.Second)
		defer cancel()
		took, ch := handleAsync(rctx, r, wire.Request{Op: wire.OpAppend, Path: "/a/b", Data: []byte("x")}) // no session: never sent twice
		if !took {
			t.Fatal("HandleAsync declined")
		}
		if resp := replyOf(t, ch, 10*time.Second); resp.Code == wire.Timeout || resp.Code == wire.Unavailable {
			t.Fatalf("append through a slow leader: %v, want its answer", resp.Err())
		}
		if got := nodes[0].calls.Load(); got != 1 {
			t.Errorf("the slow leader got %d copies, want 1", got)
		}
		if n := nodes[1].calls.Load() + nodes[2].calls.Load(); n != 0 {
			t.Errorf("the followers got %d requests while the leader worked, want 0", n)
		}
	})
	t.Run("connection dies", func(t *testing.T) {
		nodes := startStandins(t, "c1", 2, -1)
		nodes[0].set("silent", "")
		nodes[1].set("leader", "")
		r, _ := startRouter(t, []wire.ClusterInfo{{ID: "c1", Members: members(addrs(nodes)...)}}, nil)
		warm(t, r, addrs(nodes)...)
		took, ch := handleAsync(ctx, r, wire.Request{Op: wire.OpPut, Path: "/a/b", Data: []byte("x"), Session: 4, Seq: 1})
		if !took {
			t.Fatal("HandleAsync declined")
		}
		for i := 0; nodes[0].calls.Load() == 0; i++ {
			if i == 1000 {
				t.Fatal("the first member never got the put")
			}
			time.Sleep(10 * time.Millisecond)
		}
		nodes[0].srv.Close()
		if resp := replyOf(t, ch, 10*time.Second); resp.Code != wire.OK {
			t.Fatalf("put after its first node's connection died: %v, want the next member's answer", resp.Err())
		}
		if got := nodes[1].calls.Load(); got != 1 {
			t.Errorf("the next member got %d requests, want 1", got)
		}
	})
}

// A request taken by HandleAsync is answered when its caller goes away
// (the connection closes, so the server cancels ctx), long before the
// try's own time runs out, and the router stops waiting for it.
func TestHandleAsyncAnswersWhenCallerGoes(t *testing.T) {
	nodes := startStandins(t, "c1", 1, 0)
	nodes[0].set("silent", "")
	r, _ := startRouter(t, []wire.ClusterInfo{{ID: "c1", Members: members(nodes[0].addr)}}, func(cfg *Config) {
		cfg.AttemptTimeout = time.Hour
		cfg.DefaultTimeout = time.Hour
	})
	warm(t, r, nodes[0].addr)
	ctx, cancel := context.WithCancel(context.Background())
	took, ch := handleAsync(ctx, r, wire.Request{Op: wire.OpGet, Path: "/a/b"})
	if !took {
		t.Fatal("HandleAsync declined")
	}
	cancel()
	resp := replyOf(t, ch, 10*time.Second)
	if resp.Code != wire.Timeout {
		t.Fatalf("got %v, want TIMEOUT: the get reached the node and its outcome is unknown", resp.Err())
	}
	conn := r.pool.Live(nodes[0].addr)
	if conn == nil {
		t.Fatal("the connection to the node went away")
	}
	if n := conn.Calls(); n != 0 {
		t.Errorf("%d calls still pending on the node's connection, want 0", n)
	}
}

// What HandleAsync cannot send at once it leaves to Handle, having sent
// nothing: no live connection yet (it never dials), "/", an invalid path,
// a destination in another root, and the ops the router answers itself.
func TestHandleAsyncDeclines(t *testing.T) {
	nodes := startStandins(t, "c1", 1, 0)
	r, _ := startRouter(t, []wire.ClusterInfo{{ID: "c1", Members: members(nodes[0].addr)}}, nil)
	ctx := context.Background()
	if took, _ := handleAsync(ctx, r, wire.Request{Op: wire.OpPut, Path: "/a/b", Data: []byte("x")}); took {
		t.Error("HandleAsync took a put with no live connection to its node")
	}
	warm(t, r, nodes[0].addr)
	for _, req := range []wire.Request{
		{Op: wire.OpList, Path: "/"},
		{Op: wire.OpPut, Path: "/a//b"},
		{Op: wire.OpRename, Path: "/a/b", To: "/c/d"},
		{Op: wire.OpStatus},
		{Op: wire.OpTable},
	} {
		if took, _ := handleAsync(ctx, r, req); took {
			t.Errorf("HandleAsync took %v %q", req.Op, req.Path)
		}
	}
	if got := nodes[0].calls.Load(); got != 0 {
		t.Errorf("the node got %d requests, want none", got)
	}
}
