package replica

import (
	"fmt"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
)

// idleCluster is a 3-replica test cluster whose replicas tick every
// idleTick once quiet (10 ms otherwise; quiet after 1 s for followers,
// 2 s for the leader; idle elections after 2–4 s).
func idleCluster(t *testing.T) *testCluster {
	c := newTestCluster(t, 3)
	base := c.cfg
	c.cfg = func(id uint64) Config {
		cfg := base(id)
		cfg.IdleTickInterval = idleTick
		return cfg
	}
	return c
}

const idleTick = 40 * time.Millisecond

// waitIdle waits until every replica in ids has ticked slowly for a whole
// second: it stayed idle, did not wake, and ticked at most what idleTick
// allows (with room for one late tick). The group may be woken by a
// starved process's election timeout; then a later second counts.
func waitIdle(t *testing.T, c *testCluster, ids []uint64) {
	t.Helper()
	eventually.Holds(t, 30*time.Second, fmt.Sprintf("replicas %v tick slowly for a second", ids), func() error {
		before := make(map[uint64]Stats)
		for _, id := range ids {
			if !c.rep(id).Status().Idle {
				return fmt.Errorf("replica %d is not idle", id)
			}
			before[id] = c.rep(id).Stats()
		}
		const window = time.Second
		time.Sleep(window)
		for _, id := range ids {
			st, now := c.rep(id).Status(), c.rep(id).Stats()
			ticks, wakes := now.Ticks-before[id].Ticks, now.Wakes-before[id].Wakes
			if !st.Idle || wakes > 0 {
				return fmt.Errorf("replica %d woke (%d times) during the second", id, wakes)
			}
			if most := uint64(window/idleTick) + 2; ticks > most {
				return fmt.Errorf("replica %d ticked %d times in %v, idle at most %d", id, ticks, window, most)
			}
		}
		return nil
	})
}

// TestIdleGroupTicksSlowly checks that a quiet group's replicas tick at
// IdleTickInterval, that a proposal is served as before and the group
// goes quiet again after it, and that Wake brings the fast ticks back.
func TestIdleGroupTicksSlowly(t *testing.T) {
	c := idleCluster(t)
	c.startAll()
	lead := c.waitLeader()
	for i := range 5 {
		c.propose(lead, fmt.Sprintf("before-%d", i))
	}
	waitIdle(t, c, c.ids)

	wakes := c.rep(lead).Stats().Wakes
	last := c.propose(lead, "while idle")
	if got := c.rep(lead).Stats().Wakes; got == wakes {
		t.Fatalf("the idle leader served a proposal without waking (wakes %d)", got)
	}
	c.waitApplied(c.ids, last)
	waitIdle(t, c, c.ids)

	f := others(c.ids, lead)[0]
	wakes = c.rep(f).Stats().Wakes
	c.rep(f).Wake()
	waitFor(t, 10*time.Second, "the follower woken by Wake", func() bool { return c.rep(f).Stats().Wakes > wakes })
	waitIdle(t, c, c.ids)
	if l := c.waitLeader(); l != lead {
		t.Fatalf("leader changed from %d to %d while the group was idle or woken", lead, l)
	}
}

// TestIdleGroupElectsWhenLeaderStops stops the leader of an idle group:
// the followers, ticking slowly and woken by nothing (no gossip here),
// elect a new leader after their idle election timeout, which then
// commits.
func TestIdleGroupElectsWhenLeaderStops(t *testing.T) {
	c := idleCluster(t)
	c.startAll()
	old := c.waitLeader()
	first := c.propose(old, "before")
	c.waitApplied(c.ids, first)
	waitIdle(t, c, c.ids)

	c.stop(old)
	rest := others(c.ids, old)
	lead := c.waitLeader(rest...)
	last := c.propose(lead, "after")
	c.waitApplied(rest, last)

	c.start(old)
	c.waitApplied(c.ids, last)
	c.checkSameData(t, c.data(lead), "after the idle failover", 2)
	waitIdle(t, c, c.ids)
}
