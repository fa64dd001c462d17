package router_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/internal/testcluster"
	"github.com/cleavefs/cleave/router"
	"github.com/cleavefs/cleave/wire"
)

// startJoiners starts n empty nodes of cluster id that join c1, as the
// SDK's members.
func startJoiners(t *testing.T, d *testcluster.Deployment, id string, firstID uint64, n int) []client.Member {
	t.Helper()
	var out []client.Member
	for _, m := range d.StartJoiners(t, id, firstID, n) {
		out = append(out, client.Member(m))
	}
	return out
}

// startSplit starts the deployment a split test runs on: cluster c1 with a
// meta group, three joiners ready to become c2 (ids 100 to 102), and a
// context that ends after a minute or with the test.
func startSplit(t *testing.T) (*testcluster.Deployment, []client.Member, context.Context) {
	t.Helper()
	d := testcluster.Start(t, testcluster.Options{Router: metaRouter})
	nodes := startJoiners(t, d, "c2", 100, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return d, nodes, ctx
}

func metaRouter(rc *router.Config) {
	rc.Meta = &control.MetaConfig{RaftID: 1, Peers: map[uint64]string{1: "127.0.0.1:1"}, TickInterval: 10 * time.Millisecond}
	rc.PeerListen = "127.0.0.1:0" // a group of one: nobody dials its peer address
}

// waitSplit polls until the split of c1 is done, checking that every table
// version seen is a partition of the ring, and returns the final record.
func waitSplit(t *testing.T, d *testcluster.Deployment, ctx context.Context) client.SplitStatus {
	t.Helper()
	c := d.Client(t)
	var phases []client.SplitPhase
	var s client.SplitStatus
	timeout := time.Minute
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	eventually.Holds(t, timeout, "the split of c1 done", func() error {
		tab, err := c.Table(ctx)
		if err != nil {
			t.Fatalf("table: %v", err)
		}
		if err := control.ValidateTable(wireTable(tab)); err != nil {
			t.Fatalf("table version %d: %v", tab.Version, err)
		}
		splits, err := c.Splits(ctx)
		if err != nil {
			t.Fatalf("splits: %v", err)
		}
		if len(splits) == 0 {
			t.Fatal("no split recorded")
		}
		s = splits[len(splits)-1]
		if len(phases) == 0 || phases[len(phases)-1] != s.Phase {
			phases = append(phases, s.Phase)
			t.Logf("split %d: %s (index %d, version %d) %s", s.ID, s.Phase, s.Index, s.Version, s.Error)
		}
		return eventually.True(s.Phase.Final(), "phases %v", phases)
	})
	return s
}

// An empty cluster splits: the table gives the upper half to c2, whose
// nodes serve it.
func TestSplitEmptyCluster(t *testing.T) {
	d, nodes, ctx := startSplit(t)
	c := d.Client(t)
	rec, err := c.Split(ctx, client.SplitSpec{Cluster: "c1", NewCluster: "c2", Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Phase != client.SplitPlanned || rec.At != ring.Mid(wire.Range{}) {
		t.Fatalf("planned %+v", rec)
	}
	s := waitSplit(t, d, ctx)
	if s.Phase != client.SplitCleaned {
		t.Fatalf("split ended %s", s.Phase)
	}
	tab, _ := c.Table(ctx)
	if r, ok := control.ClusterRange(wireTable(tab), "c2"); !ok || r != (wire.Range{Start: s.At}) {
		t.Fatalf("c2 range %v in table %+v", r, tab)
	}
	for i := range 20 {
		p := fmt.Sprintf("/e%d/f", i)
		if _, err := c.Put(ctx, p, []byte(p), client.Parents()); err != nil {
			t.Fatalf("put %s after split: %v", p, err)
		}
	}
}

// A cluster with data splits while clients write: no client sees an
// error, every acknowledged write reads back afterwards, and every table
// version is a partition of the ring.
func TestSplitUnderWrites(t *testing.T) {
	d := testcluster.Start(t, testcluster.Options{Router: metaRouter})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := d.Client(t)
	for i := range 100 {
		p := fmt.Sprintf("/pre%d/f", i)
		if _, err := c.Put(ctx, p, []byte(p), client.Parents()); err != nil {
			t.Fatal(err)
		}
	}
	nodes := startJoiners(t, d, "c2", 100, 3)

	var (
		stop   atomic.Bool
		wg     sync.WaitGroup
		mu     sync.Mutex
		acked  = map[string]string{}
		errs   []error
		maxLat time.Duration
	)
	for w := range 8 {
		wg.Go(func() {
			wc := d.Client(t)
			for i := 0; !stop.Load(); i++ {
				p := fmt.Sprintf("/w%d-%d/f", w, i%50)
				v := fmt.Sprintf("%d-%d", w, i)
				start := time.Now()
				_, err := wc.Put(ctx, p, []byte(v), client.Parents())
				lat := time.Since(start)
				mu.Lock()
				maxLat = max(maxLat, lat)
				if err != nil {
					errs = append(errs, fmt.Errorf("put %s: %w", p, err))
				} else {
					acked[p] = v
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(200 * time.Millisecond) // let writes run before the split starts (load, not synchronisation)
	if _, err := c.Split(ctx, client.SplitSpec{Cluster: "c1", NewCluster: "c2", Nodes: nodes}); err != nil {
		t.Fatal(err)
	}
	s := waitSplit(t, d, ctx)
	time.Sleep(200 * time.Millisecond) // writes continue against the new table
	stop.Store(true)
	wg.Wait()
	t.Logf("max write latency during the split: %v; %d files acknowledged", maxLat, len(acked))
	if s.Phase != client.SplitCleaned {
		t.Fatalf("split ended %s", s.Phase)
	}
	for _, err := range errs {
		t.Error(err)
	}
	for p, v := range acked {
		got, err := c.Get(ctx, p)
		if err != nil || string(got) != v {
			t.Errorf("get %s: %q %v, want %q", p, got, err, v)
		}
	}
	for i := range 100 {
		p := fmt.Sprintf("/pre%d/f", i)
		if got, err := c.Get(ctx, p); err != nil || string(got) != p {
			t.Errorf("get %s: %q %v", p, got, err)
		}
	}
}

// wireTable is tab in the protocol's form, for control's checks.
func wireTable(tab *client.RoutingTable) *wire.TableInfo {
	w := &wire.TableInfo{Version: tab.Version}
	for _, o := range tab.Ranges {
		w.Ranges = append(w.Ranges, wire.RangeOwner{Range: wire.Range(o.Range), Cluster: o.Cluster})
	}
	for _, c := range tab.Clusters {
		ci := wire.ClusterInfo{ID: c.ID}
		for _, m := range c.Members {
			ci.Members = append(ci.Members, wire.Member(m))
		}
		w.Clusters = append(w.Clusters, ci)
	}
	return w
}
