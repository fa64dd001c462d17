package tests

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

// TestFailoverTimes kills the leader of one cluster ten times with SIGKILL
// while a writer keeps writing to a root that cluster owns, and prints the
// median and maximum time from each kill to the next acknowledged write
// (about 1 s on loopback). It kills, so it has its own
// deployment.
func TestFailoverTimes(t *testing.T) {
	skipInShortMode(t, "failover timing")
	d := ownDeployment(t)
	st := d.waitLeaders(t, 30*time.Second)
	victim := st.Clusters[0]
	root := ""
	for i := 0; root == ""; i++ {
		if name := fmt.Sprintf("failover-%d", i); victim.Range.Contains(ring.Point(name)) {
			root = name
		}
	}
	c := d.dial(t)
	ctx := context.Background()
	mctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := c.MkdirAll(mctx, "/"+root); err != nil {
		t.Fatal(err)
	}

	const kills = 10
	var times []time.Duration
	for k := range kills {
		// Wait until every member is back and caught up, so each kill
		// starts from a healthy cluster.
		pid := 0
		eventually.Holds(t, 60*time.Second, fmt.Sprintf("kill %d: %s healthy", k, victim.ID), func() error {
			st := d.waitLeaders(t, 30*time.Second)
			var cl wire.ClusterStatus
			for _, x := range st.Clusters {
				if x.ID == victim.ID {
					cl = x
				}
			}
			pid = 0
			for _, n := range cl.Nodes {
				if n.Addr == cl.Leader {
					pid = n.PID
				}
			}
			return eventually.True(healthy(cl) && pid > 0, "%+v", cl)
		})
		killed := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		i := 0
		eventually.Holds(t, 30*time.Second, fmt.Sprintf("kill %d: a write acknowledged", k), func() error {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			start := time.Now()
			i++
			if _, err := c.Put(wctx, fmt.Sprintf("/%s/k%d-%d", root, k, i), []byte("x")); err != nil {
				return err
			}
			return eventually.True(start.After(killed), "acknowledged a write started before the kill")
		})
		times = append(times, time.Since(killed))
		t.Logf("kill %d (pid %d): next write acknowledged after %v", k+1, pid, times[len(times)-1].Round(time.Millisecond))
	}
	slices.Sort(times)
	median := (times[kills/2-1] + times[kills/2]) / 2
	t.Logf("leader failover over %d kills: median %v, max %v (target: median < 1s, max < 2s)",
		kills, median.Round(time.Millisecond), times[kills-1].Round(time.Millisecond))
}

// healthy reports whether every member of c answers and none lags.
func healthy(c wire.ClusterStatus) bool {
	for _, n := range c.Nodes {
		if n.Role == "down" || n.PID <= 0 || n.Lag > 0 {
			return false
		}
	}
	return hasLiveLeader(c)
}
