package control

import "errors"

// ErrInvalidTable is wrapped by every error about a routing table that breaks
// the rules of ValidateTable, including a table file that does not decode.
var ErrInvalidTable = errors.New("control: invalid routing table")

// errStaleUpdate is the result of a metaCommand whose Expect no longer holds.
var errStaleUpdate = errors.New("control: table changed concurrently")

// ErrNotMetaLeader is returned by MetaTable.Update on a router that does not
// lead the meta group; errors.As gives a *replica.NotLeaderError with the
// leader's raft id.
var ErrNotMetaLeader = errors.New("control: not the meta group leader")

// ErrBadTransition is the answer to a split record change the state
// machine does not allow.
var ErrBadTransition = errors.New("control: split phase change not allowed")
