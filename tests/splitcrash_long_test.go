//go:build long

package tests

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/wire"
)

// TestSplitCrashAtEachPhase holds a split at each phase in turn (the
// test-only switch CLEAVE_TEST_SPLIT_HOLD), kills the routers' meta leader
// and then the source cluster's leader with SIGKILL while it is held, and
// requires the split to end completed or abandoned, the routing table to be
// a partition of the ring, and every file written before to read back.
func TestSplitCrashAtEachPhase(t *testing.T) {
	for _, p := range []wire.SplitPhase{wire.SplitPlanned, wire.SplitLearnersAdded, wire.SplitCaughtUp, wire.SplitCommitted, wire.SplitTableUpdated} {
		phase := string(p)
		t.Run(phase, func(t *testing.T) {
			d := ownDeploymentEnv(t, []string{"CLEAVE_TEST_SPLIT_HOLD=" + phase}, "--clusters", "1")
			w := watchTable(t, d)
			c := d.dial(t)
			ctx := context.Background()
			want := map[string][]byte{}
			for i := range 60 {
				putFile(t, c, want, fmt.Sprintf("/crash-%d/f%d", i%12, i), []byte(fmt.Sprint("v", i)))
			}
			if out, err := d.cli(t, nil, "split", "--data", d.dir, "c1", "--no-wait"); err != nil {
				t.Fatalf("cleave split: %v\n%s", err, out)
			}
			waitPhase(t, c, func(p string) bool { return p == phase }, 30*time.Second)

			st := d.status(t)
			for _, r := range st.Routers {
				if r.Leader && r.PID > 0 {
					t.Logf("held at %s: SIGKILL to the meta leader router %s (pid %d)", phase, r.ID, r.PID)
					syscall.Kill(r.PID, syscall.SIGKILL)
				}
			}
			st = d.waitLeaders(t, 30*time.Second)
			for _, cl := range st.Clusters {
				if cl.ID != "c1" {
					continue
				}
				for _, n := range cl.Nodes {
					if n.Addr == cl.Leader && n.PID > 0 {
						t.Logf("SIGKILL to the source leader, node %d (pid %d)", n.ID, n.PID)
						syscall.Kill(n.PID, syscall.SIGKILL)
					}
				}
			}
			final := waitPhase(t, c, func(p string) bool { return wire.SplitPhase(p).Final() }, 90*time.Second)
			t.Logf("the split ended %s", final)
			tab, err := c.Table(ctx)
			if err != nil {
				t.Fatal(err)
			}
			w.finish(t, tab.Version) // every version seen must be a partition
			requireFiles(t, c, want, "after the split ended "+final)
			clusters := len(d.status(t).Clusters)
			if final == string(wire.SplitCleaned) && clusters != 2 || final == string(wire.SplitAbandoned) && clusters != 1 {
				t.Fatalf("split %s but %d clusters", final, clusters)
			}
		})
	}
}

// waitPhase polls the deployment's splits until the only split's phase
// satisfies ok, and returns it.
func waitPhase(t *testing.T, c *client.Client, ok func(string) bool, timeout time.Duration) string {
	t.Helper()
	last := ""
	eventually.Holds(t, timeout, "the split's phase", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		splits, err := c.Splits(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("phase %q, then %w", last, err)
		}
		if len(splits) > 0 {
			last = string(splits[len(splits)-1].Phase)
		}
		return eventually.True(len(splits) > 0 && ok(last), "phase %q", last)
	})
	return last
}
