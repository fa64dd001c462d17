package rpc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// TestWaitUntilExpire: a value on expire ends WaitUntil with
// context.DeadlineExceeded and leaves the call pending, so its answer is
// still taken by the next wait; a nil expire does not end it.
func TestWaitUntilExpire(t *testing.T) {
	release := make(chan struct{})
	_, addr := startServer(t, ServerConfig{Name: "test"}, func(ctx context.Context, req *wire.Request) *wire.Response {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &wire.Response{Data: []byte(req.Path)}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr, DialConfig{Client: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expired := make(chan time.Time, 1)
	p, err := c.StartUntil(ctx, &wire.Request{Op: wire.OpGet, Path: "/a"}, expired)
	if err != nil {
		t.Fatal(err)
	}
	expired <- time.Now()
	if _, err := p.WaitUntil(ctx, expired); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitUntil after expire: %v, want context.DeadlineExceeded", err)
	}
	if !p.Alive() {
		t.Fatalf("connection died after an expired wait: %v", c.Err())
	}
	close(release)
	resp, err := p.WaitUntil(ctx, nil)
	if err != nil || string(resp.Data) != "/a" {
		t.Fatalf("the pending call's answer: %v %q, want /a", err, resp.Data)
	}
}

// TestPoolOpen: Open returns the connection Get made, never dials, and
// returns nil once that connection is closed.
func TestPoolOpen(t *testing.T) {
	_, addr := startEcho(t, ServerConfig{Name: "test"})
	p := NewPool(DialConfig{Client: "t"})
	defer p.Close()
	if c := p.Open(addr); c != nil {
		t.Fatalf("Open before any Get: %v, want nil (no dial)", c.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := p.Get(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Open(addr); got != c {
		t.Fatalf("Open after Get: %p, want Get's connection %p", got, c)
	}
	c.Close()
	if got := p.Open(addr); got != nil {
		t.Fatalf("Open after the connection closed: %p, want nil", got)
	}
}
