package replica

import (
	"context"
	"errors"

	"github.com/cleavefs/cleave/wire"
)

// ErrorCode is the protocol code for a request that failed with err from
// the replica: NOT_LEADER; UNAVAILABLE where nothing was applied and a retry
// may succeed (a configuration change in progress, a dropped or lost
// proposal, a stopping replica); TIMEOUT where the outcome is unknown or a
// learner has not caught up yet; NOT_FOUND for an unknown member; INVALID
// for anything else (a change the group refuses).
func ErrorCode(err error) wire.Code {
	var nl *NotLeaderError
	switch {
	case errors.As(err, &nl), errors.Is(err, ErrNotLeader):
		return wire.NotLeader
	case errors.Is(err, ErrConfChangeInProgress), errors.Is(err, ErrProposalDropped),
		errors.Is(err, ErrProposalLost), errors.Is(err, ErrStopped):
		return wire.Unavailable
	case errors.Is(err, ErrLearnerBehind), errors.Is(err, ErrOutcomeUnknown),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return wire.Timeout
	case errors.Is(err, ErrUnknownMember):
		return wire.NotFound
	}
	return wire.Invalid
}
