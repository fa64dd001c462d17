package router_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/testcluster"
	"github.com/cleavefs/cleave/router"
	"github.com/cleavefs/cleave/wire"
)

// TestFollowerReads reads through a router with FollowerReads on: every
// read sees the write acknowledged just before it (a follower answers after
// a ReadIndex round), and the reads spread over more than one member.
func TestFollowerReads(t *testing.T) {
	d := testcluster.Start(t, testcluster.Options{Clusters: 1, Router: func(c *router.Config) { c.FollowerReads = true }})
	c := dialRouter(t, d)
	ops := func() map[uint64]uint64 {
		out := map[uint64]uint64{}
		for _, n := range d.Nodes["c1"] {
			st := n.Status()
			out[st.ID] = st.Ops
		}
		return out
	}
	before := ops()
	for i := range 40 {
		p := fmt.Sprintf("/%s/f%d", d.RootIn(t, "c1", fmt.Sprint("fr", i)), i)
		v := []byte(fmt.Sprint("v", i))
		put := call(t, c, &wire.Request{Op: wire.OpPut, Path: p, Data: v, Flags: wire.FlagParents, Session: 7, Seq: uint64(i + 1)})
		if put.Code != wire.OK {
			t.Fatalf("put %s: %v", p, put.Err())
		}
		// Read-your-write through whichever member the path hashes to.
		get := call(t, c, &wire.Request{Op: wire.OpGet, Path: p})
		if get.Code != wire.OK || string(get.Data) != string(v) {
			t.Fatalf("follower read of %s right after its write: %v %q", p, get.Err(), get.Data)
		}
	}
	after := ops()
	served := 0
	for id, n := range after {
		if n-before[id] > 0 {
			served++
		}
	}
	if served < 2 {
		t.Fatalf("requests per member before %v after %v: reads did not spread over the members", before, after)
	}
}

// TestStaleReadsAnyReplica checks that a stale read is served from the
// chosen member's local state even when the cluster has no quorum.
func TestStaleReadsAnyReplica(t *testing.T) {
	d := testcluster.Start(t, testcluster.Options{Clusters: 1})
	c := dialRouter(t, d)
	p := "/" + d.RootIn(t, "c1", "stale") + "/f"
	if resp := call(t, c, &wire.Request{Op: wire.OpPut, Path: p, Data: []byte("x"), Flags: wire.FlagParents, Session: 9, Seq: 1}); resp.Code != wire.OK {
		t.Fatal(resp.Err())
	}
	// Wait until every member has applied the write, then stop two of the
	// three: no quorum, so linearizable reads cannot be served.
	eventually.Holds(t, 10*time.Second, "members to converge", func() error {
		var low, high uint64 = ^uint64(0), 0
		for _, n := range d.Nodes["c1"] {
			a := n.Status().Applied
			low, high = min(low, a), max(high, a)
		}
		return eventually.True(low == high, "applied indexes from %d to %d", low, high)
	})
	nodes := d.Nodes["c1"]
	d.StopNode(nodes[0])
	d.StopNode(nodes[1])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Call(ctx, &wire.Request{Op: wire.OpGet, Path: p, Flags: wire.FlagStale, TimeoutMs: 5000})
	if err != nil || resp.Code != wire.OK || string(resp.Data) != "x" {
		t.Fatalf("stale read with one member left: %v %v %q", err, resp.Err(), resp.Data)
	}
}
