package replica

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// crashPoint is every node's disk as a power cut would leave it at one
// instant, and the commands whose proposers had been told "applied" by
// then.
type crashPoint struct {
	after string // what the loop had just done
	disks map[uint64]*vfs.MemFS
	acked []string
}

// TestCrashCloneAfterEveryReady runs a workload of proposals (with a follower
// crash and a snapshot, and a leader crash and election) under the hand
// driver and takes a crash clone of every node's disk after every Ready of
// any node (and every apply batch committed ahead of one, and every log
// sync, after which acknowledgements may go out). Each clone set is
// then reopened as a cluster of its own, which elects a leader and commits
// one more entry: every command acknowledged before the clones were taken
// must be applied, on every node, exactly once, and no index may be applied
// twice.
func TestCrashCloneAfterEveryReady(t *testing.T) {
	c := newHandCluster(t)
	c.logRetention = 4 // the restarted follower catches up by snapshot
	var points []crashPoint
	readies := map[uint64]int{}
	clone := func(after string) {
		// On a loop goroutine; every other loop is idle.
		p := crashPoint{after: after, disks: map[uint64]*vfs.MemFS{}}
		for _, nid := range c.ids() {
			p.disks[nid] = c.nodes[nid].fs.CrashClone(vfs.CrashCloneCfg{})
		}
		p.acked = ackedSoFar(c)
		points = append(points, p)
	}
	c.afterReady = func(id uint64) {
		readies[id]++
		clone(fmt.Sprintf("ready %d of node %d", readies[id], id))
	}
	c.afterApply = func(id uint64) {
		clone(fmt.Sprintf("the apply batch before ready %d of node %d", readies[id]+1, id))
	}
	c.afterLogSync = func(id uint64) {
		clone(fmt.Sprintf("the log sync of ready %d of node %d", readies[id]+1, id))
	}
	c.addNodes([]uint64{1, 2, 3}, false)
	c.campaign(1)
	c.stabilize()
	n := 0
	batch := func(leader uint64, k int) {
		var cmds []string
		for range k {
			n++
			cmds = append(cmds, fmt.Sprintf("w%d", n))
		}
		c.propose(leader, cmds...)
		c.stabilize()
	}
	for i := range 4 {
		batch(1, 1+i%3)
	}
	c.crash(3)
	for i := range 4 {
		batch(1, 1+i%2)
	}
	c.start(3)
	c.tick([]uint64{1}, 1)
	c.stabilize()
	batch(1, 2)
	c.crash(1)
	// As in testdata/elections.txt: 3 times out while 2 still holds the
	// leader's lease, then 2 times out and gets 3's vote.
	c.tick([]uint64{3}, 19)
	c.stabilize()
	c.tick([]uint64{2}, 19)
	c.stabilize()
	if st := c.rep(2).Status(); st.Role != "leader" {
		t.Fatalf("node 2 did not win the election: %+v", st)
	}
	for i := range 3 {
		batch(2, 1+i)
	}
	c.start(1)
	c.tick([]uint64{2}, 1)
	c.stabilize()
	batch(2, 2)
	final := ackedSoFar(c)
	if len(final) != n {
		t.Fatalf("%d of %d commands acknowledged: %v", len(final), n, final)
	}
	t.Logf("%d commands, %d crash points", n, len(points))

	for i, p := range points {
		checkCrashPoint(t, p)
		points[i] = crashPoint{} // let the disks go
	}
}

// ackedSoFar returns the commands whose proposers got "applied" so far.
func ackedSoFar(c *handCluster) []string {
	var out []string
	for _, h := range c.props {
		select {
		case res := <-h.p.done:
			h.p.done <- res
			if res.err == nil {
				out = append(out, h.cmd)
			}
		default:
		}
	}
	return out
}

// checkCrashPoint restarts every node from its disk at p and checks that
// nothing acknowledged is lost and nothing is applied twice.
func checkCrashPoint(t *testing.T, p crashPoint) {
	t.Helper()
	c := newHandCluster(t)
	c.logRetention = 4
	ids := slices.Sorted(func(yield func(uint64) bool) {
		for id := range p.disks {
			if !yield(id) {
				return
			}
		}
	})
	for _, id := range ids {
		c.nodes[id] = &handNode{id: id, fs: p.disks[id], boot: true}
		c.peers = append(c.peers, id)
	}
	for _, id := range ids {
		c.start(id)
	}
	var lead uint64
	for _, id := range ids {
		c.campaign(id)
		c.stabilize()
		if c.rep(id).Status().Role == "leader" {
			lead = id
			break
		}
	}
	if lead == 0 {
		t.Fatalf("after %s: no leader after restart:\n%s", p.after, c.describeAll(ids))
	}
	c.propose(lead, "probe")
	c.stabilize()
	c.tick([]uint64{lead}, 1)
	c.stabilize()
	want := c.appliedCmds(lead)
	for _, id := range ids {
		got := c.appliedCmds(id)
		if !slices.Equal(got, want) {
			t.Errorf("after %s: node %d applied %v, leader %d %v", p.after, id, got, lead, want)
		}
		seen := map[string]bool{}
		for _, cmd := range got {
			if seen[cmd] {
				t.Errorf("after %s: node %d applied %q twice: %v", p.after, id, cmd, got)
			}
			seen[cmd] = true
		}
		for _, cmd := range p.acked {
			if !seen[cmd] {
				t.Errorf("after %s: node %d lost acknowledged %q: applied %v", p.after, id, cmd, got)
			}
		}
		if got[len(got)-1] != "probe" {
			t.Errorf("after %s: node %d: last applied %q, want the probe", p.after, id, strings.Join(got, " "))
		}
	}
	for _, id := range ids {
		if err := c.stop(id); err != nil {
			t.Errorf("after %s: node %d: %v", p.after, id, err)
		}
	}
}
