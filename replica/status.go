package replica

import (
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
)

// Status is a point-in-time view of a replica.
type Status struct {
	ID         uint64
	Role       string // "leader", "follower", "candidate", "pre-candidate" or "learner"
	Term       uint64
	Leader     uint64 // 0 if unknown
	Commit     uint64
	Applied    uint64
	FirstIndex uint64   // first index still in the local log
	LastIndex  uint64   // last index in the local log
	Members    []Member // sorted by id; Match set on the leader only
	Snapshots  int      // outgoing snapshot streams in flight
	// Idle says the replica ticks every Config.IdleTickInterval: its
	// group has been quiet (idle.go).
	Idle bool
}

// Stats are cumulative counters of a replica's loop, for metrics.
type Stats struct {
	Readies  uint64        // Ready batches handled
	Syncs    uint64        // Ready batches committed with fsync
	SyncTime time.Duration // total time of the synced commits
	// LogSyncTime is the part of SyncTime spent writing the entries to
	// the log and syncing it; the rest committed the batch (HardState and
	// applied state) after it.
	LogSyncTime time.Duration
	// Handoffs counts the Ready batches the loop handed to the writer
	// goroutine (only synced ones, under load); the others were committed
	// by the loop itself.
	Handoffs uint64
	// SyncBuckets counts the synced commits by duration: entry i those
	// that took at most SyncBounds[i] (and more than the bound before),
	// the last entry those that took longer than every bound.
	SyncBuckets []uint64
	Appended    uint64 // log entries written
	Applied     uint64 // committed entries applied (all types)
	ReadRounds  uint64 // ReadIndex rounds issued
	LeaseReads  uint64 // reads a leader served on its lease, without a round
	// Proposals counts this node's own proposals answered with their
	// result. For them, Queued sums the time from the proposal to the
	// Ready that carried its entry (waiting for the write in flight), and
	// Replicated the time from there to the answer (replication to a
	// quorum, the commit and the apply).
	Proposals          uint64
	Queued, Replicated time.Duration
	// Sent counts the raft messages this node's Readies handed to the
	// transport (snapshots apart); Superseded the appends and
	// acknowledgements left out because a later message made them
	// redundant: one of the same Ready (dropSuperseded), or, for a notice
	// a leader held back, a later Ready's append (holdNotices).
	Sent, Superseded uint64
	// RefusedVotes counts vote requests left unanswered because this
	// member restarted less than an election timeout before (lease.go).
	RefusedVotes uint64
	// Foreign counts raft frames and snapshot streams dropped because they
	// named another group (or an earlier epoch of this one).
	Foreign uint64
	// BadCommit counts heartbeats dropped because they declared a commit
	// index beyond this node's log (raft would panic on them).
	BadCommit uint64
	// Invalid counts raft frames dropped before raft saw them because
	// they cannot come from an honest peer (validateMessage): a local or
	// unused type, another addressee, a sender outside the group, a term
	// or index beyond MaxTerm or MaxIndex, entries that do not follow.
	Invalid uint64
	// Ticks counts raft ticks; Wakes counts the times the replica left
	// idle ticking (Status.Idle) because something happened.
	Ticks, Wakes uint64
}

// loopStats are the loop's counters; written by the loop goroutine (and
// logSyncNanos by whichever goroutine writes the Ready in flight), read
// by Stats from any goroutine.
type loopStats struct {
	readies, syncs, syncNanos, appended, applied, readRounds atomic.Uint64
	leaseReads, refusedVotes                                 atomic.Uint64
	handoffs, logSyncNanos                                   atomic.Uint64
	proposals, queuedNanos, replicatedNanos                  atomic.Uint64
	sent, superseded                                         atomic.Uint64
	ticks, wakes                                             atomic.Uint64
	foreign, badCommit, invalid                              atomic.Uint64
	syncHist                                                 syncHist
}

// publishStatus publishes the loop's state for Status, if it changed. The
// member list is recomputed when the configuration or the role changed,
// and otherwise at most once per tick: on the leader it carries each
// member's Match, which moves with every write, and building it on every
// Ready cost more than the rest of the status together.
func (r *Replica) publishStatus() {
	bs := r.rn.BasicStatus()
	prev := r.status.Load()
	st := &Status{
		ID:         r.cfg.ID,
		Term:       bs.GetTerm(),
		Leader:     bs.Lead,
		Commit:     bs.GetCommit(),
		Applied:    r.applied,
		FirstIndex: r.store.truncIndex + 1,
		LastIndex:  r.store.lastIndex,
		Snapshots:  len(r.inflight),
		Idle:       r.idle,
	}
	switch bs.RaftState {
	case raft.StateLeader:
		st.Role = "leader"
	case raft.StateCandidate:
		st.Role = "candidate"
	case raft.StatePreCandidate:
		st.Role = "pre-candidate"
	default:
		st.Role = "follower"
		if r.learner {
			st.Role = "learner"
		}
	}
	if prev == nil || r.membersDirty || r.membersTick != r.ticks || prev.Role != st.Role {
		st.Members = r.memberList(bs.RaftState == raft.StateLeader)
		r.membersDirty, r.membersTick = false, r.ticks
	} else {
		st.Members = prev.Members // never modified once published
		if st.sameScalars(prev) {
			return
		}
	}
	r.status.Store(st)
}

// sameScalars reports whether s and o agree on everything but Members.
func (s *Status) sameScalars(o *Status) bool {
	return s.ID == o.ID && s.Role == o.Role && s.Term == o.Term && s.Leader == o.Leader &&
		s.Commit == o.Commit && s.Applied == o.Applied && s.FirstIndex == o.FirstIndex &&
		s.LastIndex == o.LastIndex && s.Snapshots == o.Snapshots && s.Idle == o.Idle
}
