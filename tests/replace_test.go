package tests

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/wire"
)

// TestUpReplacesFlappingNode kills one follower's process every time
// `cleave up` restarts it, until the supervisor gives it up and puts a
// fresh node (new id, empty disk, --join) in its place through the
// routers; then every member is healthy and every file written before and
// during the churn reads back.
func TestUpReplacesFlappingNode(t *testing.T) {
	skipInShortMode(t, "multi-process replacement")
	d := ownDeployment(t, "--clusters", "1")
	c := d.dial(t)
	want := map[string][]byte{}
	put := func(i int) {
		putFile(t, c, want, fmt.Sprintf("/flap-%d/f%d", i%3, i), []byte(fmt.Sprint("value ", i)))
	}
	for i := range 30 {
		put(i)
	}

	st := d.waitLeaders(t, 30*time.Second)
	cl := st.Clusters[0]
	var victim wire.NodeStatus
	for _, n := range cl.Nodes {
		if n.Addr != cl.Leader {
			victim = n
		}
	}
	t.Logf("flapping node %d (%s)", victim.ID, victim.Addr)
	// Kill the node each time it comes back, until it leaves the cluster.
	lastPID, kills := 0, 0
	eventually.Holds(t, 90*time.Second, fmt.Sprintf("node %d replaced", victim.ID), func() error {
		st := d.status(t)
		var n *wire.NodeStatus
		for i := range st.Clusters[0].Nodes {
			if st.Clusters[0].Nodes[i].ID == victim.ID {
				n = &st.Clusters[0].Nodes[i]
			}
		}
		if n == nil {
			return nil
		}
		if n.PID > 0 && n.PID != lastPID {
			syscall.Kill(n.PID, syscall.SIGKILL)
			lastPID = n.PID
			kills++
			put(100 + kills)
		}
		return fmt.Errorf("still a member after %d kills: %+v", kills, *n)
	})
	t.Logf("node %d left the cluster after %d kills", victim.ID, kills)

	// The replacement is a voter, caught up, and the cluster has three
	// healthy members again.
	eventually.Holds(t, 60*time.Second, "three healthy members after the replacement", func() error {
		st := d.status(t)
		cl := st.Clusters[0]
		if len(cl.Nodes) == 3 && healthy(cl) {
			for _, n := range cl.Nodes {
				if n.ID == victim.ID {
					t.Fatalf("the dead node %d is still a member: %+v", victim.ID, cl.Nodes)
				}
			}
			t.Logf("cluster members now %v", nodeIDs(cl))
			return nil
		}
		return fmt.Errorf("members %+v", cl.Nodes)
	})
	put(1000)
	requireFiles(t, c, want, "after the replacement")
}

func nodeIDs(c wire.ClusterStatus) []uint64 {
	var out []uint64
	for _, n := range c.Nodes {
		out = append(out, n.ID)
	}
	return out
}
