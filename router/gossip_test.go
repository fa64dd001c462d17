package router_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/gossip"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/internal/testcluster"
	"github.com/cleavefs/cleave/router"
	"github.com/cleavefs/cleave/wire"
)

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// startStranger starts a wire server that answers OK, with its own bytes,
// to everything, and returns its address and accepted-connection count.
func startStranger(t *testing.T) (string, *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := rpc.NewServer(rpc.ServerConfig{Name: "node", ID: "stranger"}, rpc.HandlerFunc(
		func(_ context.Context, req *wire.Request) *wire.Response {
			return &wire.Response{Data: []byte("stranger's bytes"), Stat: &wire.Stat{Name: req.Path, Type: wire.TypeFile}}
		}))
	go srv.Serve(cl)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), cl
}

func dial(t *testing.T, addr, token string) *rpc.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := rpc.Dial(ctx, addr, rpc.DialConfig{Client: "test", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestGossipStrangerCannotTakeWrites: a member holding the pool's key but
// not in the routing table claims to lead c1 at its own address. The
// router ignores the claim: puts land on the real cluster, reads return
// the real bytes, and the stranger never gets a connection (so never the
// token).
func TestGossipStrangerCannotTakeWrites(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	const token = "s3cret-token"
	d := testcluster.Start(t, testcluster.Options{Clusters: 1, Token: token, Router: func(c *router.Config) {
		c.Gossip, c.GossipKeys = "127.0.0.1:0", [][]byte{key}
	}})
	strangerAddr, conns := startStranger(t)
	sg, err := gossip.Start(gossip.Config{
		Bind: "127.0.0.1:0", Seeds: []string{router.GossipAddr(d.Router)}, Keys: [][]byte{key},
		Meta: func() gossip.Meta {
			return gossip.Meta{Role: "node", ID: "666", Cluster: "c1", Leader: true, Applied: 1 << 40, Addr: strangerAddr}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sg.Close()
	eventually.Holds(t, 20*time.Second, "the router to hear the stranger's claim", func() error {
		n := router.LeaderHintsRefused(d.Router)
		return eventually.True(n > 0, "%d leader hints refused", n)
	})

	c := dial(t, d.Addr, token)
	root := d.RootIn(t, "c1", "g")
	for i := range 3 {
		p := fmt.Sprintf("/%s/f%d", root, i)
		v := fmt.Sprint("real ", i)
		if resp := call(t, c, &wire.Request{Op: wire.OpPut, Path: p, Data: []byte(v), Flags: wire.FlagParents, Session: 5, Seq: uint64(i + 1)}); resp.Code != wire.OK {
			t.Fatalf("put %s: %v", p, resp.Err())
		}
		if resp := call(t, c, &wire.Request{Op: wire.OpGet, Path: p}); resp.Code != wire.OK || string(resp.Data) != v {
			t.Fatalf("get %s through the router: %v %q, want %q", p, resp.Err(), resp.Data, v)
		}
		// Every real member holds what was acknowledged.
		for _, n := range d.Nodes["c1"] {
			nc := dial(t, n.Addr(), token)
			eventually.Holds(t, 10*time.Second, "member "+n.Addr()+" to hold "+p, func() error {
				resp := call(t, nc, &wire.Request{Op: wire.OpGet, Path: p, Flags: wire.FlagStale})
				return eventually.True(resp.Code == wire.OK && string(resp.Data) == v, "%v %q", resp.Err(), resp.Data)
			})
		}
	}
	if n := conns.n.Load(); n != 0 {
		t.Fatalf("the stranger at %s accepted %d connections from the router", strangerAddr, n)
	}
}
