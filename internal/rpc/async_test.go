package rpc

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// asyncEcho is an AsyncHandler: it takes STATs and answers each from a
// goroutine of its own after Offset milliseconds (twice: the second
// answer must be dropped), or, for Offset 999, only when the request's
// context ends. Other ops it declines, and Handle answers them.
type asyncEcho struct {
	taken, handled atomic.Int64
}

func (h *asyncEcho) Handle(ctx context.Context, req *wire.Request) *wire.Response {
	h.handled.Add(1)
	return &wire.Response{Data: []byte("sync " + req.Path)}
}

func (h *asyncEcho) HandleAsync(ctx context.Context, req *wire.Request, reply func(*wire.Response)) bool {
	if req.Op != wire.OpStat {
		return false
	}
	h.taken.Add(1)
	path, delay := req.Path, req.Offset
	if delay == 999 {
		context.AfterFunc(ctx, func() { reply(&wire.Response{Code: wire.Timeout, Message: ctx.Err().Error()}) })
		return true
	}
	go func() {
		time.Sleep(time.Duration(delay) * time.Millisecond)
		reply(&wire.Response{Data: []byte("async " + path)})
		reply(&wire.Response{Data: []byte("again " + path)})
	}()
	return true
}

// TestAsyncHandler: requests an AsyncHandler takes are answered through
// reply, out of order, once each; those it declines reach Handle; one it
// holds is answered when its deadline ends it; and the server's window
// and budgets are given back, so the connection keeps serving.
func TestAsyncHandler(t *testing.T) {
	h := &asyncEcho{}
	srv := NewServer(ServerConfig{Name: "test"}, PlaneHandler(wire.ClientPlane, func(wire.Op, wire.Plane) bool { return true }, nil, h))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	ctx := context.Background()
	c, err := Dial(ctx, ln.Addr().String(), DialConfig{Client: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const n = 300 // more than the initial window and the handler slots a burst may hold
	type result struct {
		want string
		resp *wire.Response
		err  error
	}
	results := make(chan result, n)
	for i := range n {
		op, want := wire.OpStat, "async "
		if i%3 == 0 {
			op, want = wire.OpGet, "sync "
		}
		path := "/p" + string(rune('a'+i%26))
		go func() {
			resp, err := c.Call(ctx, &wire.Request{Op: op, Path: path, Offset: int64(10 - i%10)})
			results <- result{want + path, resp, err}
		}()
	}
	for range n {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if string(r.resp.Data) != r.want {
			t.Fatalf("got %q (%v), want %q", r.resp.Data, r.resp.Err(), r.want)
		}
	}
	if taken, handled := h.taken.Load(), h.handled.Load(); taken != n-n/3 || handled != n/3 {
		t.Fatalf("HandleAsync took %d and Handle served %d, want %d and %d", taken, handled, n-n/3, n/3)
	}

	start := time.Now()
	resp, err := c.Call(ctx, &wire.Request{Op: wire.OpStat, Path: "/held", Offset: 999, TimeoutMs: 200})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != wire.Timeout || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("held request answered %v after %v, want TIMEOUT at its 200 ms deadline", resp.Err(), time.Since(start))
	}
	if resp, err := c.Call(ctx, &wire.Request{Op: wire.OpGet, Path: "/last"}); err != nil || string(resp.Data) != "sync /last" {
		t.Fatalf("last call: %v, %v", resp, err)
	}
	// Each answer gives back what its request held once: a second answer
	// that got through would give it back twice, and the bytes in flight
	// would go below zero. (An answer is queued before they are given
	// back, so they may take a moment to reach zero.)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		b := srv.Stats().BytesInFlight
		if b < 0 {
			t.Fatalf("bytes in flight %d: some request was answered twice", b)
		}
		if b == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bytes in flight still %d after every answer", b)
		}
	}
}
