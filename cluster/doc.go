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
// Node identity (the raft id) is separate from cluster identity (ClusterID),
// so a split can turn learners of one cluster into members of another.
package cluster
