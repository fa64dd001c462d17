package gossip

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

type node struct {
	pool    *Pool
	applied atomic.Uint64
	leader  atomic.Bool
}

func startNode(t *testing.T, id int, seeds []string) *node {
	t.Helper()
	n := &node{}
	p, err := Start(Config{
		Bind:  "127.0.0.1:0",
		Seeds: seeds,
		Meta: func() Meta {
			return Meta{Role: "node", ID: strconv.Itoa(id), Cluster: "c1", Leader: n.leader.Load(),
				Applied: n.applied.Load(), Addr: "127.0.0.1:" + strconv.Itoa(7500+id)}
		},
		Refresh: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	n.pool = p
	return n
}

func find(ms []Member, name string) (Member, bool) {
	for _, m := range ms {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

func TestPoolSeesMetaChangesAndDeath(t *testing.T) {
	a := startNode(t, 1, nil)
	defer a.pool.Close()
	b := startNode(t, 2, []string{a.pool.Addr()})
	defer b.pool.Close()
	c := startNode(t, 3, []string{a.pool.Addr()})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	all := func(ms []Member) bool {
		alive := 0
		for _, m := range ms {
			if m.Alive {
				alive++
			}
		}
		return alive == 3
	}
	if err := b.pool.WaitFor(ctx, all); err != nil {
		t.Fatalf("b never saw 3 members: %+v", b.pool.Members())
	}

	// A meta change (leadership, applied index) reaches the others.
	c.leader.Store(true)
	c.applied.Store(42)
	if err := a.pool.WaitFor(ctx, func(ms []Member) bool {
		m, ok := find(ms, "node/3")
		return ok && m.Meta.Leader && m.Meta.Applied == 42 && m.Meta.Addr == "127.0.0.1:7503"
	}); err != nil {
		t.Fatalf("meta change not seen by a: %+v", a.pool.Members())
	}

	// A member that stops without leaving (like kill -9) is declared dead
	// within seconds, and its last meta is kept.
	start := time.Now()
	c.pool.ml.Shutdown()
	if err := a.pool.WaitFor(ctx, func(ms []Member) bool {
		m, ok := find(ms, "node/3")
		return ok && !m.Alive
	}); err != nil {
		t.Fatalf("dead member not detected: %+v", a.pool.Members())
	}
	m, _ := find(a.pool.Members(), "node/3")
	t.Logf("dead member detected after %v; last meta %+v", time.Since(start).Round(time.Millisecond), m.Meta)
	if m.Meta.Cluster != "c1" {
		t.Fatalf("last meta lost: %+v", m.Meta)
	}
}

func TestStartBeforeSeedExists(t *testing.T) {
	// The seed is not up yet: Start still succeeds and joins once it is.
	seed := "127.0.0.1:" + strconv.Itoa(freeUDPPort(t))
	b := startNode(t, 2, []string{seed})
	defer b.pool.Close()
	a, err := Start(Config{Bind: seed, Meta: func() Meta { return Meta{Role: "router", ID: "r1", Addr: "x"} }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.WaitFor(ctx, func(ms []Member) bool { _, ok := find(ms, "node/2"); return ok }); err != nil {
		t.Fatalf("late seed never joined: %+v", a.Members())
	}
}

// advertised names where other members reach this one, and refuses a
// wildcard they could not dial.
func TestAdvertised(t *testing.T) {
	for _, c := range []struct {
		adv, host string
		port      int
		want      string // host:port, or the start of the error
	}{
		{"", "127.0.0.1", 7946, "127.0.0.1:7946"},
		{"10.0.0.5:7946", "0.0.0.0", 7946, "10.0.0.5:7946"},
		{"node-1.cleave.svc:7000", "0.0.0.0", 7946, "node-1.cleave.svc:7000"},
		{"", "0.0.0.0", 7946, `gossip: bind address "0.0.0.0:7946" listens on every interface`},
		{"", "::", 7946, `gossip: bind address "[::]:7946" listens on every interface`},
		{"0.0.0.0:7946", "0.0.0.0", 7946, `gossip: advertise address "0.0.0.0:7946" is a wildcard`},
		{"10.0.0.5", "0.0.0.0", 7946, `gossip: advertise address "10.0.0.5":`},
		{"10.0.0.5:0", "0.0.0.0", 7946, `gossip: advertise address "10.0.0.5:0": port "0" is not 1-65535`},
	} {
		h, p, err := advertised(c.adv, c.host, c.port)
		got := net.JoinHostPort(h, strconv.Itoa(p))
		if err != nil {
			got = err.Error()
		}
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("advertised(%q, %q, %d) = %s, want %s", c.adv, c.host, c.port, got, c.want)
		}
	}
}

// A member on loopback detects failures fast; one on any other address
// uses memberlist's LAN timings.
func TestTimings(t *testing.T) {
	local, lan := timings("127.0.0.1"), timings("10.0.0.5")
	if local.ProbeTimeout != 200*time.Millisecond || lan.ProbeTimeout != memberlist.DefaultLANConfig().ProbeTimeout {
		t.Errorf("probe timeouts: loopback %v, LAN %v", local.ProbeTimeout, lan.ProbeTimeout)
	}
	for _, mc := range []*memberlist.Config{local, lan, timings("localhost")} {
		if mc.GossipInterval != 200*time.Millisecond || mc.EnableCompression {
			t.Errorf("gossip every %v, compression %v: want 200ms and off", mc.GossipInterval, mc.EnableCompression)
		}
	}
}
