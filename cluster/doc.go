// Package cluster is the storage node server: one member of a cluster's
// Raft group (package replica) whose state machine is the file state
// machine (package fsm), served over the wire protocol to routers and to
// the other members.
//
// Writes are proposed on the leader and answered once committed and applied;
// a follower answers NOT_LEADER naming the leader's address. A WRITE or
// APPEND is prepared on the leader first (fsm.FSM.PrepareWrite, repairing
// any corrupt chunk it meets from a peer), so apply reads no chunk bytes.
// Reads wait on a ReadIndex barrier and then read the committed state, so
// they are linearizable on any member; FlagStale skips the barrier. Most
// writes and linearizable reads take no goroutine of their own while they
// wait (Node.writeAsync, Node.readAsync): the replica answers them from
// its loop, or for a read round from one goroutine for the whole round.
// Ownership of the hash range is part of the replicated state and is
// checked when a command is applied, so every replica accepts or rejects it
// alike.
//
// Besides serving, a node stamps the entry clock of the commands it
// proposes (clock.go), scrubs and repairs chunks (scrub.go, repair.go),
// forks into the new group at a split (split_node.go), checks that its
// state matches its peers' (consistency.go), counts usage (usage.go),
// changes membership (membership.go) and exports metrics (metrics.go).
//
// Node identity (the raft id) is separate from cluster identity (ClusterID),
// so a split can turn learners of one cluster into members of another.
package cluster
