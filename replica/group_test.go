package replica

import (
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Frames that name another group, or an earlier epoch of this one, never
// reach raft: a heartbeat of a higher term from a member's raft id does not
// move the follower's term. A heartbeat of this group that commits beyond
// the follower's log is dropped too, instead of making raft panic.
func TestForeignAndBeyondLogFramesDropped(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	idx := c.propose(lead, "a")
	c.waitApplied(c.ids, idx)
	f := others(c.ids, lead)[0]
	r := c.rep(f)
	own := r.Group()
	if own.IsZero() || own.Epoch != 1 {
		t.Fatalf("bootstrapped group %v, want epoch 1", own)
	}
	term := r.Status().Term
	hb := func(commit uint64, term uint64) *pb.Message {
		return &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: new(lead), To: new(f), Term: new(term), Commit: new(commit)}
	}
	for _, g := range []Group{{Name: "other", Epoch: 1}, {Name: own.Name, Epoch: 2}, {Name: own.Name, Epoch: 0}} {
		r.Step(g, hb(1, term+5))
	}
	r.Step(own, hb(r.Status().LastIndex+1000, r.Status().Term))
	waitFor(t, 5*time.Second, "the frames counted", func() bool {
		s := r.Stats()
		return s.Foreign == 3 && s.BadCommit == 1
	})
	if got := r.Status().Term; got != term {
		t.Fatalf("follower's term moved from %d to %d on foreign frames", term, got)
	}
	idx = c.propose(lead, "b")
	c.waitApplied(c.ids, idx)
	if err := r.Err(); err != nil {
		t.Fatalf("follower stopped: %v", err)
	}
}

// A node that joins empty takes the group of its leader's first frame and
// then drops frames of any other group; the snapshot records the group.
func TestJoinerAdoptsItsLeadersGroup(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	c.addJoiner(4)
	c.start(4)
	if g := c.rep(4).Group(); !g.IsZero() {
		t.Fatalf("empty joiner starts in group %v", g)
	}
	onLeader(c, "AddLearner", func(r *Replica) error { return r.AddLearner(t.Context(), 4, "addr-4") })
	idx := c.propose(c.waitLeader(c.ids...), "after-join")
	c.waitApplied(append(c.ids, 4), idx)
	want := c.rep(lead).Group()
	if g := c.rep(4).Group(); g != want {
		t.Fatalf("joiner's group %v, leader's %v", g, want)
	}
	c.stop(4)
	c.start(4)
	if g := c.rep(4).Group(); g != want {
		t.Fatalf("joiner's group after restart %v, want %v (recorded by the snapshot)", g, want)
	}
}

// A removed member's sender goroutine and queue are dropped; Close still
// returns once every sender has stopped.
func TestWireTransportForgetsRemovedPeer(t *testing.T) {
	tr := NewWireTransport(1, map[uint64]string{2: "127.0.0.1:1", 3: "127.0.0.1:1"}, nil, testLogger())
	tr.Forget(2)
	tr.Forget(2) // twice is harmless
	tr.mu.Lock()
	_, has2 := tr.peers[2]
	n := len(tr.peers)
	tr.mu.Unlock()
	if has2 || n != 1 {
		t.Fatalf("after Forget(2): peer 2 kept %v, %d peers", has2, n)
	}
	tr.Close()
}
