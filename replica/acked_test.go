package replica

import (
	"fmt"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
)

// ackedBy returns the ids node id's status marks Acked.
func ackedBy(r *Replica) map[uint64]bool {
	out := map[uint64]bool{}
	for _, m := range r.Status().Members {
		if m.Acked {
			out[m.ID] = true
		}
	}
	return out
}

// Members mark the others they saw act on durable raft state (the leader
// its followers' answers, the followers their leader), and a mark
// outlives a restart with no peer to renew it: a follower restarted alone
// still says the members it saw acted.
func TestMembersSeenActingAreMarked(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	var last uint64
	for i := range 3 {
		last = c.propose(lead, fmt.Sprintf("cmd-%d", i))
	}
	c.waitApplied(c.ids, last)
	eventually.Holds(t, 10*time.Second, "the leader marks its followers, each follower its leader", func() error {
		for _, id := range c.ids {
			got := ackedBy(c.rep(id))
			want := []uint64{lead}
			if id == lead {
				want = others(c.ids, lead)
			}
			for _, w := range want {
				if !got[w] {
					return fmt.Errorf("node %d marks %v, not %d", id, got, w)
				}
			}
			if got[id] {
				return fmt.Errorf("node %d marks itself", id)
			}
		}
		return nil
	})
	f := others(c.ids, lead)[0]
	for _, id := range c.ids {
		c.stop(id)
	}
	c.start(f)
	if got := ackedBy(c.rep(f)); !got[lead] {
		t.Fatalf("follower %d restarted alone marks %v; want its leader %d among them", f, got, lead)
	}
}
