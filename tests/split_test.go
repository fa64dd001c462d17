package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/up"
	"github.com/cleavefs/cleave/wire"
)

// tableWatch polls the routing table until stopped and checks that the
// ranges of every version it sees partition the ring.
type tableWatch struct {
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	versions map[uint64]bool
	bad      []string
}

func watchTable(t *testing.T, d *deployment) *tableWatch {
	w := &tableWatch{stop: make(chan struct{}), done: make(chan struct{}), versions: map[uint64]bool{}}
	c := d.dial(t)
	go func() {
		defer close(w.done)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			tab, err := c.Table(ctx)
			cancel()
			if err == nil {
				var rs []wire.Range
				for _, o := range tab.Ranges {
					rs = append(rs, wire.Range(o.Range))
				}
				w.mu.Lock()
				if !w.versions[tab.Version] {
					w.versions[tab.Version] = true
					if err := ring.CheckPartition(rs); err != nil {
						w.bad = append(w.bad, fmt.Sprintf("version %d: %v", tab.Version, err))
					}
				}
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond): // polling interval
			}
		}
	}()
	return w
}

// finish waits until the watch has seen version want (the router it asks
// may apply the meta group's last entry a moment after the meta leader),
// stops it, and fails t for every version that was not a partition; it
// returns the number of versions seen.
func (w *tableWatch) finish(t *testing.T, want uint64) int {
	err := eventually.Within(10*time.Second, fmt.Sprintf("the watch to see version %d", want), func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		return eventually.True(w.versions[want], "versions seen %v", w.versions)
	})
	if err != nil {
		t.Log(err) // the caller checks what was seen
	}
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.bad {
		t.Errorf("routing table not a partition of the ring: %s", b)
	}
	return len(w.versions)
}

// split runs `cleave split` against d's supervisor and returns its output.
func (d *deployment) split(t *testing.T, args ...string) string {
	t.Helper()
	out, err := d.cli(t, nil, append([]string{"split", "--data", d.dir}, args...)...)
	if err != nil {
		t.Fatalf("cleave split %v: %v\n%s", args, err, out)
	}
	for _, phase := range []string{"planned", "learners-added", "caught-up", "split-committed", "table-updated", "cleaned", "done in"} {
		if !strings.Contains(string(out), phase) {
			t.Fatalf("cleave split %v did not report %q:\n%s", args, phase, out)
		}
	}
	return string(out)
}

// TestSplit runs splits through `cleave split` under `cleave up
// --clusters 1`: of the empty cluster (c1 -> c1, c2), of c1 while 16
// clients write and read (c1 -> c1, c3), then of c2 (-> c2, c4): 1 -> 2
// -> 4 clusters. Every routing table version seen is a partition of the
// ring; the history under the split is linearizable with no client-visible
// error; status and up.json show the new clusters; a restart keeps them.
func TestSplit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	d := startUp(t, dir, "", "--clusters", "1")
	defer d.stop(t)
	watch := watchTable(t, d)

	// (b) an empty cluster.
	out := d.split(t, "c1")
	t.Logf("empty split:\n%s", out)

	// (a) 16 clients while c1 splits again.
	ops, maxPut, splitTook := splitUnderLoad(t, d, 16, 0xc1ea7e)
	t.Logf("split of c1 under 16 clients took %v; max write latency during the split %v", splitTook, maxPut)
	requireLinearizable(t, "split-under-load", 0xc1ea7e, ops)

	// (b) the second split of a split-born cluster: 4 clusters.
	d.split(t, "c2")
	if n := watch.finish(t, 4); n != 4 {
		t.Errorf("saw %d routing table versions, want 4 (bootstrap and three splits)", n)
	}

	// (c) status -o json shows every cluster with its range and nodes.
	st := d.status(t)
	got := map[string]wire.ClusterStatus{}
	var rs []wire.Range
	for _, c := range st.Clusters {
		got[c.ID] = c
		rs = append(rs, c.Range)
	}
	if err := ring.CheckPartition(rs); err != nil {
		t.Errorf("status ranges: %v", err)
	}
	q := uint64(1) << 62
	want := map[string]wire.Range{"c1": {End: q}, "c3": {Start: q, End: 2 * q}, "c2": {Start: 2 * q, End: 3 * q}, "c4": {Start: 3 * q}}
	for id, r := range want {
		c, ok := got[id]
		if !ok || c.Range != r || len(c.Nodes) != 3 {
			t.Errorf("status: cluster %s = %+v, want range %v and 3 nodes", id, c, r)
		}
	}
	if len(st.Splits) != 3 {
		t.Errorf("status lists %d splits, want 3", len(st.Splits))
	}
	for _, s := range st.Splits {
		if s.Phase != "cleaned" {
			t.Errorf("split %d ended %s", s.ID, s.Phase)
		}
	}
	waitSettled(t, dir, 4)

	// A restart finds the new clusters in up.json and their data.
	d.stop(t)
	d = startUp(t, dir, d.router)
	defer d.stop(t)
	st = d.waitLeaders(t, 30*time.Second)
	if len(st.Clusters) != 4 {
		t.Fatalf("after restart %d clusters, want 4", len(st.Clusters))
	}
	c := d.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, op := range ops {
		in, out := op.Input.(fsOp), op.Output.(fsResult)
		if op.ClientId == 16 && !out.NotFound { // the final reads: every key's last value
			b, err := c.Get(ctx, "/"+in.Root+"/"+in.Name)
			if err != nil || string(b) != out.Value {
				t.Errorf("after restart /%s/%s = %q, %v; want %q", in.Root, in.Name, b, err, out.Value)
			}
		}
	}
}

// waitSettled waits until up.json holds n clusters, none pending.
func waitSettled(t *testing.T, dir string, n int) {
	t.Helper()
	eventually.Holds(t, 10*time.Second, fmt.Sprintf("up.json settled with %d clusters", n), func() error {
		topo, err := up.LoadTopology(dir)
		if err != nil {
			return err
		}
		settled := len(topo.Clusters) == n
		for _, c := range topo.Clusters {
			settled = settled && !c.Pending
		}
		return eventually.True(settled, "%+v", topo)
	})
}

// splitUnderLoad splits c1 with `cleave split` while clients run random
// operations (robust_test.go's do) on roots spread over the ring, then
// reads every key once more. It fails on any client-visible error and
// returns the history, the longest put that overlapped the split, and how
// long the split took.
func splitUnderLoad(t *testing.T, d *deployment, clients int, seed uint64) ([]porcupine.Operation, time.Duration, time.Duration) {
	ctx := context.Background()
	c0 := d.dial(t)
	roots := make([]string, 16)
	for i := range roots {
		roots[i] = fmt.Sprintf("split-%d", i)
	}
	mkdirRoots(t, c0, roots)
	rec := &recorder{start: time.Now(), patience: sdkPatience}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for id := range clients {
		c := d.dial(t, directIfOdd(id)...)
		rng := rand.New(rand.NewPCG(seed+uint64(id), 11))
		wg.Go(func() {
			seq := 0
			for !stop.Load() {
				do(ctx, c, rec, id, rng, roots, &seq)
			}
		})
	}
	time.Sleep(time.Second) // load before the split (not synchronisation)
	from := rec.now()
	start := time.Now()
	d.split(t, "c1")
	took := time.Since(start)
	to := rec.now()
	time.Sleep(time.Second) // load against the new table
	stop.Store(true)
	wg.Wait()

	var maxPut time.Duration
	unknown := 0
	rec.mu.Lock()
	for _, op := range rec.ops {
		out := op.Output.(fsResult)
		if out.Unknown {
			unknown++
			continue
		}
		if op.Input.(fsOp).Kind == "put" && op.Return >= from && op.Call <= to {
			maxPut = max(maxPut, time.Duration(op.Return-op.Call))
		}
	}
	n := len(rec.ops)
	errs := strings.Join(rec.errs, "\n")
	rec.mu.Unlock()
	if unknown > 0 {
		t.Errorf("%d of %d operations failed or timed out (client-visible errors) during the split, the first:\n%s", unknown, n, errs)
	}
	if n < 200 {
		t.Errorf("only %d operations ran", n)
	}
	rec.readBack(t, c0, clients, roots, "")
	t.Logf("%d operations under %d clients, %d failed", n, clients, unknown)
	return rec.ops, maxPut, took
}
