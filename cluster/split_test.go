package cluster

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/cleavefs/cleave/fsm"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

// leaderOf waits for a leader among ids.
func (mn *memberNet) leaderOf(ids ...uint64) uint64 {
	mn.t.Helper()
	var lead uint64
	mn.waitFor(fmt.Sprintf("a leader among %v", ids), func() bool {
		for _, id := range ids {
			if n := mn.nodes[id]; n != nil && n.Status().Role == "leader" {
				lead = id
				return true
			}
		}
		return false
	})
	return lead
}

// splitPaths returns one file path per root, for roots whose point is below
// and at or above mid.
func splitPaths(mid uint64, n int) (low, high []string) {
	for i := 0; len(low) < n || len(high) < n; i++ {
		root := fmt.Sprintf("root%d", i)
		p := "/" + root + "/dir/f"
		if ring.Point(root) < mid {
			if len(low) < n {
				low = append(low, p)
			}
		} else if len(high) < n {
			high = append(high, p)
		}
	}
	return low, high
}

func (mn *memberNet) putPath(ids []uint64, p string, data []byte) {
	mn.t.Helper()
	for range 50 {
		lead := mn.leaderOf(ids...)
		resp := mn.call(lead, &wire.Request{Op: wire.OpPut, Path: p, Data: data, Flags: wire.FlagParents})
		switch resp.Code {
		case wire.OK:
			return
		case wire.NotLeader, wire.Unavailable:
			continue
		}
		mn.t.Fatalf("put %s: %v", p, resp.Err())
	}
	mn.t.Fatalf("put %s: no stable leader", p)
}

// addSplitLearners starts dst as empty joiners of the new cluster c2 and
// waits until the leader of src added each as a learner; it returns them
// as the split's members.
func (mn *memberNet) addSplitLearners(src, dst []uint64) []wire.Member {
	mn.t.Helper()
	var nodes []wire.Member
	for _, id := range dst {
		mn.addJoiner(id)
		c := mn.cfgs[id]
		c.ClusterID = "c2"
		mn.cfgs[id] = c
		mn.start(id)
		nodes = append(nodes, *mn.member(id))
	}
	for _, m := range nodes {
		mn.waitFor("learner added", func() bool {
			return mn.call(mn.leaderOf(src...), &wire.Request{Op: wire.OpAddLearner, Member: &m}).Code == wire.OK
		})
	}
	return nodes
}

func (mn *memberNet) get(id uint64, p string) *wire.Response {
	mn.t.Helper()
	return mn.call(id, &wire.Request{Op: wire.OpGet, Path: p})
}

// The cluster side of a split end to end: three empty nodes join a
// three-node cluster as learners, the leader proposes SPLIT, the learners
// become the new cluster with the upper half, the source refuses the upper
// half with WRONG_RANGE (carrying the routing version), the learners are
// removed and the moved half is cleaned from the source, chunk references
// and all; both halves keep working, also after a restart of every node.
func TestSplitForkAndCleanup(t *testing.T) {
	mn := newMemberNet(t, 3)
	src := []uint64{1, 2, 3}
	for _, id := range src {
		mn.start(id)
	}
	mid := ring.Mid(wire.Range{})
	low, high := splitPaths(mid, 6)
	data := bytes.Repeat([]byte("x"), 5000)
	for _, p := range append(slices.Clone(low), high...) {
		mn.putPath(src, p, data)
	}
	// A chunk only the lower half references: the new cluster must let
	// it go.
	lowOnly := bytes.Repeat([]byte("y"), 5000)
	mn.putPath(src, low[0]+"-only", lowOnly)

	dst := []uint64{7, 8, 9}
	nodes := mn.addSplitLearners(src, dst)
	spec := &wire.SplitSpec{Cluster: "c1", NewCluster: "c2", Nodes: nodes, Table: 7}
	var resp *wire.Response
	mn.waitFor("SPLIT committed", func() bool {
		resp = mn.call(mn.leaderOf(src...), &wire.Request{Op: wire.OpSplitFork, Split: spec})
		if resp.Code != wire.OK {
			t.Logf("split: %v", resp.Err())
		}
		return resp.Code == wire.OK
	})
	if resp.Split.At != mid || resp.Split.Index == 0 {
		t.Fatalf("split status %+v, want at %#x", resp.Split, mid)
	}
	// Proposing it again is answered from the record.
	again := mn.call(mn.leaderOf(src...), &wire.Request{Op: wire.OpSplitFork, Split: spec})
	if again.Code != wire.OK || again.Split.Index != resp.Split.Index {
		t.Fatalf("second SPLIT_FORK: %v %+v", again.Err(), again.Split)
	}

	// The new cluster elects a leader and serves the upper half.
	bl := mn.leaderOf(dst...)
	mn.waitFor("new cluster's range", func() bool {
		for _, id := range dst {
			st := mn.nodes[id].Status()
			if st.Range != (wire.Range{Start: mid}) || len(st.Members) != 3 {
				return false
			}
		}
		return true
	})
	for _, p := range high {
		if r := mn.get(bl, p); r.Code != wire.OK || !bytes.Equal(r.Data, data) {
			t.Fatalf("get %s at the new cluster: %v", p, r.Err())
		}
	}
	for _, p := range low {
		if r := mn.get(bl, p); r.Code != wire.WrongRange {
			t.Fatalf("get %s (lower half) at the new cluster: %v, want WRONG_RANGE", p, r.Err())
		}
	}
	mn.putPath(dst, high[0]+"2", []byte("new"))
	mn.compareState(mn.nodes[bl], dst, "the new cluster leader's")

	// The source keeps the lower half and refuses the upper one.
	al := mn.leaderOf(src...)
	for _, id := range src {
		if st := mn.nodes[id].Status(); st.Range != (wire.Range{End: mid}) {
			t.Fatalf("node %d range %v after split", id, st.Range)
		}
	}
	w := mn.call(al, &wire.Request{Op: wire.OpPut, Path: high[1], Data: []byte("lost?")})
	if w.Code != wire.WrongRange || w.Table != 7 {
		t.Fatalf("upper-half put at the source: %v table %d, want WRONG_RANGE table 7", w.Err(), w.Table)
	}
	if r := mn.get(al, high[1]); r.Code != wire.WrongRange {
		t.Fatalf("upper-half get at the source: %v", r.Err())
	}
	mn.putPath(src, low[0]+"2", []byte("new"))

	// Cleanup: remove the learners, drop the moved half.
	for _, id := range dst {
		mn.waitFor("learner removed", func() bool {
			return mn.call(mn.leaderOf(src...), &wire.Request{Op: wire.OpRemoveMember, Member: &wire.Member{ID: id}}).Code == wire.OK
		})
	}
	for more := true; more; {
		r := mn.call(mn.leaderOf(src...), &wire.Request{Op: wire.OpSplitCleanup, Limit: 4})
		if r.Code != wire.OK {
			t.Fatalf("cleanup: %v", r.Err())
		}
		more = r.Exists
	}
	al = mn.leaderOf(src...)
	mn.compareState(mn.nodes[al], src, "the source leader's")
	for _, id := range src {
		n := mn.nodes[id]
		rec, err := n.fsm.Split()
		if err != nil || rec == nil || !rec.Cleaned {
			t.Fatalf("node %d split record %+v %v", id, rec, err)
		}
		var left []string
		for _, p := range entryPaths(t, n.db) {
			if ring.PathPoint(p) >= mid {
				left = append(left, p)
			}
		}
		if len(left) > 0 {
			t.Fatalf("node %d still holds %v after cleanup", id, left)
		}
	}
	// Once the cleanup is over, each node compacts what it dropped away:
	// neither the entries nor their tombstones stay in its database.
	for _, id := range src {
		mn.waitFor(fmt.Sprintf("node %d compacts the moved half away", id), func() bool {
			return storedEntryKeys(t, mn.nodes[id].db, mid, 0) == 0
		})
	}
	// Both halves' chunk (the same 5000 bytes) is still referenced by the
	// lower half, and readable on both sides.
	if r := mn.get(mn.leaderOf(src...), low[1]); r.Code != wire.OK || !bytes.Equal(r.Data, data) {
		t.Fatalf("lower half after cleanup: %v", r.Err())
	}

	// The new cluster drops the lower half it forked with, chunk
	// references and all, and keeps serving its own.
	for more := true; more; {
		r := mn.call(mn.leaderOf(dst...), &wire.Request{Op: wire.OpSplitCleanup, Limit: 4})
		if r.Code != wire.OK {
			t.Fatalf("cleanup on the new cluster: %v", r.Err())
		}
		more = r.Exists
	}
	bl = mn.leaderOf(dst...)
	mn.compareState(mn.nodes[bl], dst, "the new cluster leader's after cleanup")
	for _, id := range dst {
		n := mn.nodes[id]
		var left []string
		for _, p := range entryPaths(t, n.db) {
			if ring.PathPoint(p) < mid {
				left = append(left, p)
			}
		}
		if len(left) > 0 {
			t.Fatalf("new cluster: node %d still holds the lower half's %v after cleanup", id, left)
		}
		if _, closer, err := n.db.Get(chunkKey(fsm.ChunkOf(lowOnly))); err == nil {
			closer.Close()
			t.Fatalf("new cluster: node %d still holds the chunk only the lower half referenced", id)
		}
	}
	for _, id := range dst {
		mn.waitFor(fmt.Sprintf("new cluster: node %d compacts the lower half away", id), func() bool {
			return storedEntryKeys(t, mn.nodes[id].db, 0, mid) == 0
		})
	}
	for _, p := range high {
		if r := mn.get(bl, p); r.Code != wire.OK || !bytes.Equal(r.Data, data) {
			t.Fatalf("get %s at the new cluster after its cleanup: %v", p, r.Err())
		}
	}
	if r := mn.get(mn.leaderOf(src...), low[0]+"-only"); r.Code != wire.OK || !bytes.Equal(r.Data, lowOnly) {
		t.Fatalf("lower-half-only file at the source after both cleanups: %v", r.Err())
	}

	// Every node restarts from its disk into the right group.
	for _, id := range append(slices.Clone(src), dst...) {
		mn.stop(id)
	}
	for _, id := range append(slices.Clone(src), dst...) {
		mn.start(id)
	}
	mn.putPath(dst, high[2], []byte("after restart"))
	mn.putPath(src, low[2], []byte("after restart"))
	if r := mn.get(mn.leaderOf(dst...), high[3]); r.Code != wire.OK || !bytes.Equal(r.Data, data) {
		t.Fatalf("upper half after restart: %v", r.Err())
	}
}
