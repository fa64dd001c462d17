package replica

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// A Ready that needs no fsync (one that only applies committed entries
// or moves the commit index) is committed by the loop itself: handing it
// to the writer goroutine and back costs two goroutine wake-ups and saves
// nothing, since no disk wait is overlapped. A synced one is written in
// place too while the load is light: one proposal at a time leaves the
// loop nothing to fold in while the disk works. Only synced batches ever
// go to the writer, and the state is the same on every replica.
func TestLightLoadWritesInPlace(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	const n = 20
	var last uint64
	for i := range n {
		last = c.propose(lead, fmt.Sprintf("cmd-%d", i))
	}
	c.waitApplied(c.ids, last)
	checkProposalStats(t, c.rep(lead).Stats(), Stats{}, n)
	for _, id := range c.ids {
		st := c.rep(id).Stats()
		if st.Readies <= st.Syncs {
			t.Errorf("node %d: %d Readies, %d synced: want some without fsync", id, st.Readies, st.Syncs)
		}
		if st.Handoffs >= st.Syncs {
			t.Errorf("node %d: %d batches handed to the writer, %d synced (of %d Readies): want some synced ones written in place", id, st.Handoffs, st.Syncs, st.Readies)
		}
	}
	c.checkSameData(t, c.data(lead), "after the proposals", n)
}

// Under load the writer takes the synced batches: the loop keeps folding
// the proposals that arrive while the disk works, and they share the next
// fsync.
func TestHeavyLoadHandsWritesToWriter(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	const clients, each = 64, 10
	r := c.rep(lead)
	before := r.Stats()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			for j := range each {
				if _, _, err := r.Propose(ctx, fmt.Appendf(nil, "cmd-%d-%d", i, j)); err != nil {
					errs <- fmt.Errorf("client %d, proposal %d: %w", i, j, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := r.Stats()
	syncs, handoffs := st.Syncs-before.Syncs, st.Handoffs-before.Handoffs
	if handoffs == 0 || handoffs > syncs {
		t.Errorf("leader %d: %d of %d synced batches handed to the writer under %d concurrent proposers: want some, and only synced ones", lead, handoffs, syncs, clients)
	}
	checkProposalStats(t, st, before, clients*each)
	c.waitApplied(c.ids, r.Status().Applied)
	c.checkSameData(t, c.data(lead), "after the proposals", clients*each)
}

// checkProposalStats checks what a leader's Stats tell of the n
// proposals answered between before and st: each counted once, with the
// time each waited and was replicated, and the log's share of the synced
// commits.
func checkProposalStats(t *testing.T, st, before Stats, n int) {
	t.Helper()
	if got := st.Proposals - before.Proposals; got != uint64(n) {
		t.Errorf("leader counted %d answered proposals, want %d", got, n)
	}
	if st.Queued <= before.Queued || st.Replicated <= before.Replicated {
		t.Errorf("proposal times queued %v → %v, replicated %v → %v: want both to grow", before.Queued, st.Queued, before.Replicated, st.Replicated)
	}
	if st.LogSyncTime <= before.LogSyncTime || st.LogSyncTime > st.SyncTime {
		t.Errorf("log write and sync time %v (before %v), synced commits %v: want it to grow and be part of the synced commits' time", st.LogSyncTime, before.LogSyncTime, st.SyncTime)
	}
}
