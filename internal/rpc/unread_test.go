package rpc

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// TestNonReadersShareOneAllowance: 20 connections from one address that
// pipeline requests for 1 MiB answers and never read share the address's
// allowance of answers not yet earned by reading (MaxUnearnedPerIP), instead
// of each getting its own first window produced (20 × 8 MiB); a client from
// the same address whose connection has read its answers is still served
// at once; and once the sinks hang up, the server closes the ones waiting
// their turn without producing anything more for them.
func TestNonReadersShareOneAllowance(t *testing.T) {
	var produced atomic.Int64
	big := make([]byte, 1<<20)
	srv, addr := startServer(t, ServerConfig{Name: "test", MaxUnearnedPerIP: 16}, func(ctx context.Context, req *wire.Request) *wire.Response {
		if req.Path == "/big" {
			produced.Add(1)
			return &wire.Response{Data: big}
		}
		return &wire.Response{Data: []byte(req.Path)}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	normal, err := Dial(ctx, addr, DialConfig{Client: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	defer normal.Close()
	for range 20 { // earn a window by reading
		if _, err := normal.Call(ctx, &wire.Request{Op: wire.OpGet, Path: "/small"}); err != nil {
			t.Fatal(err)
		}
	}

	req := helloFrame(t)
	for id := uint64(2); id < 200; id++ {
		req = append(req, mustFrame(t, &wire.Request{ID: id, Op: wire.OpGet, Path: "/big"})...)
	}
	const sinks = 20
	var conns []net.Conn
	for range sinks {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		conns = append(conns, nc)
		nc.(*net.TCPConn).SetReadBuffer(4096)
		nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		go nc.Write(req) // never reads
	}
	time.Sleep(time.Second) // let every sink be read and dispatched
	n := produced.Load()
	t.Logf("%d answers of 1 MiB produced for %d connections that read nothing", n, sinks)
	if n > 16+sinks { // the allowance, plus at most one written per connection
		t.Errorf("%d answers of 1 MiB produced for %d connections from one address that read nothing; want at most the address's allowance (16) plus one each", n, sinks)
	}
	start := time.Now()
	if _, err := normal.Call(ctx, &wire.Request{Op: wire.OpGet, Path: "/after"}); err != nil {
		t.Fatalf("a reading client from the same address: %v", err)
	}
	t.Logf("a reading client's call took %v meanwhile", time.Since(start))

	for _, nc := range conns {
		nc.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().Conns > 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if c := srv.Stats().Conns; c > 1 {
		t.Errorf("%d connections still open 10s after the sinks hung up; want only the reading client's", c)
	}
	// The sinks close one after another, so a slot freed by a closed sink
	// may still go, legitimately, to one not closed yet: at most one each.
	// A server that does not notice hang-ups keeps producing for the
	// closed ones in turn (50 more in one run).
	if more := produced.Load() - n; more > sinks {
		t.Errorf("%d more answers of 1 MiB produced after the sinks hung up; want at most one per sink (%d)", more, sinks)
	}
}
