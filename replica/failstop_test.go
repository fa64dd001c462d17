package replica

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A replica whose state machine cannot apply an entry (a local read or
// decode fault) stops before anything of that Ready is committed: its
// applied index stays below the entry, the entry's effects are absent, and
// after a restart without the fault it applies the entry exactly once and
// ends with the same state as its peers.
func TestApplyFaultStopsReplicaBeforeCommit(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	c.propose(lead, "a")
	faulty := others(c.ids, lead)[0]
	prefix := "bad"
	c.sms[faulty].faultPrefix.Store(&prefix)

	idx := c.propose(lead, "bad-1") // a quorum without the faulty node applies it
	select {
	case <-c.rep(faulty).Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("node %d did not stop on the apply fault at %d", faulty, idx)
	}
	err := c.crashed(faulty)
	if !errors.Is(err, ErrApplyFault) {
		t.Fatalf("node %d stopped with %v, want ErrApplyFault", faulty, err)
	}
	if err := c.rep(lead).Err(); err != nil {
		t.Fatalf("leader %d: Err() = %v while running", lead, err)
	}

	// Nothing of the faulty entry's Ready was committed on the faulty node.
	c.start(faulty)
	c.sms[faulty].faultPrefix.Store(nil)
	c.waitApplied(c.ids, idx)
	c.propose(lead, "b")
	c.waitApplied(c.ids, idx+1)
	want := c.data(lead)
	for _, id := range c.ids {
		if got := c.data(id); got != want {
			t.Errorf("node %d holds %q, leader %q", id, got, want)
		}
		if got, wantN := c.count(id), c.count(lead); got != wantN {
			t.Errorf("node %d applied %d commands, leader %d", id, got, wantN)
		}
	}
}

// A proposal raft has taken when the replica stops may still commit (its
// entry is in the log, maybe on a quorum): the proposer learns that the
// outcome is unknown, never "not applied". A proposal made after the stop
// was not applied.
func TestStopWithProposalInFlightIsOutcomeUnknown(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	r := c.rep(lead)
	// A write through the new leader first: its own first entry may still
	// be in flight when every node knows it, and that entry landing in
	// the log must not pass for the proposal below.
	c.propose(lead, "before")
	last := r.Status().LastIndex
	c.net.partition(lead)
	errc := make(chan error, 1)
	go func() {
		_, _, err := r.Propose(context.Background(), []byte("in flight"))
		errc <- err
	}()
	waitFor(t, 5*time.Second, "the proposal in the leader's log", func() bool { return r.Status().LastIndex > last })
	c.stop(lead)
	if err := <-errc; !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("proposal in flight at stop: %v, want ErrOutcomeUnknown", err)
	}
	if _, _, err := r.Propose(context.Background(), []byte("after")); !errors.Is(err, ErrStopped) {
		t.Fatalf("proposal after stop: %v, want ErrStopped", err)
	}
}

// A proposer whose entry (or an entry before it in the same Ready) cannot
// be applied on the leader it proposed to learns that the outcome is
// unknown: the entry is committed in the group and will be applied, by the
// others now and by the leader after a restart.
func TestApplyFaultOnLeaderAnswersOutcomeUnknown(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	prefix := "bad"
	c.sms[lead].faultPrefix.Store(&prefix)
	_, _, err := c.rep(lead).Propose(context.Background(), []byte("bad-1"))
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("proposal the leader could not apply: %v, want ErrOutcomeUnknown", err)
	}
	if err := c.crashed(lead); !errors.Is(err, ErrApplyFault) {
		t.Fatalf("leader stopped with %v, want ErrApplyFault", err)
	}
}
