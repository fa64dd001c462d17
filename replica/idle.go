package replica

import (
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// A group with nothing to do ticks slowly. Every tick, and every heartbeat
// it sends, wakes an idle process, and each wake-up costs a Go process
// more in its scheduler than in the work; a deployment of many clusters
// pays it on every node. So a replica whose group has been quiet for a
// while ticks every Config.IdleTickInterval instead of every TickInterval,
// and any activity brings the fast ticks back. Nothing else changes: raft
// counts heartbeats and election timeouts in ticks, so an idle group
// heartbeats and times out IdleTickInterval/TickInterval times slower, and
// safety never depended on time.
//
// The one rule that keeps an idle group from electing in vain: a follower
// never ticks faster than its leader heartbeats. So followers slow down
// first (quiet for followerQuietTicks election timeouts) and the leader
// only later (leaderQuietTicks), and a follower that still ticks fast when
// the leader has slowed down (it restarted, or was woken) campaigns, which
// wakes the leader: its pre-vote finds the leader and the other follower
// within their lease, and the leader, woken by the message, heartbeats
// fast again until the group is quiet once more.
//
// What is activity: for a leader, proposals, reads, membership changes,
// snapshots, sending appends, and any message from a peer but a heartbeat
// answer or an accepted append's; for a follower, any message but a
// heartbeat, and its own proposals and reads. Wake (the node calls it when
// gossip reports a member of the group dead) counts too, so an idle group
// whose leader died elects within the usual timeout once gossip notices.
const (
	followerQuietTicks = 2 // election timeouts of quiet before a follower slows down
	leaderQuietTicks   = 4 // the same for a leader: later than every follower
)

// Wake ends idle ticking: the replica ticks every TickInterval again until
// its group has been quiet once more. Safe from any goroutine; it never
// blocks.
func (r *Replica) Wake() {
	select {
	case r.wakec <- struct{}{}:
	default:
	}
}

// noteActivity restarts the quiet count and, if the replica ticks slowly,
// brings the fast ticks back. Loop goroutine.
func (r *Replica) noteActivity() {
	r.quiet = 0
	if r.idle {
		r.idle = false
		r.ticker.Reset(r.cfg.TickInterval)
		r.stats.wakes.Add(1)
	}
}

// noteMessage counts a peer's message as activity unless it is a
// heartbeat, a heartbeat's answer or an accepted append's.
func (r *Replica) noteMessage(m *pb.Message) {
	switch m.GetType() {
	case pb.MsgHeartbeat, pb.MsgHeartbeatResp:
		return
	case pb.MsgAppResp:
		if !m.GetReject() {
			return
		}
	}
	r.noteActivity()
}

// noteSent counts appends and snapshots a leader sends as activity: its
// followers count receiving them, so the leader's quiet count starts no
// earlier than theirs.
func (r *Replica) noteSent(leading bool, msgs []*pb.Message) {
	if !leading || r.quiet == 0 {
		return
	}
	for _, m := range msgs {
		if t := m.GetType(); t == pb.MsgApp || t == pb.MsgSnap {
			r.noteActivity()
			return
		}
	}
}

// maybeIdle, on each fast tick, slows the ticks down once the group has
// been quiet long enough and nothing is pending here.
func (r *Replica) maybeIdle() {
	if r.idle || r.ticker == nil || r.cfg.IdleTickInterval <= 0 {
		return
	}
	r.quiet++
	bs := r.rn.BasicStatus()
	need := followerQuietTicks * r.cfg.ElectionTicks
	switch {
	case bs.RaftState == raft.StateLeader:
		need = leaderQuietTicks * r.cfg.ElectionTicks
	case bs.RaftState != raft.StateFollower || bs.Lead == raft.None:
		r.quiet = 0
		return
	}
	if r.quiet < need || r.busy() {
		return
	}
	if bs.RaftState == raft.StateLeader && !r.settled() {
		return
	}
	r.idle = true
	r.ticker.Reset(r.cfg.IdleTickInterval)
}

// busy reports whether anything waits on this replica: proposals, reads,
// a membership change, a write, snapshots in either direction.
func (r *Replica) busy() bool {
	r.recvMu.Lock()
	receiving := r.recv != nil
	r.recvMu.Unlock()
	return receiving || r.writing != nil || len(r.props.buf)+len(r.props.unlanded)+len(r.props.landed) > 0 ||
		len(r.reads.buf) > 0 || len(r.reads.reqs) > 0 || len(r.reads.wait) > 0 ||
		r.confStepped != nil || r.pendingRestore != nil || len(r.inflight) > 0
}

// settled reports whether a leader has nothing left to replicate: every
// entry committed and applied here, and every member, learners too,
// holding the whole log with appends flowing (a follower that still
// needs entries would be sent them, which is activity anyway).
func (r *Replica) settled() bool {
	st := r.rn.Status()
	if st.LeadTransferee != raft.None || st.GetCommit() != r.store.lastIndex || r.applied != st.GetCommit() {
		return false
	}
	for id, pr := range st.Progress {
		if id != r.cfg.ID && (pr.Match != r.store.lastIndex || pr.State != tracker.StateReplicate) {
			return false
		}
	}
	return true
}
