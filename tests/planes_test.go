package tests

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

// TestForgedRaftOnClientPorts sends what a stranger on the network would:
// a heartbeat with term 2^64-1, as a one-way RAFT frame of the right group
// from another member's id, to every node's client port and to every
// router's client port (naming the meta group). The client plane does not
// serve RAFT, so nothing changes: every node stays up with the same leader
// and term, the meta group keeps its leader, writes still succeed, and
// each node's STATUS counts the frame it refused. A peer op (REMOVE_MEMBER)
// sent to a node's client port is answered FORBIDDEN naming the peer
// listener, and the member stays.
func TestForgedRaftOnClientPorts(t *testing.T) {
	skipInShortMode(t, "a deployment of its own")
	d := ownDeployment(t, "--clusters", "1")
	before := d.waitLeaders(t, 30*time.Second)
	c1 := before.Clusters[0]
	metaLeader := metaLeaderOf(before)
	if metaLeader == "" || len(before.Routers) < 2 {
		t.Fatalf("want a meta group with a leader, got routers %+v", before.Routers)
	}
	pool := rpc.NewPool(rpc.DialConfig{Client: "planes-test", Token: d.token})
	t.Cleanup(pool.Close)
	was := map[string]*wire.NodeStatus{}
	for i, n := range c1.Nodes {
		st, err := statusOf(pool, n.Addr, false)
		if err != nil {
			t.Fatalf("status of %s: %v", n.Addr, err)
		}
		was[n.Addr] = st
		other := c1.Nodes[(i+1)%len(c1.Nodes)].ID
		sendFrames(t, n.Addr, d.token, []staleFrame{{c1.ID, 1, heartbeat(other, st.ID, math.MaxUint64, st.Commit)}})
	}
	for i, r := range before.Routers {
		other := before.Routers[(i+1)%len(before.Routers)].RaftID
		sendFrames(t, r.Addr, d.token, []staleFrame{{"meta", 1, heartbeat(other, r.RaftID, math.MaxUint64, 0)}})
	}

	for a, b := range was {
		eventually.Holds(t, 20*time.Second, "node counted the refused frame", func() error {
			st, err := statusOf(pool, a, false)
			if err != nil {
				return err
			}
			if st.Term != b.Term || st.Leader != b.Leader {
				t.Fatalf("node %d: term %d leader %d after the forged frame, was term %d leader %d", st.ID, st.Term, st.Leader, b.Term, b.Leader)
			}
			return eventually.True(st.WrongPlaneFrames > b.WrongPlaneFrames, "wrong-plane frames %d, was %d", st.WrongPlaneFrames, b.WrongPlaneFrames)
		})
	}
	c := d.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.MkdirAll(ctx, "/planes"); err != nil {
		t.Fatalf("mkdir after the forged frames: %v", err)
	}
	if _, err := c.Put(ctx, "/planes/after", []byte("still writable")); err != nil {
		t.Fatalf("put after the forged frames: %v", err)
	}
	after := d.status(t)
	if l := metaLeaderOf(after); l != metaLeader {
		t.Errorf("meta leader %s after the forged frames, was %s", l, metaLeader)
	}
	for _, r := range after.Routers {
		if r.WrongPlaneFrames == 0 || r.PeerAddr == "" || r.PeerAddr == r.Addr {
			t.Errorf("router %s: %d wrong-plane frames counted (sent 1), client %s, peer %s", r.ID, r.WrongPlaneFrames, r.Addr, r.PeerAddr)
		}
	}
	for _, n := range after.Clusters[0].Nodes {
		if b := was[n.Addr]; b == nil || n.Role == "down" || n.Term != b.Term {
			t.Errorf("node %d at %s: role %s term %d after the forged frames (before: %+v)", n.ID, n.Addr, n.Role, n.Term, b)
		}
	}

	// A peer op on the client port is refused, naming the plane.
	victim := c1.Nodes[0]
	resp, err := callNode(ctx, pool, c1.Leader, &wire.Request{Op: wire.OpRemoveMember, Member: &wire.Member{ID: victim.ID}})
	if err != nil {
		t.Fatalf("REMOVE_MEMBER to the leader's client port: %v", err)
	}
	if resp.Code != wire.Forbidden || !strings.Contains(resp.Message, "peer listener") {
		t.Fatalf("REMOVE_MEMBER on the client port answered %v %q, want FORBIDDEN naming the peer listener", resp.Code, resp.Message)
	}
	st, err := statusOf(pool, c1.Leader, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != len(c1.Nodes) {
		t.Fatalf("members after the refused REMOVE_MEMBER: %+v", st.Members)
	}
}

// metaLeaderOf returns the address of the router leading the meta group.
func metaLeaderOf(st *wire.Status) string {
	for _, r := range st.Routers {
		if r.Leader {
			return r.Addr
		}
	}
	return ""
}
