package rpc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// notified waits for a StartNotify call's notify; it must come well within
// ten seconds.
func notified(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("no notify for %s", what)
	}
}

// StartNotify's notify comes once the answer is there, so Wait returns it
// at once; when the connection dies instead, once Wait returns the
// connection's error.
func TestStartNotify(t *testing.T) {
	srv, addr := startEcho(t, ServerConfig{Name: "test"})
	c, err := Dial(context.Background(), addr, DialConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch := make(chan struct{}, 1)
	p, err := c.StartNotify(&wire.Request{Op: wire.OpGet, Path: "/a", Seq: 5}, func() { ch <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	notified(t, ch, "an answer")
	if resp, err := p.Wait(ctx); err != nil || string(resp.Data) != "/a" {
		t.Fatalf("Wait after notify = %v, %v; want the answer at once", resp, err)
	}

	p, err = c.StartNotify(&wire.Request{Op: wire.OpGet, Path: "/slow", Seq: 10000}, func() { ch <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	notified(t, ch, "the connection dying")
	if _, err := p.Wait(ctx); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Wait after the connection died = %v, want ErrConnClosed", err)
	}
	if _, err := c.StartNotify(&wire.Request{Op: wire.OpGet, Path: "/b"}, func() {}); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("StartNotify on a dead connection = %v, want ErrConnClosed", err)
	}
}

// Pool.Live returns only a connection the pool already holds, alive; it
// never dials.
func TestPoolLive(t *testing.T) {
	_, addr := startEcho(t, ServerConfig{Name: "test"})
	p := NewPool(DialConfig{})
	defer p.Close()
	if c := p.Live(addr); c != nil {
		t.Fatal("Live dialled")
	}
	c, err := p.Get(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Live(addr); got != c {
		t.Fatalf("Live = %p, want the pooled connection %p", got, c)
	}
	c.Close()
	if got := p.Live(addr); got != nil {
		t.Fatal("Live returned a dead connection")
	}
}
