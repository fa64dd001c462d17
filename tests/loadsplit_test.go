package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

// loadSplitOps is the --auto-split-ops of TestAutoSplitByLoad: low enough
// that 8 clients cross it on a loaded machine, far above the one slow
// client on the other cluster.
const loadSplitOps = 100

// TestAutoSplitByLoad: `cleave up --clusters 2 --auto-split-ops`, 8
// clients on 16 roots of c1 and one slow client on c2: c1 (not c2) splits
// by itself, the history recorded across the split is linearizable with
// no client-visible error, and every key reads back. Then 8 clients on a
// single root of c2: status names it c2's hot root, the supervisor logs
// that it does not split c2, and c2 is not split.
func TestAutoSplitByLoad(t *testing.T) {
	skipInShortMode(t, "auto-split by load")
	const seed = 0x10ad5
	d := ownDeployment(t, "--clusters", "2", "--auto-split-ops", fmt.Sprint(loadSplitOps), "--auto-split-window", "5s")
	c0 := d.dial(t)
	ranges := map[string]wire.Range{}
	for _, cl := range d.status(t).Clusters {
		ranges[cl.ID] = cl.Range
	}
	roots := rootsIn(ranges["c1"], "busy", 16)
	light := rootsIn(ranges["c2"], "light", 1)
	mkdirRoots(t, c0, append(roots, light...))

	rec := &recorder{start: time.Now(), patience: sdkPatience}
	stop := driveLoad(t, d, rec, seed, 8, roots, 0)
	stopLight := driveLoad(t, d, rec, seed+100, 1, light, 100*time.Millisecond)
	sp := waitSplit(t, c0, 1, 3*time.Minute, "an automatic split", func(s client.SplitStatus) bool { return s.Phase.Final() })
	n := stop() + stopLight()
	if sp.Cluster != "c1" || sp.Phase != client.SplitCleaned {
		t.Fatalf("first automatic split: %s into %s, %s; want c1, cleaned", sp.Cluster, sp.NewCluster, sp.Phase)
	}
	rec.readBack(t, c0, 99, append(roots, light...), " after the split")
	t.Logf("%d operations; c1 split into %s", n, sp.NewCluster)
	requireLinearizable(t, "auto-split-by-load", seed, rec.ops)

	// One hot root on c2, over the threshold: reported, not split.
	hot := rootsIn(ranges["c2"], "hot", 1)
	mkdirRoots(t, c0, hot)
	stop = driveLoad(t, d, &recorder{start: time.Now(), patience: sdkPatience}, seed+200, 8, hot, 0)
	eventually.Holds(t, 2*time.Minute, "the supervisor to hold c2 back for its hot root", func() error {
		log, err := os.ReadFile(d.dir + ".up.log")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, "hot root, not splitting") && strings.Contains(line, "cluster=c2") && strings.Contains(line, "hot_root="+hot[0]) {
				return nil
			}
		}
		return fmt.Errorf("no such line in %s", d.dir+".up.log")
	})
	out, err := d.cli(t, nil, "status")
	stop()
	if err != nil || !strings.Contains(string(out), "hot root in c2: root \""+hot[0]+"\"") {
		t.Errorf("cleave status does not name c2's hot root %q (%v):\n%s", hot[0], err, out)
	}
	for _, s := range d.status(t).Splits {
		if s.Cluster == "c2" {
			t.Errorf("c2 was split (split %d into %s) though one root carries its load", s.ID, s.NewCluster)
		}
	}
}

// rootsIn returns n root names, prefix-i, whose points lie in r.
func rootsIn(r wire.Range, prefix string, n int) []string {
	var roots []string
	for i := 0; len(roots) < n; i++ {
		if name := fmt.Sprintf("%s-%d", prefix, i); r.Contains(ring.Point(name)) {
			roots = append(roots, name)
		}
	}
	return roots
}

// driveLoad starts clients that run random recorded operations on roots
// (robust_test.go's do), each pausing pause between operations, and
// returns a function that stops them (within 10 minutes at most) and
// returns how many operations they ran. Any client-visible error fails t.
func driveLoad(t *testing.T, d *deployment, rec *recorder, seed uint64, clients int, roots []string, pause time.Duration) func() int {
	var stop atomic.Bool
	var wg sync.WaitGroup
	var ops atomic.Int64
	deadline := time.Now().Add(10 * time.Minute)
	for id := range clients {
		c := d.dial(t)
		rng := rand.New(rand.NewPCG(seed+uint64(id), 13))
		wg.Go(func() {
			seq := 0
			for !stop.Load() && time.Now().Before(deadline) {
				do(context.Background(), c, rec, int(seed%1000)+id, rng, roots, &seq)
				ops.Add(1)
				time.Sleep(pause)
			}
		})
	}
	return func() int {
		stop.Store(true)
		wg.Wait()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		unknown := 0
		for _, op := range rec.ops {
			if op.Output.(fsResult).Unknown {
				unknown++
			}
		}
		if unknown > 0 {
			t.Errorf("%d of %d operations failed or timed out (client-visible errors), the first:\n%s", unknown, len(rec.ops), strings.Join(rec.errs, "\n"))
		}
		return int(ops.Load())
	}
}
