package up

import (
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
)

// loadStatus is a status of clusters c1, c2, ... with the given bytes,
// request counters and hot roots ("" none).
func loadStatus(bytes, ops []uint64, hot []string) *client.Status {
	st := &client.Status{}
	for i := range bytes {
		cl := client.ClusterStatus{ID: "c" + string(rune('1'+i)), Nodes: []client.NodeStatus{{Bytes: bytes[i], Ops: ops[i]}}}
		if hot[i] != "" {
			cl.HotRoot = &client.HotRoot{Name: hot[i], Ops: ops[i], Total: ops[i]}
		}
		st.Clusters = append(st.Clusters, cl)
	}
	return st
}

// TestChooseSplit: over the ops threshold the busiest cluster splits
// first, not the biggest; a cluster over the bytes threshold goes before
// any over the ops threshold; a cluster whose load one root carries is
// held back (reported once) instead of split; nothing is chosen before a
// whole window was measured.
func TestChooseSplit(t *testing.T) {
	t0 := time.Unix(1000, 0)
	w := 10 * time.Second
	for _, tc := range []struct {
		name     string
		a        AutoSplit
		bytes    []uint64
		ops      []uint64 // requests served during the window
		hot      []string
		want     string
		wantHeld []string
	}{
		{"busiest first", AutoSplit{Ops: 100, Window: w}, []uint64{10, 500}, []uint64{5000, 1500}, []string{"", ""}, "c1", nil},
		{"under the threshold", AutoSplit{Ops: 100, Window: w}, []uint64{10, 500}, []uint64{900, 800}, []string{"", ""}, "", nil},
		{"bytes before ops", AutoSplit{Ops: 100, Bytes: 400, Window: w}, []uint64{10, 500}, []uint64{5000, 0}, []string{"", ""}, "c2", nil},
		{"hot root held", AutoSplit{Ops: 100, Window: w}, []uint64{10, 500}, []uint64{5000, 1500}, []string{"r", ""}, "c2", []string{"c1"}},
		{"only a hot root", AutoSplit{Ops: 100, Window: w}, []uint64{10, 500}, []uint64{5000, 0}, []string{"r", ""}, "", []string{"c1"}},
		{"hot root over bytes", AutoSplit{Ops: 100, Bytes: 5, Window: w}, []uint64{10, 0}, []uint64{5000, 0}, []string{"r", ""}, "c1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := newSplitChooser(tc.a)
			zero := make([]uint64, len(tc.bytes))
			if pick, _, held := sc.choose(loadStatus(tc.bytes, zero, tc.hot), t0); pick != "" && tc.a.Bytes == 0 || len(held) != 0 {
				t.Fatalf("first sample: %q, held %v", pick, held)
			}
			if pick, _, held := sc.choose(loadStatus(tc.bytes, tc.ops, tc.hot), t0.Add(w/2)); tc.a.Bytes == 0 && (pick != "" || len(held) != 0) {
				t.Fatalf("half a window: %q, held %v", pick, held)
			}
			pick, why, held := sc.choose(loadStatus(tc.bytes, tc.ops, tc.hot), t0.Add(w))
			var heldIDs []string
			for _, h := range held {
				heldIDs = append(heldIDs, h.Cluster)
			}
			if pick != tc.want || len(heldIDs) != len(tc.wantHeld) || (len(heldIDs) > 0 && heldIDs[0] != tc.wantHeld[0]) {
				t.Fatalf("chose %q (%s), held %v; want %q, held %v", pick, why, heldIDs, tc.want, tc.wantHeld)
			}
			if _, _, again := sc.choose(loadStatus(tc.bytes, tc.ops, tc.hot), t0.Add(w+time.Second)); len(again) != 0 {
				t.Fatalf("held reported again: %v", again)
			}
		})
	}
}
