package client_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/testcluster"
	"github.com/cleavefs/cleave/router"
	"github.com/cleavefs/cleave/wire"
)

// fileOps counts the file operations that passed proxy p (HELLO, TABLE
// and STATUS are not).
func fileOps(p *testcluster.Proxy) int {
	n := 0
	for _, r := range p.Requests() {
		switch r.Op {
		case wire.OpGet, wire.OpStat, wire.OpList, wire.OpExists:
			n++
		default:
			if r.Op.Mutating() {
				n++
			}
		}
	}
	return n
}

// dialVia dials the router behind addr with opts; the client is closed
// when the test ends.
func dialVia(t *testing.T, addr string, opts ...client.Option) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, []string{addr}, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestDirectSkipsTheRouter: with WithDirect, once the client holds the
// routing table and each cluster's leader, file operations reach the
// owning clusters without the router — a proxy in front of it sees none —
// and they go on working once the router is out of reach.
func TestDirectSkipsTheRouter(t *testing.T) {
	const token = "direct-test-token"
	d := testcluster.Start(t, testcluster.Options{Clusters: 2, Token: token})
	p := testcluster.NewProxy(t, d.Addr)
	c := dialVia(t, p.Addr, client.WithToken(token), client.WithDirect())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	roots := []string{"/" + d.RootIn(t, "c1", "direct-"), "/" + d.RootIn(t, "c2", "direct-")}
	for _, r := range roots {
		if err := c.Mkdir(ctx, r); err != nil {
			t.Fatalf("mkdir %s: %v", r, err)
		}
	}
	// The first calls go through the router while the client fetches the
	// table, dials the members and learns the leaders.
	eventually.Holds(t, 30*time.Second, "puts to both clusters sent directly", func() error {
		before := fileOps(p)
		for _, r := range roots {
			if _, err := c.Put(ctx, r+"/warm", []byte("w")); err != nil {
				return err
			}
		}
		return eventually.True(fileOps(p) == before, "%d of %d puts went through the router", fileOps(p)-before, len(roots))
	})

	before := fileOps(p)
	for i := range 5 {
		for _, r := range roots {
			name := fmt.Sprintf("%s/f%d", r, i)
			data := []byte(fmt.Sprintf("contents of %s", name))
			if _, err := c.Put(ctx, name, data); err != nil {
				t.Fatalf("put %s: %v", name, err)
			}
			got, err := c.Get(ctx, name)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("get %s = %q, %v; want %q", name, got, err, data)
			}
			if err := c.Rename(ctx, name, name+".moved"); err != nil {
				t.Fatalf("rename %s: %v", name, err)
			}
			if ok, err := c.Exists(ctx, name); err != nil || ok {
				t.Fatalf("exists %s after rename = %v, %v; want false", name, ok, err)
			}
		}
	}
	if n := fileOps(p) - before; n != 0 {
		t.Errorf("%d of 40 file operations went through the router", n)
	}

	p.Close() // the router out of reach
	for _, r := range roots {
		name := r + "/after"
		if _, err := c.Put(ctx, name, []byte("after")); err != nil {
			t.Fatalf("put %s without the router: %v", name, err)
		}
		es, err := c.List(ctx, r)
		if err != nil || len(es) != 7 { // warm, f0..f4 moved, after
			t.Fatalf("list %s without the router: %d entries, %v; want 7", r, len(es), err)
		}
		if err := c.Remove(ctx, name); err != nil {
			t.Fatalf("remove %s without the router: %v", name, err)
		}
	}
}

// TestDirectFallsBackWhenNodesRefuse: nodes accept only the deployment's
// token, so an anonymous client in direct mode (which the router lets
// write) sends every call through the router, and every call works.
func TestDirectFallsBackWhenNodesRefuse(t *testing.T) {
	d := testcluster.Start(t, testcluster.Options{Token: "node-only-token", Router: func(rc *router.Config) {
		rc.Anonymous = control.PermWrite
	}})
	p := testcluster.NewProxy(t, d.Addr)
	c := dialVia(t, p.Addr, client.WithDirect())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := "/" + d.RootIn(t, "c1", "refused-")
	if err := c.Mkdir(ctx, r); err != nil {
		t.Fatalf("mkdir %s: %v", r, err)
	}
	// Long enough for the table fetch and the refused dials.
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		before := fileOps(p)
		name := fmt.Sprintf("%s/f%d", r, i%4)
		if _, err := c.Put(ctx, name, []byte(name)); err != nil {
			t.Fatalf("put %s: %v", name, err)
		}
		if got, err := c.Get(ctx, name); err != nil || string(got) != name {
			t.Fatalf("get %s = %q, %v", name, got, err)
		}
		if n := fileOps(p) - before; n != 2 {
			t.Fatalf("round %d: the router saw %d of its 2 file operations, want both", i, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
