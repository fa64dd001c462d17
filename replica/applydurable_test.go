package replica

import (
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestDurableEntriesAnsweredBeforeNextSync: when the acknowledgements that
// commit a leader's entries reach it together with new proposals, the
// committed entries are applied and answered in a batch of their own,
// before the batch that appends the new ones is written and synced; a
// power cut right after that apply batch reached the disk (and before the
// append) restarts with nothing acknowledged lost or applied twice.
func TestDurableEntriesAnsweredBeforeNextSync(t *testing.T) {
	c := newHandCluster(t)
	var (
		watch   bool
		applied []string // leader's commands answered when its append batch was committed
		early   []crashPoint
	)
	c.afterApply = func(id uint64) {
		if !watch || id != 1 {
			return
		}
		// As if the OS wrote the unsynced apply batch out before the
		// power cut: flush it to a table, then keep only synced data.
		if err := c.nodes[1].db.Flush(); err != nil {
			t.Errorf("flush: %v", err)
		}
		p := crashPoint{after: "the leader's early apply batch", disks: map[uint64]*vfs.MemFS{}}
		for _, nid := range c.ids() {
			p.disks[nid] = c.nodes[nid].fs.CrashClone(vfs.CrashCloneCfg{})
		}
		p.acked = append(ackedSoFar(c), "a1", "a2") // answered right after this hook
		early = append(early, p)
	}
	c.afterReady = func(id uint64) {
		if watch && id == 1 && applied == nil {
			applied = append([]string{}, ackedSoFar(c)...)
		}
	}
	c.addNodes([]uint64{1, 2, 3}, false)
	c.campaign(1)
	c.stabilize()

	c.propose(1, "a1", "a2")
	c.deliver(2)
	c.deliver(3)
	// The followers' acknowledgements and a new proposal reach the leader
	// in one iteration: its Ready commits a1 and a2 and appends b1.
	c.net.mu.Lock()
	var acks []handMsg
	c.net.msgs = slices.DeleteFunc(c.net.msgs, func(m handMsg) bool {
		if m.m.GetTo() == 1 {
			acks = append(acks, m)
			return true
		}
		return false
	})
	c.net.mu.Unlock()
	if len(acks) != 2 {
		t.Fatalf("want the two followers' acknowledgements queued for the leader, got %d messages", len(acks))
	}
	r := c.rep(1)
	watch = true
	hp := &handProp{node: 1, cmd: "b1", p: newHandProposal(r, "b1")}
	c.props = append(c.props, hp)
	c.do(1, func() {
		for _, m := range acks {
			r.Step(m.g, m.m)
		}
		r.propc <- hp.p
	})
	watch = false
	if len(early) != 1 {
		t.Fatalf("the leader applied a1 and a2 ahead of its append %d times, want once", len(early))
	}
	if !slices.Contains(applied, "a1") || !slices.Contains(applied, "a2") || slices.Contains(applied, "b1") {
		t.Fatalf("when the batch appending b1 was written, the answered commands were %v: want a1 and a2 answered before it, b1 not", applied)
	}
	c.stabilize()
	c.tick([]uint64{1}, 1)
	c.stabilize()
	if got := ackedSoFar(c); !slices.Equal(got, []string{"a1", "a2", "b1"}) {
		t.Fatalf("acknowledged %v, want a1 a2 b1", got)
	}
	checkCrashPoint(t, early[0])
}
