package router

import (
	"context"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

// This file holds stand-ins for storage nodes. Package cluster is being
// written in parallel, so the forwarding tests run against these small wire
// servers that behave toward a router the way real nodes are specified to:
// mutations only on the leader, NOT_LEADER with the leader's address on a
// follower, reads on any node, "/" listing the cluster's roots, STATUS with a
// NodeStatus. Replace them with real clusters once package cluster exists.

// standinStore is the state shared by the stand-in nodes of one cluster, as
// if replicated.
type standinStore struct {
	mu    sync.Mutex
	files map[string][]byte
	roots map[string]bool
}

// standin is a stand-in storage node.
type standin struct {
	id      uint64
	cluster string
	addr    string
	srv     *rpc.Server
	store   *standinStore

	mu     sync.Mutex
	role   string // "leader", "follower" or "silent" (never answers)
	leader string // leader address a follower reports ("" = unknown)
	code   wire.Code
	delay  time.Duration // before answering a mutation: a slow disk
	reqs   []wire.Request

	calls atomic.Int64
}

func (n *standin) set(role, leader string) {
	n.mu.Lock()
	n.role, n.leader = role, leader
	n.mu.Unlock()
}

// failWith makes the node answer every forwarded request with code.
func (n *standin) failWith(code wire.Code) {
	n.mu.Lock()
	n.code = code
	n.mu.Unlock()
}

func (n *standin) requests() []wire.Request {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]wire.Request(nil), n.reqs...)
}

// slowBy makes the node take d before it answers a mutation.
func (n *standin) slowBy(d time.Duration) {
	n.mu.Lock()
	n.delay = d
	n.mu.Unlock()
}

func (n *standin) Handle(ctx context.Context, req *wire.Request) *wire.Response {
	n.mu.Lock()
	role, leader, code, delay := n.role, n.leader, n.code, n.delay
	if req.Op != wire.OpStatus {
		n.reqs = append(n.reqs, *req)
		n.calls.Add(1)
	}
	n.mu.Unlock()
	if req.Op == wire.OpStatus {
		ns := &wire.NodeStatus{ID: n.id, Cluster: n.cluster, Addr: n.addr, Role: role, Term: 3, LeaderAddr: leader}
		if role == "leader" {
			ns.LeaderAddr = n.addr
		}
		return &wire.Response{Node: ns}
	}
	switch {
	case role == "silent":
		<-ctx.Done()
		return wire.Errorf(0, wire.Timeout, "deadline passed")
	case code != wire.OK:
		resp := wire.Errorf(0, code, "stand-in told to fail with %v", code)
		if code == wire.WrongRange {
			resp.Table = req.Table + 1 // the node has seen a newer table
		}
		return resp
	case req.Op.Mutating() && role != "leader":
		return &wire.Response{Code: wire.NotLeader, Message: "not the leader", Leader: leader}
	case req.Op.Mutating() && delay > 0:
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return wire.Errorf(0, wire.Timeout, "deadline passed")
		}
	}
	s := n.store
	s.mu.Lock()
	defer s.mu.Unlock()
	switch req.Op {
	case wire.OpPut:
		s.files[req.Path] = append([]byte(nil), req.Data...)
		s.roots[strings.SplitN(req.Path[1:], "/", 2)[0]] = true
		return &wire.Response{Stat: &wire.Stat{Name: req.Path, Type: wire.TypeFile, Size: int64(len(req.Data))}}
	case wire.OpGet:
		d, ok := s.files[req.Path]
		if !ok {
			return wire.Errorf(0, wire.NotFound, "%s does not exist", req.Path)
		}
		return &wire.Response{Data: d}
	case wire.OpList:
		if req.Path != "/" {
			return wire.Errorf(0, wire.Invalid, "stand-in lists / only")
		}
		var out []wire.Stat
		for r := range s.roots {
			out = append(out, wire.Stat{Name: r, Type: wire.TypeDir})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return &wire.Response{Entries: out}
	}
	return wire.Errorf(0, wire.Invalid, "stand-in does not do %v", req.Op)
}

// startStandins starts n stand-in nodes of one cluster; node leader (an
// index, or -1 for none) leads and the others report it as leader.
func startStandins(t *testing.T, cluster string, n, leader int) []*standin {
	t.Helper()
	store := &standinStore{files: map[string][]byte{}, roots: map[string]bool{}}
	nodes := make([]*standin, n)
	for i := range nodes {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		nd := &standin{id: uint64(i + 1), cluster: cluster, addr: ln.Addr().String(), store: store, role: "follower"}
		nd.srv = rpc.NewServer(rpc.ServerConfig{Name: "node", ID: nd.addr}, nd)
		go nd.srv.Serve(ln)
		t.Cleanup(func() { nd.srv.Close() })
		nodes[i] = nd
	}
	if leader >= 0 {
		for i, nd := range nodes {
			if i == leader {
				nd.set("leader", "")
			} else {
				nd.set("follower", nodes[leader].addr)
			}
		}
	}
	return nodes
}

// deadAddr returns an address nobody listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func members(addrs ...string) []wire.Member {
	ms := make([]wire.Member, len(addrs))
	for i, a := range addrs {
		ms[i] = wire.Member{ID: uint64(i + 1), Addr: a}
	}
	return ms
}

// startRouter starts a router over a bootstrap table of clusters and
// returns it with a client connection to it.
func startRouter(t testing.TB, clusters []wire.ClusterInfo, tweak func(*Config)) (*Router, *rpc.Conn) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ID = "r1"
	cfg.DataDir = t.TempDir()
	cfg.Bootstrap = control.BootstrapTable(clusters)
	// Long enough that a stand-in on a loaded machine (race detector,
	// parallel packages) answers within one try.
	cfg.AttemptTimeout = 1500 * time.Millisecond
	cfg.StatusTimeout = 500 * time.Millisecond
	if tweak != nil {
		tweak(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go r.Serve(ln)
	t.Cleanup(func() { r.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := rpc.Dial(ctx, ln.Addr().String(), rpc.DialConfig{Client: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return r, c
}

// call sends req through the router with a 5s test deadline.
func call(t *testing.T, c *rpc.Conn, req *wire.Request) *wire.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Call(ctx, req)
	if err != nil {
		t.Fatalf("%v %s: %v", req.Op, req.Path, err)
	}
	return resp
}

// rootIn returns a root name (with the given prefix) whose point the table
// gives to cluster.
func rootIn(t *testing.T, tab *wire.TableInfo, cluster, prefix string) string {
	t.Helper()
	for i := range 10000 {
		name := prefix + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + strconv.Itoa(i)
		if fspath.Validate("/"+name) != nil {
			continue
		}
		if o, ok := control.Owner(tab, ring.Point(name)); ok && o.Cluster == cluster {
			return name
		}
	}
	t.Fatalf("no root found for cluster %s", cluster)
	return ""
}

func addrs(ns []*standin) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.addr
	}
	return out
}
