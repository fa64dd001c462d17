package replica

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
)

// TestFollowerAcksOnceEntriesSynced: a follower acknowledges an append as
// soon as the entries are synced to its log, before it commits the
// Ready's batch (its HardState's commit and what its committed entries
// apply), which is not what the acknowledgement promises; a power cut at
// that instant restarts with nothing acknowledged lost.
func TestFollowerAcksOnceEntriesSynced(t *testing.T) {
	c := newHandCluster(t)
	var (
		watch bool
		want  uint64 // the index node 2 is to acknowledge
		acked []bool // per log sync of node 2: was the acknowledgement out
		point crashPoint
	)
	c.afterLogSync = func(id uint64) {
		if !watch || id != 2 {
			return
		}
		c.net.mu.Lock()
		out := false
		for _, m := range c.net.msgs {
			out = out || m.m.GetType() == pb.MsgAppResp && m.m.GetFrom() == 2 && m.m.GetTo() == 1 &&
				!m.m.GetReject() && m.m.GetIndex() >= want
		}
		c.net.mu.Unlock()
		acked = append(acked, out)
		point = crashPoint{after: "node 2's log sync", disks: map[uint64]*vfs.MemFS{}, acked: ackedSoFar(c)}
		for _, nid := range c.ids() {
			point.disks[nid] = c.nodes[nid].fs.CrashClone(vfs.CrashCloneCfg{})
		}
	}
	c.addNodes([]uint64{1, 2, 3}, false)
	c.campaign(1)
	c.stabilize()
	c.propose(1, "a1")
	c.stabilize()

	c.propose(1, "b1")
	want = c.rep(1).Status().LastIndex
	watch = true
	c.deliver(2)
	watch = false
	if len(acked) != 1 {
		t.Fatalf("node 2 synced its log %d times for b1's append, want once", len(acked))
	}
	if !acked[0] {
		t.Fatalf("node 2 had not acknowledged index %d when its entries were synced: it waits for its state batch too", want)
	}
	c.stabilize()
	c.tick([]uint64{1}, 1)
	c.stabilize()
	checkCrashPoint(t, point)
}
