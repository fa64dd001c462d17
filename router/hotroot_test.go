package router

import (
	"testing"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// TestHotRoot: a root is hot when it carried at least half of the
// cluster's requests over the window, counted over every node; spread
// load, too few requests, and a root that was busy only before the window
// name nothing; a node listing only its busiest roots counts an unlisted
// root at most at its smallest listed count.
func TestHotRoot(t *testing.T) {
	node := func(id uint64, ops uint64, roots ...wire.RootUsage) wire.NodeStatus {
		return wire.NodeStatus{ID: id, Role: "leader", Ops: ops, Roots: roots}
	}
	ru := func(name string, ops uint64) wire.RootUsage { return wire.RootUsage{Name: name, Ops: ops} }
	t0 := time.Unix(1000, 0)
	var w loadWindow

	// First status: since the nodes started.
	if h := w.hotRoot("c1", []wire.NodeStatus{node(1, 1000, ru("hot", 900), ru("a", 100))}, t0); h == nil || h.Name != "hot" || h.Ops != 900 || h.Total != 1000 || h.Seconds != 0 {
		t.Fatalf("since start: %+v", h)
	}
	// Within the window the load spreads: "hot" has 400 of 1000 (300 on
	// node 1, 100 on node 2), "a" 400, "b" 200.
	h := w.hotRoot("c1", []wire.NodeStatus{node(1, 1900, ru("hot", 1200), ru("a", 500), ru("b", 200)), node(2, 100, ru("hot", 100))}, t0.Add(10*time.Second))
	if h != nil {
		t.Fatalf("400 of 1000 requests: hot %+v", h)
	}
	// Then node 2 serves "hot" alone: 700 of 1200 since t0.
	if h := w.hotRoot("c1", []wire.NodeStatus{node(1, 1900, ru("hot", 1200), ru("a", 500), ru("b", 200)), node(2, 300, ru("hot", 300))}, t0.Add(20*time.Second)); h == nil || h.Name != "hot" || h.Ops != 600 || h.Total != 1200 || h.Seconds != 20 {
		t.Fatalf("600 of 1200 requests: %+v", h)
	}
	// Spread evenly: nothing.
	if h := w.hotRoot("c2", []wire.NodeStatus{node(1, 4000, ru("a", 1000), ru("b", 1000), ru("c", 1000), ru("d", 1000))}, t0); h != nil {
		t.Fatalf("spread: %+v", h)
	}
	// Too few requests: nothing.
	if h := w.hotRoot("c3", []wire.NodeStatus{node(1, 50, ru("a", 50))}, t0); h != nil {
		t.Fatalf("50 requests: %+v", h)
	}
	// Busy only before the window: the window's requests are spread.
	w.hotRoot("c4", []wire.NodeStatus{node(1, 10000, ru("old", 10000))}, t0)
	if h := w.hotRoot("c4", []wire.NodeStatus{node(1, 10400, ru("old", 10000), ru("x", 100), ru("y", 100), ru("z", 100), ru("v", 100))}, t0.Add(40*time.Second)); h != nil {
		t.Fatalf("old hot root: %+v", h)
	}
	// Unlisted at the base: counted from the smallest listed count there.
	w.hotRoot("c5", []wire.NodeStatus{node(1, 500, ru("a", 100), ru("b", 100), ru("c", 100), ru("d", 100), ru("e", 100))}, t0)
	if h := w.hotRoot("c5", []wire.NodeStatus{node(1, 1500, ru("new", 900), ru("a", 120), ru("b", 120), ru("c", 120), ru("d", 120))}, t0.Add(5*time.Second)); h == nil || h.Name != "new" || h.Ops != 800 || h.Total != 1000 || h.Seconds != 5 {
		t.Fatalf("new root: %+v", h)
	}
	// A restarted node counts from zero.
	w.hotRoot("c6", []wire.NodeStatus{node(1, 5000, ru("a", 5000))}, t0)
	if h := w.hotRoot("c6", []wire.NodeStatus{node(1, 300, ru("b", 300))}, t0.Add(5*time.Second)); h == nil || h.Name != "b" || h.Total != 300 {
		t.Fatalf("restart: %+v", h)
	}
}
