package cluster

import (
	"context"
	"fmt"
	"testing"

	"github.com/cleavefs/cleave/replica"
	"github.com/cleavefs/cleave/wire"
)

// A replica error becomes NOT_LEADER or UNAVAILABLE only when the write was
// certainly not applied (the router may retry it anywhere); when it may
// have been, the answer is TIMEOUT (outcome unknown).
func TestReplicaErrorCodes(t *testing.T) {
	notLeader := func(id uint64) *wire.Response { return &wire.Response{Code: wire.NotLeader, Message: fmt.Sprint(id)} }
	leader := func() uint64 { return 7 }
	for _, tc := range []struct {
		err  error
		want wire.Code
	}{
		{&replica.NotLeaderError{Leader: 2}, wire.NotLeader},
		{replica.ErrProposalDropped, wire.Unavailable},
		{replica.ErrProposalLost, wire.Unavailable},
		{replica.ErrStopped, wire.Unavailable},
		{replica.ErrOutcomeUnknown, wire.Timeout},
		{fmt.Errorf("wrapped: %w", replica.ErrOutcomeUnknown), wire.Timeout},
		{context.DeadlineExceeded, wire.Timeout},
		{context.Canceled, wire.Timeout},
	} {
		if got := replicaErrorResponse(tc.err, notLeader, leader); got.Code != tc.want {
			t.Errorf("%v: %v (%s), want %v", tc.err, got.Code, got.Message, tc.want)
		}
	}
}
