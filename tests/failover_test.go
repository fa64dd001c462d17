package tests

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

// TestFailoverTimes kills the leader of one cluster ten times with SIGKILL
// while a writer keeps writing to a root that cluster owns, and prints the
// median and maximum time from each kill to the next acknowledged write
// (DESIGN §5: about 1 s on loopback).
func TestFailoverTimes(t *testing.T) {
	if testing.Short() {
		t.Skip("failover timing skipped in -short mode")
	}
	d := sharedDeployment(t)
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
	for k := 0; k < kills; {
		st := d.waitLeaders(t, 30*time.Second)
		var cl wire.ClusterStatus
		for _, x := range st.Clusters {
			if x.ID == victim.ID {
				cl = x
			}
		}
		pid := 0
		for _, n := range cl.Nodes {
			if n.Addr == cl.Leader {
				pid = n.PID
			}
		}
		// Wait until every member is back and caught up, so each kill
		// starts from a healthy cluster.
		if !healthy(cl) || pid <= 0 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		killed := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			start := time.Now()
			_, err := c.Put(wctx, fmt.Sprintf("/%s/k%d-%d", root, k, i), []byte("x"))
			cancel()
			if err == nil && start.After(killed) {
				times = append(times, time.Since(killed))
				break
			}
			if time.Since(killed) > 30*time.Second {
				t.Fatalf("kill %d: no write acknowledged within 30s: %v", k, err)
			}
		}
		t.Logf("kill %d (pid %d): next write acknowledged after %v", k+1, pid, times[len(times)-1].Round(time.Millisecond))
		k++
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
