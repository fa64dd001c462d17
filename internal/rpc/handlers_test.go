package rpc

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/wire"
)

// TestIdleHandlersBounded: handler goroutines kept for the next request
// are bounded per server, not only per connection, so many connections
// that were each busy once do not keep a goroutine per request they had
// in flight.
func TestIdleHandlersBounded(t *testing.T) {
	// 768 handlers at once, over maxServerIdleHandlers; 8 per connection is
	// what one may owe before it has read an answer.
	const conns, perConn = 96, 8
	var started sync.WaitGroup
	started.Add(conns * perConn)
	release := make(chan struct{})
	srv, addr := startServer(t, ServerConfig{Name: "test", MaxUnearnedPerIP: conns * perConn}, func(ctx context.Context, req *wire.Request) *wire.Response {
		started.Done()
		<-release
		return &wire.Response{}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var calls sync.WaitGroup
	errs := make(chan error, conns*perConn)
	for i := range conns {
		c, err := Dial(ctx, addr, DialConfig{Client: fmt.Sprint("t", i)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for j := range perConn {
			calls.Add(1)
			go func() {
				defer calls.Done()
				if _, err := c.Call(ctx, &wire.Request{Op: wire.OpGet, Path: fmt.Sprintf("/%d/%d", i, j)}); err != nil {
					errs <- err
				}
			}()
		}
	}
	started.Wait()
	close(release)
	calls.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually.Holds(t, 10*time.Second, "the handlers to park", func() error {
		if n := srv.idleHandlers.Load(); n != maxServerIdleHandlers {
			return fmt.Errorf("%d handlers waiting, want the server's bound %d", n, maxServerIdleHandlers)
		}
		return nil
	})
}
