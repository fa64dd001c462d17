package cluster

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

// splitWithLearners starts source nodes 1-3 with files in both halves, adds
// joiners 4-6 (cluster c2) as learners and waits until they hold the
// files. It returns the upper-half paths and the learners' wire members.
func splitWithLearners(t *testing.T) (mn *memberNet, src, dst []uint64, high []string, nodes []wire.Member) {
	mn = newMemberNet(t, 3)
	src, dst = []uint64{1, 2, 3}, []uint64{4, 5, 6}
	for _, id := range src {
		mn.start(id)
	}
	low, high := splitPaths(ring.Mid(wire.Range{}), 3)
	for _, p := range append(slices.Clone(low), high...) {
		mn.putPath(src, p, []byte("before the split"))
	}
	nodes = mn.addSplitLearners(src, dst)
	mn.waitFor("learners hold the files", func() bool {
		a := mn.nodes[mn.leaderOf(src...)].Status().Applied
		for _, id := range dst {
			if mn.nodes[id].Status().Applied < a {
				return false
			}
		}
		return true
	})
	return mn, src, dst, high, nodes
}

func (mn *memberNet) proposeSplit(src []uint64, nodes []wire.Member) *wire.SplitStatus {
	mn.t.Helper()
	spec := &wire.SplitSpec{Cluster: "c1", NewCluster: "c2", Nodes: nodes, Table: 2}
	var resp *wire.Response
	mn.waitFor("SPLIT committed", func() bool {
		resp = mn.call(mn.leaderOf(src...), &wire.Request{Op: wire.OpSplitFork, Split: spec})
		return resp.Code == wire.OK
	})
	return resp.Split
}

// sameState checks that ids (one group) hold their leader's state.
func (mn *memberNet) sameState(ids ...uint64) {
	mn.t.Helper()
	mn.compareState(mn.nodes[mn.leaderOf(ids...)], ids, "its leader's")
}

// A learner that has not applied SPLIT yet still runs the source's replica,
// whose configuration lists the new group's members: the new group's
// leader must not become its leader (its appends would overwrite the
// source's entries there and count toward the new group's commit). Node 5
// is down at the split; the source is then stopped so that 5 hears only
// from the new group; 5 must ignore it and, once the source is back, apply
// SPLIT and join the new group with the same state as the others.
func TestSplitLaggingLearnerIgnoresNewGroup(t *testing.T) {
	mn, src, dst, high, nodes := splitWithLearners(t)
	mn.stop(5)
	mn.proposeSplit(src, nodes)
	newLead := mn.leaderOf(4, 6)
	for _, id := range src {
		mn.stop(id)
	}
	mn.start(5)
	// 100 heartbeat intervals of the new group's leader.
	for deadline := time.Now().Add(100 * mn.cfgs[newLead].TickInterval); time.Now().Before(deadline); {
		st := mn.nodes[5].Status()
		if st.Leader == 4 || st.Leader == 6 {
			t.Fatalf("node 5, still in the source group (applied %d, term %d), took node %d of the new group as its leader", st.Applied, st.Term, st.Leader)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
	if got := mn.nodes[5].rep.get().Stats().Foreign; got == 0 {
		t.Fatalf("node 5 counted no frames of another group; the new leader %d sends it heartbeats", newLead)
	}
	for _, id := range src {
		mn.start(id)
	}
	mn.waitFor("node 5 forked into the new group", func() bool {
		return mn.nodes[5].Status().Range == (wire.Range{Start: ring.Mid(wire.Range{})})
	})
	mn.putPath(dst, high[0], []byte("after the split"))
	mn.sameState(dst...)
	if r := mn.get(5, high[0]); r.Code != wire.OK && r.Code != wire.NotLeader {
		t.Fatalf("get %s at node 5: %v", high[0], r.Err())
	}
	if r := mn.call(5, &wire.Request{Op: wire.OpGet, Path: high[0], Flags: wire.FlagStale}); !bytes.Equal(r.Data, []byte("after the split")) {
		t.Fatalf("stale get %s at node 5: %v %q", high[0], r.Err(), r.Data)
	}
}

// A learner restored from a source snapshot taken after SPLIT joins the
// new group empty. The source's leader still lists it as a learner with a
// match index above zero until cleanup; its heartbeats (commit > 0 at a
// node whose log is empty) must be dropped, not crash the node, and the
// node must catch up from the new group's leader and survive restarts.
func TestSplitEmptyJoinerSurvivesSourceHeartbeats(t *testing.T) {
	mn, src, dst, high, nodes := splitWithLearners(t)
	mn.stop(5)
	mn.proposeSplit(src, nodes)
	// Move the source's log past node 5's match: it then needs a snapshot,
	// which is taken after the SPLIT entry.
	low, _ := splitPaths(ring.Mid(wire.Range{}), 40)
	for _, p := range low {
		mn.putPath(src, p, []byte("after the split, lower half"))
	}
	mn.start(5)
	mn.waitFor("node 5 in the new group", func() bool {
		st := mn.nodes[5].Status()
		return st.Range == (wire.Range{Start: ring.Mid(wire.Range{})}) && len(st.Members) == 3
	})
	mn.putPath(dst, high[0], []byte("after the split"))
	mn.sameState(dst...)
	mn.stop(5)
	mn.start(5)
	mn.putPath(dst, high[1], []byte("after node 5's restart"))
	mn.sameState(dst...)
	select {
	case <-mn.nodes[5].Failed():
		t.Fatalf("node 5 failed: %v", mn.nodes[5].FailErr())
	default:
	}
}

// After SPLIT the source answers WRONG_RANGE for the moved half with a
// routing version newer than the one the request was routed with, even
// when other table changes made the version the SPLIT record names
// (proposed as the meta version + 1) stale: the router then waits for the
// table instead of counting a misroute.
func TestSplitWrongRangeHintIsNewerThanTheRequests(t *testing.T) {
	mn, src, _, high, nodes := splitWithLearners(t)
	rec := mn.proposeSplit(src, nodes)
	if rec.Version != 2 {
		t.Fatalf("split recorded routing version %d, want the 2 it was proposed with", rec.Version)
	}
	lead := mn.leaderOf(src...)
	for _, tc := range []struct{ routed, want uint64 }{{0, 2}, {1, 2}, {2, 3}, {5, 6}} {
		resp := mn.call(lead, &wire.Request{Op: wire.OpPut, Path: high[1], Data: []byte("x"), Table: tc.routed})
		if resp.Code != wire.WrongRange || resp.Table != tc.want {
			t.Errorf("upper-half put routed with version %d: %v table %d, want WRONG_RANGE table %d", tc.routed, resp.Err(), resp.Table, tc.want)
		}
	}
}
