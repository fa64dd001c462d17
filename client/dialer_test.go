package client_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
)

// countingDialer dials TCP for the addresses it allows, refuses the rest,
// and remembers every connection it made.
type countingDialer struct {
	allow func(addr string) bool

	mu     sync.Mutex
	dialed []string // every address asked for, in order
	conns  []net.Conn
}

func (d *countingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.dialed = append(d.dialed, network+" "+addr)
	d.mu.Unlock()
	if !d.allow(addr) {
		return nil, errors.New("refused by the test's dialer")
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err == nil {
		d.mu.Lock()
		d.conns = append(d.conns, c)
		d.mu.Unlock()
	}
	return c, err
}

func (d *countingDialer) snapshot() ([]string, []net.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.dialed...), append([]net.Conn(nil), d.conns...)
}

// WithDialer opens every connection of the client: at Dial (passing over a
// router the dialer refuses) and at the redial after a broken connection.
func TestWithDialerOpensEveryConnection(t *testing.T) {
	const refused = "127.0.0.1:1"
	d := &countingDialer{allow: func(addr string) bool { return addr != refused }}
	c := dial(t, []string{refused, shared.Addr}, client.WithDialer(d.dial))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := root(t, "c1", "") + "/f"
	if _, err := c.Put(ctx, p, []byte("via the dialer"), client.Parents()); err != nil {
		t.Fatalf("Put: %v", err)
	}
	dialed, conns := d.snapshot()
	if want := []string{"tcp " + refused, "tcp " + shared.Addr}; strings.Join(dialed, ",") != strings.Join(want, ",") || len(conns) != 1 {
		t.Fatalf("dialer saw %q with %d connections, want %q and 1", dialed, len(conns), want)
	}
	conns[0].Close() // break the connection under the client
	got, err := c.Get(ctx, p)
	if err != nil || string(got) != "via the dialer" {
		t.Fatalf("Get after the connection broke: %q, %v", got, err)
	}
	if _, conns = d.snapshot(); len(conns) < 2 {
		t.Fatalf("the redial did not go through the dialer: %d connections", len(conns))
	}
}

// A dialer that refuses everything makes Dial fail with UNAVAILABLE naming
// the dialer's error, although the router is up.
func TestWithDialerRefusing(t *testing.T) {
	d := &countingDialer{allow: func(string) bool { return false }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := client.Dial(ctx, []string{shared.Addr}, client.WithDialer(d.dial))
	if !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "refused by the test's dialer") {
		t.Fatalf("Dial through a refusing dialer: %v, want UNAVAILABLE naming the dialer's error", err)
	}
	if dialed, _ := d.snapshot(); len(dialed) != 1 {
		t.Fatalf("dialer asked %d times, want 1: %q", len(dialed), dialed)
	}
}
