package replica

import (
	"fmt"
	"testing"
)

// A Ready that needs no fsync (one that only applies committed entries
// or moves the commit index) is committed by the loop itself: handing it
// to the writer goroutine and back costs two goroutine wake-ups and saves
// nothing, since no disk wait is overlapped. Only synced batches go to the
// writer, and the state is the same on every replica.
func TestOnlySyncedReadiesHandedToWriter(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	const n = 20
	var last uint64
	for i := range n {
		last = c.propose(lead, fmt.Sprintf("cmd-%d", i))
	}
	c.waitApplied(c.ids, last)
	for _, id := range c.ids {
		st := c.rep(id).Stats()
		if st.Readies <= st.Syncs {
			t.Errorf("node %d: %d Readies, %d synced: want some without fsync", id, st.Readies, st.Syncs)
		}
		if st.Handoffs != st.Syncs {
			t.Errorf("node %d: %d batches handed to the writer, %d synced (of %d Readies): want only the synced ones", id, st.Handoffs, st.Syncs, st.Readies)
		}
	}
	c.checkSameData(t, c.data(lead), "after the proposals", n)
}
