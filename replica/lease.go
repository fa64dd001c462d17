package replica

import (
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// A leader serves a linearizable read without a ReadIndex round while it
// holds a read lease: a time before which no other member can become
// leader. It is the raft thesis's lease-based read (§6.4.1), earned from
// the heartbeats of ReadIndex rounds, and kept by the local monotonic
// clock alone (the monotonic reading of Go's time.Time, which a
// wall-clock jump does not move and a process pause moves forward).
//
// How it is earned: every other member, voter or learner, answered in
// this leader's term a heartbeat of a read round (one that carries a
// context), first sent at time t. A member answers only in this term, so
// no other leader had been elected; it resets its election timer on that
// heartbeat, so it can neither stand for election nor (CheckQuorum's
// rule) vote for anyone for ElectionTicks ticks of its own ticker; a
// ticker never runs faster than time and one stale tick may already be
// queued, so that lasts at least (ElectionTicks-2)·TickInterval after t.
// A member that restarts meanwhile starts its timer from zero and refuses
// votes for as long (refusesVotes). The lease runs for leaseSpan, half a
// tick short of that, from the oldest of those answers' t.
//
// What it assumes, and what is checked instead: every member runs with the
// same TickInterval and ElectionTicks (cleave's nodes share one config);
// nothing forces an election (cleave never transfers leadership, and
// validateMessage drops MsgTimeoutNow). A conf change ends the lease (new
// members must answer too), none is earned while one is pending, and a
// leader that removed a member earns none again in its term: the removed
// member may not know and may stand for election.
//
// A read on lease takes raft's commit index as its read index and waits,
// as a round's reads do, until it is applied. Raft reports that index as
// this leader's, and no other leader exists before the lease ends, so it
// covers every write acknowledged before the read arrived: raft gives a
// round's heartbeats a context only once the leader has committed an
// entry of its term, so that index covers every earlier leader's
// commits too. Reads renew the lease
// before it runs out (renewLease), so a steady load seldom waits for a
// round.

// leaseContexts is how many recent heartbeat contexts a leader keeps the
// send time of: more than can be in flight at once.
const leaseContexts = 16

// readLease is a leader's read lease. Owned by the loop goroutine.
type readLease struct {
	term   uint64               // the term of every time in acked
	acked  map[uint64]time.Time // member → send time of the newest round heartbeat it answered in term
	barred uint64               // a term in which no lease is earned (a member was removed)
	sent   [leaseContexts]sentContext
	next   int // the slot of sent the next new context takes
}

// sentContext is a heartbeat context raft attached to a read round's
// heartbeats, and the time the loop first saw one go out: no heartbeat
// with that context left earlier, so a member that answered one received
// it no earlier.
type sentContext struct {
	ctx  string
	term uint64
	at   time.Time
}

// leaseSpan is how long a member's answer keeps the lease, from the send
// of the heartbeat it answered: (ElectionTicks-2.5)·TickInterval; 0 (no
// lease) if the replica is driven by hand (its ticks follow no clock),
// leases are turned off, or ElectionTicks is below 3.
func (r *Replica) leaseSpan() time.Duration {
	if r.hand != nil || r.cfg.NoReadLease || r.cfg.ElectionTicks < 3 {
		return 0
	}
	return time.Duration(r.cfg.ElectionTicks-2)*r.cfg.TickInterval - r.cfg.TickInterval/2
}

// noteHeartbeats records when the heartbeats of a read round (those with
// a context) in msgs, about to be sent, first went out.
func (r *Replica) noteHeartbeats(leading bool, msgs []*pb.Message) {
	if !leading || r.leaseSpan() == 0 {
		return
	}
	var now time.Time
	var term uint64
	for _, m := range msgs {
		if m.GetType() != pb.MsgHeartbeat || len(m.GetContext()) == 0 {
			continue
		}
		if now.IsZero() { // the first heartbeat of a round in this Ready
			now, term = r.now(), r.rn.BasicStatus().GetTerm()
		}
		if r.sentAt(term, m.GetContext()) != nil {
			continue
		}
		r.lease.sent[r.lease.next] = sentContext{ctx: string(m.GetContext()), term: term, at: now}
		r.lease.next = (r.lease.next + 1) % leaseContexts
	}
}

// sentAt returns the record of context ctx sent in term, or nil.
func (r *Replica) sentAt(term uint64, ctx []byte) *sentContext {
	for i := range r.lease.sent {
		if s := &r.lease.sent[i]; s.term == term && s.ctx == string(ctx) {
			return s
		}
	}
	return nil
}

// noteLeaseAck counts a member's answer to a read round's heartbeat
// toward this leader's lease in m's term.
func (r *Replica) noteLeaseAck(m *pb.Message) {
	if m.GetType() != pb.MsgHeartbeatResp || len(m.GetContext()) == 0 || r.leaseSpan() == 0 {
		return
	}
	bs := r.rn.BasicStatus()
	if bs.RaftState != raft.StateLeader || m.GetTerm() != bs.GetTerm() || !r.members[m.GetFrom()] {
		return
	}
	s := r.sentAt(bs.GetTerm(), m.GetContext())
	if s == nil {
		return // sent too long ago to remember: no help to a lease anyway
	}
	if r.lease.term != bs.GetTerm() || r.lease.acked == nil {
		r.lease.term, r.lease.acked = bs.GetTerm(), make(map[uint64]time.Time)
	}
	if s.at.After(r.lease.acked[m.GetFrom()]) {
		r.lease.acked[m.GetFrom()] = s.at
	}
}

// leaseStart returns the send time of the oldest answer the lease rests
// on, and whether this leader may earn or hold a lease at all now: it
// leads in the lease's term, which no removal barred, no conf change is
// pending, no transfer is under way, and every other member answered.
func (r *Replica) leaseStart() (time.Time, bool) {
	bs := r.rn.BasicStatus()
	if bs.RaftState != raft.StateLeader || bs.GetTerm() != r.lease.term || bs.GetTerm() == r.lease.barred ||
		bs.LeadTransferee != raft.None || r.lastConfIndex > r.applied {
		return time.Time{}, false
	}
	var oldest time.Time
	for id := range r.members {
		if id == r.cfg.ID {
			continue
		}
		at, ok := r.lease.acked[id]
		if !ok {
			return time.Time{}, false
		}
		if oldest.IsZero() || at.Before(oldest) {
			oldest = at
		}
	}
	return oldest, true
}

// leaseHeld reports whether this leader holds a read lease at now.
func (r *Replica) leaseHeld(now time.Time) bool {
	span := r.leaseSpan()
	if span == 0 {
		return false
	}
	start, ok := r.leaseStart()
	return ok && now.Sub(start) < span
}

// renewLease issues a round with no reads of its own when the lease held
// at now is past half its span and no round is in flight, so that a
// steady stream of reads finds it renewed before it runs out.
func (r *Replica) renewLease(now time.Time) {
	if len(r.reads.reqs) > 0 {
		return
	}
	if start, ok := r.leaseStart(); ok && now.Sub(start) >= r.leaseSpan()/2 {
		rr := &readRound{}
		r.reads.reqs = append(r.reads.reqs, rr)
		r.issueRead(rr)
	}
}

// dropLease ends the lease after a conf change applied; a removal bars
// leases for the rest of the term.
func (r *Replica) dropLease(removed bool) {
	if removed {
		r.lease.barred = r.rn.BasicStatus().GetTerm()
	}
	r.lease.term, r.lease.acked = 0, nil
}

// refusesVotes reports whether m is a vote request this member must not
// answer yet: it restarted less than an election timeout ago, so it may
// have answered a leader's lease round just before, which a vote now
// would break. A new group's members (bootstrapped or forked, still in
// term 1) answered no one, and vote at once; a member that joins empty
// (Config.Join) may have been a voter whose disk was lost, and waits.
func (r *Replica) refusesVotes(m *pb.Message) bool {
	switch m.GetType() {
	case pb.MsgVote, pb.MsgPreVote:
	default:
		return false
	}
	return r.leaseSpan() > 0 && !r.fresh && r.ticks < r.cfg.ElectionTicks
}
