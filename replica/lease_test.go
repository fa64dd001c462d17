package replica

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// readOn reads on replica id through ReadIndex and returns its data.
func (c *testCluster) readOn(id uint64) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.rep(id).ReadIndex(ctx); err != nil {
		c.t.Fatalf("ReadIndex on %d: %v", id, err)
	}
	return c.data(id)
}

// writeThenRead proposes n commands on the leader, each followed by a
// read on reader that must see it.
func (c *testCluster) writeThenRead(lead, reader uint64, prefix string, n int) {
	c.t.Helper()
	for i := range n {
		cmd := fmt.Sprintf("%s-%d", prefix, i)
		c.propose(lead, cmd)
		if !strings.Contains(c.readOn(reader), cmd+"\n") {
			c.t.Fatalf("read %d on %d does not see %q, acknowledged before it", i, reader, cmd)
		}
	}
}

// A leader that every member answered serves reads on its lease, without
// a round, and each read sees the writes acknowledged before it; a
// follower's reads still take rounds.
func TestLeaderReadsOnLease(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	c.writeThenRead(lead, lead, "lead", 20)
	st := c.rep(lead).Stats()
	if st.LeaseReads == 0 || st.ReadRounds >= 20 {
		t.Fatalf("leader: %d reads on lease, %d rounds for 20 reads; want reads on lease and fewer rounds", st.LeaseReads, st.ReadRounds)
	}
	f := others(c.ids, lead)[0]
	c.writeThenRead(lead, f, "follower", 5)
	if st := c.rep(f).Stats(); st.LeaseReads != 0 || st.ReadRounds < 5 {
		t.Fatalf("follower: %d reads on lease, %d rounds for 5 reads; want none on lease", st.LeaseReads, st.ReadRounds)
	}
}

// A lease needs every member's answer: with one follower's heartbeat
// answers lost, the leader reads through rounds, on the quorum that is left.
func TestLeaseNeedsEveryMember(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	mute := others(c.ids, lead)[0]
	c.net.setDrop(func(from, to uint64, m *pb.Message) bool {
		return from == mute && m.GetType() == pb.MsgHeartbeatResp
	})
	c.writeThenRead(lead, lead, "w", 10)
	if st := c.rep(lead).Stats(); st.LeaseReads != 0 || st.ReadRounds < 10 {
		t.Fatalf("%d reads on lease, %d rounds for 10 reads with member %d silent; want every read in a round", st.LeaseReads, st.ReadRounds, mute)
	}
}

// fakeClock is time.Now moved forward by a settable offset: a process
// paused for that long, as the monotonic clock sees it.
type fakeClock struct{ offset atomic.Int64 }

func (f *fakeClock) now() time.Time { return time.Now().Add(time.Duration(f.offset.Load())) }

// A leader whose clock moved on by a lease span (a pause: SIGSTOP, a
// stalled VM) holds no lease when it runs again: its next read takes a
// round.
func TestLeaseEndsWhenItsClockMovesOn(t *testing.T) {
	c := newTestCluster(t, 3)
	clock := &fakeClock{}
	base := c.cfg
	c.cfg = func(id uint64) Config {
		cfg := base(id)
		cfg.clock = clock.now
		return cfg
	}
	c.startAll()
	lead := c.waitLeader()
	c.writeThenRead(lead, lead, "before", 5)
	before := c.rep(lead).Stats()
	if before.LeaseReads == 0 {
		t.Fatalf("no read on lease before the pause (%d rounds)", before.ReadRounds)
	}
	clock.offset.Add(int64(c.rep(lead).leaseSpan()))
	c.writeThenRead(lead, lead, "after", 1)
	after := c.rep(lead).Stats()
	if after.LeaseReads != before.LeaseReads || after.ReadRounds == before.ReadRounds {
		t.Fatalf("after the pause: reads on lease %d → %d, rounds %d → %d; want the read in a round", before.LeaseReads, after.LeaseReads, before.ReadRounds, after.ReadRounds)
	}
}

// A leader cut off from its group after reading on its lease serves no
// stale read once the others have elected a new leader and acknowledged
// a write: by then its lease has run out, and a round cannot finish.
func TestIsolatedLeaderServesNoStaleRead(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	old := c.waitLeader()
	c.writeThenRead(old, old, "before", 5)
	if st := c.rep(old).Stats(); st.LeaseReads == 0 {
		t.Fatalf("no read on lease before the partition (%d rounds)", st.ReadRounds)
	}
	c.net.partition(old)
	rest := others(c.ids, old)
	lead := c.waitLeader(rest...)
	c.propose(lead, "after")

	type answer struct {
		data string
		err  error
	}
	got := make(chan answer, 1)
	db := c.db(old)
	if !c.rep(old).ReadIndexFunc(func(_ *ReadScope, err error) {
		v, cl, gerr := db.Get(smDataKey)
		if gerr == nil {
			defer cl.Close()
		}
		got <- answer{string(v), errors.Join(err, gerr)}
	}) {
		t.Fatal("read not queued on the old leader")
	}
	select {
	case a := <-got:
		if a.err == nil && !strings.Contains(a.data, "after\n") {
			t.Fatalf("the isolated old leader served a stale read: %q lacks the write the new leader acknowledged", a.data)
		}
		t.Logf("the old leader answered %v", a.err)
	case <-time.After(time.Second): // a bounded wait for a non-event
		t.Logf("the old leader did not answer within a second")
	}
}

// A member that restarts refuses vote requests for an election timeout:
// it may have answered a leader's lease round just before. A new group's
// member (term 1) answered no leader and votes at once.
func TestRestartedMemberRefusesVotes(t *testing.T) {
	vote := func(from, to, term uint64) *pb.Message {
		return &pb.Message{Type: pb.MsgVote.Enum(), From: new(from), To: new(to), Term: new(term), LogTerm: new(uint64(1)), Index: new(uint64(1))}
	}

	fresh := newTestCluster(t, 3)
	fresh.startAll()
	fresh.rep(1).Step(fresh.rep(1).Group(), vote(2, 1, 50))
	waitFor(t, 10*time.Second, "the new member to take the vote's term", func() bool { return fresh.rep(1).Status().Term >= 50 })
	if n := fresh.rep(1).Stats().RefusedVotes; n != 0 {
		t.Fatalf("a new group's member refused %d vote requests", n)
	}

	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	c.propose(lead, "x")
	f := others(c.ids, lead)[0]
	c.stop(f)
	c.start(f)
	c.rep(f).Step(c.rep(f).Group(), vote(lead, f, 50))
	waitFor(t, 10*time.Second, "the restarted member to refuse the vote", func() bool { return c.rep(f).Stats().RefusedVotes > 0 })
	if term := c.rep(f).Status().Term; term >= 50 {
		t.Fatalf("the restarted member took the refused vote's term %d", term)
	}
}
