package replica

import (
	"errors"
	"fmt"
)

// The package's errors. Callers match them with errors.Is; the typed
// errors carry data and match their sentinel.

var (
	// ErrNotLeader is matched (errors.Is) by *NotLeaderError.
	ErrNotLeader = errors.New("replica: not leader")
	// ErrProposalLost means the proposal's log entry was overwritten by
	// another leader's entry: it was not and will not be applied.
	ErrProposalLost = errors.New("replica: proposal lost")
	// ErrProposalDropped means raft refused the proposal before appending it
	// (leadership transfer in progress, or too many uncommitted bytes): it was
	// not applied. Retrying later is safe.
	ErrProposalDropped = errors.New("replica: proposal dropped")
	// ErrStopped is returned by calls made after Close or after the
	// replica stopped on a fatal error, and by pending calls that had not
	// reached raft: a proposal that gets it was not applied.
	ErrStopped = errors.New("replica: stopped")
	// ErrOutcomeUnknown means a proposal reached raft but this node can no
	// longer learn whether it commits: the replica stopped while the entry
	// was in flight, or a snapshot replaced the log where it had landed.
	// It may be applied, now or later; only a (session, sequence) retry is
	// safe.
	ErrOutcomeUnknown = errors.New("replica: outcome unknown")
	// ErrApplyFault wraps the error with which the state machine refused
	// to apply an entry on this node (StateMachine.Apply): the replica
	// stopped instead of diverging from its peers.
	ErrApplyFault = errors.New("replica: cannot apply entry on this node")
	// ErrConfChangeInProgress means an earlier membership change is not yet
	// applied (raft allows one at a time): nothing was changed; retry.
	ErrConfChangeInProgress = errors.New("replica: another membership change is in progress")
	// ErrLearnerBehind means Promote's learner is not caught up yet.
	ErrLearnerBehind = errors.New("replica: learner is not caught up")
	// ErrUnknownMember means the id is not a member (or not a learner, for
	// Promote).
	ErrUnknownMember = errors.New("replica: no such member")
	// ErrForeignGroup means a frame named another raft group than the
	// receiver's: it was dropped.
	ErrForeignGroup = errors.New("replica: frame for another raft group")
	// ErrSnapshotAborted is returned by ReceiveSnapshot for a chunk of a stream
	// that is not the one being received (a newer stream replaced it, or a
	// chunk was lost).
	ErrSnapshotAborted = errors.New("replica: snapshot stream aborted")
)

// NotLeaderError says that this node is not the leader. Leader is the leader
// this node knows of, or 0 if none.
type NotLeaderError struct {
	Leader uint64
}

func (e *NotLeaderError) Error() string {
	if e.Leader == 0 {
		return "replica: not leader (leader unknown)"
	}
	return fmt.Sprintf("replica: not leader (leader is %d)", e.Leader)
}

// Is reports whether target is ErrNotLeader.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }
