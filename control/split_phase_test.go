package control

import (
	"errors"
	"testing"

	"github.com/cleavefs/cleave/wire"
)

// The split state machine: one step forward, idempotent repeats, abandon
// only before SPLIT commits; replayed through the meta FSM a record can
// only follow these transitions.
func TestSplitNextPhase(t *testing.T) {
	for _, tc := range []struct {
		cur, next wire.SplitPhase
		ok        bool
	}{
		{wire.SplitPlanned, wire.SplitLearnersAdded, true},
		{wire.SplitLearnersAdded, wire.SplitCaughtUp, true},
		{wire.SplitCaughtUp, wire.SplitCommitted, true},
		{wire.SplitCommitted, wire.SplitTableUpdated, true},
		{wire.SplitTableUpdated, wire.SplitCleaned, true},
		{wire.SplitCaughtUp, wire.SplitCaughtUp, true},
		{wire.SplitPlanned, wire.SplitCaughtUp, false},
		{wire.SplitCleaned, wire.SplitPlanned, false},
		{wire.SplitPlanned, wire.SplitAbandoned, true},
		{wire.SplitLearnersAdded, wire.SplitAbandoned, true},
		{wire.SplitCaughtUp, wire.SplitAbandoned, true},
		{wire.SplitCommitted, wire.SplitAbandoned, false},
		{wire.SplitTableUpdated, wire.SplitAbandoned, false},
		{wire.SplitAbandoned, wire.SplitCommitted, false},
	} {
		t.Run(string(tc.cur)+"->"+string(tc.next), func(t *testing.T) {
			err := NextPhase(tc.cur, tc.next)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadTransition)) {
				t.Fatalf("NextPhase(%s, %s) = %v, want ok=%v", tc.cur, tc.next, err, tc.ok)
			}
		})
	}
}

// PlanSplit and SplitTable keep the table a partition and refuse bad specs.
func TestPlanSplitAndTable(t *testing.T) {
	tab := BootstrapTable([]wire.ClusterInfo{{ID: "c1", Members: []wire.Member{{ID: 1, Addr: "a:1"}}}})
	nodes := []wire.Member{{ID: 7, Addr: "b:1"}}
	if _, err := PlanSplit(tab, nil, 1, &wire.SplitSpec{Cluster: "c9", NewCluster: "c2", Nodes: nodes}); err == nil {
		t.Fatal("split of an unknown cluster planned")
	}
	if _, err := PlanSplit(tab, nil, 1, &wire.SplitSpec{Cluster: "c1", NewCluster: "c2", Nodes: []wire.Member{{ID: 1, Addr: "a:1"}}}); err == nil {
		t.Fatal("split reusing a node id planned")
	}
	rec, err := PlanSplit(tab, nil, 1, &wire.SplitSpec{Cluster: "c1", NewCluster: "c2", Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PlanSplit(tab, []wire.SplitStatus{rec}, 2, &wire.SplitSpec{Cluster: "c1", NewCluster: "c3", Nodes: []wire.Member{{ID: 8, Addr: "c:1"}}}); err == nil {
		t.Fatal("second split planned while one is in progress")
	}
	gone := rec
	gone.Phase = wire.SplitAbandoned
	if _, err := PlanSplit(tab, []wire.SplitStatus{gone}, 2, &wire.SplitSpec{Cluster: "c1", NewCluster: "c2", Nodes: nodes}); err == nil {
		t.Fatal("split to the new cluster of an abandoned split planned again (the source is fenced against it)")
	}
	if _, err := PlanSplit(tab, []wire.SplitStatus{gone}, 2, &wire.SplitSpec{Cluster: "c1", NewCluster: "c3", Nodes: nodes}); err != nil {
		t.Fatalf("split after an abandoned one: %v", err)
	}
	if err := SplitTable(tab, &rec); err != nil {
		t.Fatal(err)
	}
	sortRanges(tab)
	if err := ValidateTable(tab); err != nil {
		t.Fatal(err)
	}
	if r, _ := ClusterRange(tab, "c2"); r != (wire.Range{Start: rec.At}) {
		t.Fatalf("c2 owns %v", r)
	}
}
