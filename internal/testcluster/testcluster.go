// Package testcluster starts a real cleave deployment inside a test process:
// N clusters of storage nodes (cluster.Start, Pebble in t.TempDir(), Raft
// over loopback TCP) and one router (router.New) in front of them. Tests of
// the SDK, the CLI and the router talk to it exactly as they would to
// `cleave up`; nothing is faked.
//
// Addresses are picked by listening on 127.0.0.1:0 and closing the listener,
// because Raft peers must know each other's addresses before they start. A
// port taken by someone else in between makes Start fail loudly; it retries
// the whole deployment once before giving up.
//
// Everything is closed when the test ends (t.Cleanup).
package testcluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/cluster"
	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/internal/ports"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/router"
	"github.com/cleavefs/cleave/wire"
)

// Options shape a deployment. The zero value is one cluster of three nodes.
type Options struct {
	Clusters int    // number of clusters; default 1
	Nodes    int    // nodes per cluster; default 3
	Token    string // shared auth token; default none
	// Logger receives every component's logs; default: discarded, or
	// stderr at debug level when CLEAVE_TEST_LOG is set.
	Logger *slog.Logger
	// Router, if set, adjusts the router's config before it starts.
	Router func(*router.Config)
	// ElectionTicks is every node's election timeout in 50 ms ticks;
	// default 30 (1.5–3 s). Longer than a real node's default (10): the
	// race detector and parallel test packages can starve a process for
	// over half a second, and elections started by starvation alone make
	// tests fail for reasons unrelated to what they check.
	ElectionTicks int
}

// Deployment is a running in-process deployment.
type Deployment struct {
	// Addr is the router's client address.
	Addr string
	// Router is the router serving Addr.
	Router *router.Router
	// Nodes holds each cluster's nodes, by cluster id ("c1", "c2", ...).
	Nodes map[string][]*cluster.Node
	// Table is the bootstrap routing table.
	Table *wire.TableInfo

	opts Options

	mu      sync.Mutex
	stopped map[*cluster.Node]bool
}

// Start starts a deployment in t.TempDir() and waits until every cluster
// has a leader; it is closed when the test ends.
func Start(t testing.TB, opts Options) *Deployment {
	t.Helper()
	d, err := New(opts, t.TempDir())
	if err != nil {
		t.Fatalf("testcluster: %v", err)
	}
	t.Cleanup(d.Close)
	return d
}

// New starts a deployment with its data under dir and waits until every
// cluster has a leader. The caller must Close it. It is for a TestMain that
// shares one deployment among a package's tests; tests use Start.
func New(opts Options, dir string) (*Deployment, error) {
	if opts.Clusters <= 0 {
		opts.Clusters = 1
	}
	if opts.Nodes <= 0 {
		opts.Nodes = 3
	}
	if opts.Logger == nil {
		if os.Getenv("CLEAVE_TEST_LOG") != "" {
			opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		} else {
			opts.Logger = slog.New(slog.DiscardHandler)
		}
	}
	var lastErr error
	for try := range 2 { // a stolen port fails the first try; try again with fresh ones
		d, err := start(opts, filepath.Join(dir, "try"+strconv.Itoa(try)))
		if err == nil {
			if err = d.waitLeaders(20 * time.Second); err == nil {
				return d, nil
			}
			d.Close()
		}
		lastErr = err
	}
	return nil, lastErr
}

// Close stops the router and every node still running.
func (d *Deployment) Close() {
	if d.Router != nil {
		d.Router.Close()
	}
	for _, nodes := range d.Nodes {
		for _, n := range nodes {
			d.StopNode(n)
		}
	}
}

// StopNode closes n (a crash as far as its peers and the router can tell;
// its data stays on disk). Stopping a stopped node does nothing.
func (d *Deployment) StopNode(n *cluster.Node) {
	d.mu.Lock()
	if d.stopped == nil {
		d.stopped = map[*cluster.Node]bool{}
	}
	done := d.stopped[n]
	d.stopped[n] = true
	d.mu.Unlock()
	if !done {
		n.Close()
	}
}

func start(opts Options, base string) (*Deployment, error) {
	d := &Deployment{Nodes: map[string][]*cluster.Node{}, opts: opts}
	var infos []wire.ClusterInfo
	nextID := uint64(1)
	for c := range opts.Clusters {
		ci := wire.ClusterInfo{ID: "c" + strconv.Itoa(c+1)}
		for range opts.Nodes {
			addr, err := FreeAddr()
			if err != nil {
				return nil, err
			}
			peer, err := FreeAddr()
			if err != nil {
				return nil, err
			}
			ci.Members = append(ci.Members, wire.Member{ID: nextID, Addr: addr, PeerAddr: peer})
			nextID++
		}
		infos = append(infos, ci)
	}
	d.Table = control.BootstrapTable(infos)
	fail := func(err error) (*Deployment, error) {
		d.Close()
		return nil, err
	}
	for _, ci := range infos {
		peers, clients := map[uint64]string{}, map[uint64]string{}
		for _, m := range ci.Members {
			peers[m.ID], clients[m.ID] = m.PeerAddr, m.Addr
		}
		rg, _ := control.ClusterRange(d.Table, ci.ID)
		for _, m := range ci.Members {
			cfg := cluster.DefaultConfig()
			cfg.NodeID, cfg.ClusterID, cfg.Listen, cfg.Peers, cfg.Clients = m.ID, ci.ID, m.Addr, peers, clients
			cfg.DataDir = filepath.Join(base, ci.ID, "n"+strconv.FormatUint(m.ID, 10))
			cfg.Range = rg
			cfg.Token = opts.Token
			cfg.Logger = opts.Logger
			cfg.ElectionTicks = opts.ElectionTicks
			if cfg.ElectionTicks == 0 {
				cfg.ElectionTicks = 30
			}
			n, err := cluster.Start(cfg)
			if err != nil {
				return fail(fmt.Errorf("start node %d of %s: %w", m.ID, ci.ID, err))
			}
			d.Nodes[ci.ID] = append(d.Nodes[ci.ID], n)
		}
	}
	rc := router.DefaultConfig()
	rc.ID = "r1"
	rc.Listen = "127.0.0.1:0"
	rc.DataDir = filepath.Join(base, "router")
	rc.Bootstrap = d.Table
	rc.Token = opts.Token
	rc.Logger = opts.Logger
	rc.AttemptTimeout = time.Second
	if opts.Router != nil {
		opts.Router(&rc)
	}
	r, err := router.New(rc)
	if err != nil {
		return fail(fmt.Errorf("router: %w", err))
	}
	d.Router = r
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	go r.Serve(ln)
	d.Addr = ln.Addr().String()
	return d, nil
}

// FreeAddr returns a loopback address that was free a moment ago.
func FreeAddr() (string, error) {
	addrs, err := ports.Free(1)
	if err != nil {
		return "", err
	}
	return addrs[0], nil
}

// ClosedAddr returns a loopback address that nobody listens on, or fails
// the test.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// WaitLeaders waits until every cluster has a leader, or fails the test
// after timeout.
func (d *Deployment) WaitLeaders(t testing.TB, timeout time.Duration) {
	t.Helper()
	if err := d.waitLeaders(timeout); err != nil {
		t.Fatalf("testcluster: %v", err)
	}
}

func (d *Deployment) waitLeaders(timeout time.Duration) error {
	return eventually.Within(timeout, "a leader in every cluster", func() error {
		for id, nodes := range d.Nodes {
			has := false
			for _, n := range nodes {
				has = has || n.Status().Role == "leader"
			}
			if !has {
				return fmt.Errorf("cluster %s has no leader", id)
			}
		}
		return nil
	})
}

// Client dials the router with opts (plus the deployment's token) and
// closes the client when the test ends.
func (d *Deployment) Client(t testing.TB, opts ...client.Option) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if d.opts.Token != "" {
		opts = append([]client.Option{client.WithToken(d.opts.Token)}, opts...)
	}
	c, err := client.Dial(ctx, []string{d.Addr}, opts...)
	if err != nil {
		t.Fatalf("testcluster: dial %s: %v", d.Addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// RootIn returns a valid root name starting with prefix whose ring point the
// bootstrap table gives to cluster id (e.g. "c2").
func (d *Deployment) RootIn(t testing.TB, id, prefix string) string {
	t.Helper()
	for i := range 100000 {
		name := prefix + strconv.Itoa(i)
		if fspath.Validate("/"+name) != nil {
			continue
		}
		if o, ok := control.Owner(d.Table, ring.Point(name)); ok && o.Cluster == id {
			return name
		}
	}
	t.Fatalf("testcluster: no root with prefix %q in cluster %s", prefix, id)
	return ""
}

// AddRouter starts another router over the same table (routers are
// stateless forwarders) and returns its address; it is closed when the
// test ends.
func (d *Deployment) AddRouter(t testing.TB) (string, *router.Router) {
	t.Helper()
	rc := router.DefaultConfig()
	rc.ID = "r" + strconv.Itoa(int(time.Now().UnixNano()%1000))
	rc.Listen = "127.0.0.1:0"
	rc.DataDir = t.TempDir()
	rc.Bootstrap = d.Table
	rc.Token = d.opts.Token
	rc.Logger = d.opts.Logger
	rc.AttemptTimeout = time.Second
	r, err := router.New(rc)
	if err != nil {
		t.Fatalf("testcluster: router: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go r.Serve(ln)
	t.Cleanup(func() { r.Close() })
	return ln.Addr().String(), r
}

// StartJoiners starts n empty nodes of the new cluster id (raft ids
// firstID, firstID+1, ...) that join cluster c1 as a split's targets
// (cluster.Config.Join), and returns them as members with their client
// and peer addresses. They are closed when the test ends.
func (d *Deployment) StartJoiners(t testing.TB, id string, firstID uint64, n int) []wire.Member {
	t.Helper()
	var out []wire.Member
	src, _ := control.Cluster(d.Table, "c1")
	for i := range n {
		nid := firstID + uint64(i)
		addr, err := FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		peer, err := FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		peers := map[uint64]string{nid: peer}
		for _, m := range src.Members {
			peers[m.ID] = m.Peer()
		}
		cfg := cluster.DefaultConfig()
		cfg.NodeID, cfg.ClusterID, cfg.Listen, cfg.Peers, cfg.Join = nid, id, addr, peers, true
		cfg.DataDir = filepath.Join(t.TempDir(), "n"+strconv.FormatUint(nid, 10))
		cfg.Logger = slog.New(slog.DiscardHandler)
		node, err := cluster.Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Close() })
		out = append(out, wire.Member{ID: nid, Addr: addr, PeerAddr: peer})
	}
	return out
}
