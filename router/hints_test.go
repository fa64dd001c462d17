package router

import (
	"strconv"
	"testing"

	"github.com/cleavefs/cleave/wire"
)

// TestNotLeaderHintOutsideTableIgnored: followers name as leader an
// address the routing table does not list for the cluster (a stranger that
// would answer OK to anything). The router never tries it and finds the
// real leader among the table's members.
func TestNotLeaderHintOutsideTableIgnored(t *testing.T) {
	stranger := startStandins(t, "c1", 1, 0)[0]
	nodes := startStandins(t, "c1", 3, 2)
	nodes[0].set("follower", stranger.addr)
	nodes[1].set("follower", stranger.addr)
	r, c := startRouter(t, []wire.ClusterInfo{{ID: "c1", Members: members(nodes[0].addr, nodes[1].addr, nodes[2].addr)}}, nil)
	for i := range 3 {
		p := "/a/" + strconv.Itoa(i)
		if resp := call(t, c, &wire.Request{Op: wire.OpPut, Path: p, Data: []byte("x"), TimeoutMs: 3000}); resp.Code != wire.OK {
			t.Fatalf("put %s: %v", p, resp.Err())
		}
		nodes[2].store.mu.Lock()
		_, ok := nodes[2].store.files[p]
		nodes[2].store.mu.Unlock()
		if !ok {
			t.Fatalf("put %s acknowledged but not stored by the cluster", p)
		}
	}
	if n := stranger.calls.Load(); n != 0 {
		t.Fatalf("the stranger got %d requests", n)
	}
	if n := r.hints.refused.Load(); n == 0 {
		t.Fatal("no refused hint counted")
	}
	if got := r.leader("c1"); got != nodes[2].addr {
		t.Fatalf("cached leader %q, want %s", got, nodes[2].addr)
	}
}
