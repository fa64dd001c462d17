// Package cluster is a storage node: one member of a cluster's Raft group
// (package replica) whose state machine is the file namespace (FSM), served
// over the wire protocol to routers and to the other members.
//
// Writes are proposed on the leader and answered once committed and applied;
// a follower answers NOT_LEADER naming the leader's address. Reads wait on a
// ReadIndex barrier and then read the committed state, so they are
// linearizable on any member; FlagStale skips the barrier. Ownership of the
// hash range is part of the replicated state and is checked when a command is
// applied, so every replica accepts or rejects it alike (DESIGN §7).
//
// The state machine (FSM) is deterministic: Apply depends only on the state,
// the log index and the command, which carries the leader's time and the
// cluster parameters (chunk size, session and chunk TTLs). Its key layout is
// at the top of fsm.go; chunk.go describes files as grids of
// content-addressed, reference-counted chunks and the checksum forms;
// session.go the exactly-once rule: per session, a window of the results of
// the last 1024 applied sequence numbers (a retry in the window gets the
// stored result, a seq below it is INVALID "stale sequence"), expired after
// the session TTL of entry time. The scrubber (scrub.go) re-verifies chunks
// in the background.
//
// Node identity (the raft id) is separate from cluster identity (ClusterID),
// so a split can turn learners of one cluster into members of another.
package cluster
