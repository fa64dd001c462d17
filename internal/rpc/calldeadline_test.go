package rpc

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// TestCallUntilEndsAtItsDeadline: a call whose deadline passes before its
// answer ends with context.DeadlineExceeded though its context has no
// deadline, the server is told the time left (TimeoutMs), the late answer
// is dropped, and nothing stays pending.
func TestCallUntilEndsAtItsDeadline(t *testing.T) {
	var mu sync.Mutex
	var gotMs []uint32
	_, addr := startServer(t, ServerConfig{Name: "test"}, func(ctx context.Context, req *wire.Request) *wire.Response {
		mu.Lock()
		gotMs = append(gotMs, req.TimeoutMs)
		mu.Unlock()
		time.Sleep(time.Duration(req.Seq) * time.Millisecond) // ignores ctx: the answer comes late
		return &wire.Response{Data: []byte(req.Path)}
	})
	c, err := Dial(context.Background(), addr, DialConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	resp, err := c.CallUntil(context.Background(), start.Add(50*time.Millisecond), &wire.Request{Op: wire.OpGet, Path: "/slow", Seq: 300})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CallUntil = %+v, %v; want context.DeadlineExceeded", resp, err)
	}
	if el := time.Since(start); el < 50*time.Millisecond || el > 250*time.Millisecond {
		t.Errorf("the call ended after %v; its deadline was 50ms", el)
	}
	if n := c.Calls(); n != 0 {
		t.Errorf("%d calls pending after the deadline, want 0", n)
	}
	mu.Lock()
	ms := gotMs[0]
	mu.Unlock()
	if ms == 0 || ms > 50 {
		t.Errorf("the server was given TimeoutMs %d, want at most 50", ms)
	}

	// Calls answered in time leave no deadline behind, and the late
	// answer of the first was dropped without harm.
	for i := range 50 {
		resp, err := c.CallUntil(context.Background(), time.Now().Add(10*time.Second), &wire.Request{Op: wire.OpGet, Path: "/fast"})
		if err != nil || string(resp.Data) != "/fast" {
			t.Fatalf("call %d = %+v, %v", i, resp, err)
		}
	}
	time.Sleep(300 * time.Millisecond) // the first call's answer arrives meanwhile
	c.mu.Lock()
	left := len(c.deadlines.items)
	c.mu.Unlock()
	if left != 0 || c.Calls() != 0 {
		t.Errorf("%d deadlines and %d calls kept after every call ended, want none", left, c.Calls())
	}

	// The earlier of ctx's deadline and the call's ends it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := c.CallUntil(ctx, time.Now().Add(time.Hour), &wire.Request{Op: wire.OpGet, Path: "/slow", Seq: 300}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ctx ending first: %v, want context.DeadlineExceeded", err)
	}
	if _, err := c.CallUntil(context.Background(), time.Now().Add(-time.Millisecond), &wire.Request{Op: wire.OpGet, Path: "/x"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline already passed: %v, want context.DeadlineExceeded", err)
	}
}

// TestCallUntilConnDeath: calls with deadlines end with the connection's
// error when it dies, and their deadlines go with it.
func TestCallUntilConnDeath(t *testing.T) {
	_, addr := startEcho(t, ServerConfig{Name: "test"})
	c, err := Dial(context.Background(), addr, DialConfig{})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			_, err := c.CallUntil(context.Background(), time.Now().Add(time.Minute), &wire.Request{Op: wire.OpGet, Path: "/p", Seq: 2000})
			errs <- err
		}()
	}
	for wait := time.Now().Add(10 * time.Second); c.Calls() < 10; time.Sleep(time.Millisecond) {
		if time.Now().After(wait) {
			t.Fatalf("%d of 10 calls pending after 10s", c.Calls())
		}
	}
	c.Close()
	for range 10 {
		if err := <-errs; !errors.Is(err, ErrConnClosed) {
			t.Errorf("call on a closed connection: %v, want ErrConnClosed", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.deadlines.items) != 0 {
		t.Errorf("%d deadlines kept after the connection died", len(c.deadlines.items))
	}
}
