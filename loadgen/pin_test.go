package loadgen

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/internal/testcluster"
	"github.com/cleavefs/cleave/wire"
)

// ownerOf returns the cluster of t whose range holds path's root.
func ownerOf(t *client.RoutingTable, path string) string {
	pt := ring.PathPoint(path)
	for _, ro := range t.Ranges {
		if (wire.Range{Start: ro.Range.Start, End: ro.Range.End}).Contains(pt) {
			return ro.Cluster
		}
	}
	return ""
}

// splitTable is the table after splitting n even clusters once more: 2n
// ranges, cluster k owning ranges k and k+n, as after a split moves half
// of each range away and back by later splits.
func splitTable(n int) *client.RoutingTable {
	t := &client.RoutingTable{}
	for i, r := range ring.Even(2 * n) {
		t.Ranges = append(t.Ranges, client.RangeOwner{
			Range: client.Range{Start: r.Start, End: r.End}, Cluster: "c" + string(rune('1'+i%n))})
	}
	return t
}

// TestPinRootsOwnedByTheirCluster checks that every cluster of a table,
// including one owning two ranges apart, gets the asked number of
// distinct roots, each owned by it, and that the choice is repeatable.
func TestPinRootsOwnedByTheirCluster(t *testing.T) {
	tb := splitTable(4)
	p, err := PinRoots(tb, "loadgen", 300)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Clusters, ",") != "c1,c2,c3,c4" || len(p.Roots) != 4 {
		t.Fatalf("clusters %v, %d root sets: want c1..c4, 4", p.Clusters, len(p.Roots))
	}
	seen := map[string]bool{}
	for g, roots := range p.Roots {
		if len(roots) != 300 {
			t.Errorf("cluster %s: %d roots, want 300", p.Clusters[g], len(roots))
		}
		for _, r := range roots {
			if got := ownerOf(tb, r+"/f00000001"); got != p.Clusters[g] {
				t.Fatalf("root %s pinned to %s is owned by %s", r, p.Clusters[g], got)
			}
			if seen[r] {
				t.Fatalf("root %s given twice", r)
			}
			seen[r] = true
		}
	}
	again, err := PinRoots(tb, "loadgen", 300)
	if err != nil || strings.Join(again.Roots[2], ",") != strings.Join(p.Roots[2], ",") {
		t.Errorf("a second choice differs (err %v)", err)
	}
}

// TestPinRootsErrors checks the clear errors: a cluster whose range is too
// small to get roots is named with its range; bad arguments are refused.
func TestPinRootsErrors(t *testing.T) {
	tiny := &client.RoutingTable{Ranges: []client.RangeOwner{
		{Range: client.Range{Start: 0, End: 2}, Cluster: "c9"},
		{Range: client.Range{Start: 2, End: 0}, Cluster: "c1"},
	}}
	_, err := PinRoots(tiny, "loadgen", 4)
	if err == nil || !strings.Contains(err.Error(), "cluster c9 got 0 of 4 roots") || !strings.Contains(err.Error(), "[0x0, 0x2)") {
		t.Errorf("tiny range: error %v, want it to name c9, its count and its range", err)
	}
	if _, err := PinRoots(&client.RoutingTable{}, "loadgen", 4); err == nil || !strings.Contains(err.Error(), "no ranges") {
		t.Errorf("empty table: error %v", err)
	}
	if _, err := PinRoots(splitTable(2), "loadgen", 0); err == nil || !strings.Contains(err.Error(), "want at least 1") {
		t.Errorf("0 roots per cluster: error %v", err)
	}
	cfg := testConfig()
	cfg.PinClusters, cfg.Workload = true, Get
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "pin clusters") {
		t.Errorf("pinned get: error %v, want pinning refused for a read workload", err)
	}
	cfg.Workload, cfg.Preload = Put, 10
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "preload") {
		t.Errorf("pinned put with preload: error %v", err)
	}
	cfg.Preload = -1
	if _, err := Run(context.Background(), cfg, newMemStore(), nil); !errors.Is(err, ErrNotSupported) {
		t.Errorf("pinned run on a store without a routing table: error %v, want ErrNotSupported", err)
	}
}

// TestRunPinsClientsToClusters runs pinned puts against a real deployment
// of two clusters: the result names both, every client's files lie in its
// own cluster's range, and the roots created are the pinned ones only.
func TestRunPinsClientsToClusters(t *testing.T) {
	d := testcluster.Start(t, testcluster.Options{Clusters: 2})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, []string{d.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	store := NewCleaveStore(c)
	cfg := testConfig()
	cfg.PinClusters, cfg.Ops, cfg.Clients, cfg.Roots, cfg.Files = true, 200, 4, 6, 60
	res, err := Run(ctx, cfg, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Ops != 200 || len(res.Pinned) != 2 {
		t.Fatalf("ops %d errors %d pinned %v: want 200, 0, two clusters", res.Ops, res.Errors, res.Pinned)
	}
	tb, err := store.Table(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := pin(ctx, &cfg, store); err != nil {
		t.Fatal(err)
	}
	for id := range 8 {
		w := newWorker(&cfg, store, id, nil)
		want := cfg.pin.Clusters[id%2]
		for range 200 {
			if f := w.names.File(w.write.Next()); ownerOf(tb, f) != want {
				t.Fatalf("client %d writes %s, owned by %s, not its cluster %s", id, f, ownerOf(tb, f), want)
			}
		}
	}
	ents, err := c.List(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	var made []string
	for _, e := range ents {
		made = append(made, "/"+e.Name)
	}
	want := append(append([]string{}, cfg.pin.Roots[0]...), cfg.pin.Roots[1]...)
	if len(made) != 6 || len(want) != 6 {
		t.Fatalf("roots created %v, pinned %v: want 3 per cluster", made, want)
	}
	for _, r := range want {
		if !strings.Contains(strings.Join(made, " ")+" ", r+" ") {
			t.Errorf("pinned root %s not created; created %v", r, made)
		}
	}
}
