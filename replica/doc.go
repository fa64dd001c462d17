// Package replica is cleave's replicated state machine core: one Raft group
// (go.etcd.io/raft/v3 RawNode) whose HardState, ConfState and applied
// index live in the same Pebble DB as the state machine's data, and whose
// log entries live in segment files of their own (Config.LogDir;
// logfile.go). Storage clusters and the routers' meta group both build on
// it.
//
// # Contract
//
//   - One loop goroutine owns the RawNode, the log store and the state
//     machine. It wakes on a tick, a proposal, a peer message, a read
//     request, a finished write or Close, drains up to Config.MaxBatch more
//     queued inputs, then takes a Ready: its log entries are encoded for
//     the last log segment (one write; a conflicting suffix is replaced),
//     and its HardState, committed entries applied through
//     StateMachine.Apply, ConfState changes and the applied index go into
//     one Pebble indexed batch. A writer goroutine appends the entries and
//     fsyncs them, then commits the batch, itself not durable unless it
//     changes the term or the vote: every entry it applies is in the synced
//     log, which replays it after a crash (a Ready with no entries and
//     nothing to sync the loop commits itself, since there is no disk wait
//     to overlap, and so it writes a synced one while the load is light:
//     when the last synced write saw at most two inputs per peer arrive).
//     While the
//     writer commits, the loop keeps stepping inputs into raft (proposals
//     are buffered and stepped together) but takes no other Ready. Only once the
//     write is durable are a follower's messages sent, results delivered, the
//     applied index moved, read states served and Advance called. The one
//     exception: a leader whose Ready must be synced first applies, in an
//     unsynced batch of their own, the committed entries its durable log already
//     holds, and answers them at once (they are durable on a quorum; a crash
//     replays them). Concurrent proposals therefore share one Ready and one fsync
//     (group commit), and what arrives during a sync fills the next one.
//   - Because the applied index is written in the same batch as the state it
//     produced, a restart re-applies every committed entry after it exactly
//     once. The replica never relies on the DB's write-ahead log, so the
//     DB may run without one (pebble.Options.DisableWAL; the nodes' state
//     does): the log is the state's write-ahead log. What must survive a
//     crash outside the log (term and vote, member marks, records of
//     bootstrap and log generation, an installed snapshot) is committed
//     and flushed (internal/durable). Compaction moves the log's start at
//     once, with an unsynced record, but removes a segment file only after
//     a flush that began later has ended, so the state of every entry it
//     held, and the record, are durable first. A clean Close flushes the
//     DB, so the next Open replays nothing.
//   - Propose works only on the leader (proposals are never forwarded). A
//     caller learns the outcome: applied (result, index), not applied
//     (*NotLeaderError, ErrProposalDropped, ErrProposalLost, ErrStopped) or
//     unknown (ctx.Err(), ErrOutcomeUnknown).
//   - ReadIndex is raft's ReadIndex: linearizable on leader and followers;
//     callers that arrive while a round is in flight join the next round.
//     A leader that every member answered within the last
//     (ElectionTicks-2.5)·TickInterval holds a read lease and needs no
//     round (lease.go, which states what the lease rests on); a member
//     that restarts refuses votes for an election timeout, so that a
//     restart cannot break a lease. ReadIndexFunc's callbacks of the
//     reads released together share a ReadScope, so they can read one
//     snapshot of the state opened after their index was applied.
//   - Input from the network is never trusted to be valid: misaddressed
//     messages, local message types, proposals, snapshots and messages from
//     non-members are logged and dropped. A failed Pebble write stops the
//     replica (every pending and later call gets ErrStopped or, for a
//     proposal raft had taken, ErrOutcomeUnknown; Close returns the cause).
//     So does an entry the state machine cannot apply on this node
//     (StateMachine.Apply's error, ErrApplyFault): nothing of its Ready is
//     committed, and a restart replays it.
//   - Keys under Config.Prefix belong to the replica (layout in storage.go);
//     the state machine writes elsewhere in the same DB, and one DB holds
//     one replica: a snapshot replaces every key outside the replica's own
//     (except the empty key and keys from 16 bytes of 0xff up).
//   - Log compaction keeps Config.LogRetention applied entries, never
//     passing the index of a snapshot still being sent. A follower that
//     needs compacted entries, or has an empty DB (Config.Join), gets a
//     snapshot: a Pebble snapshot of the state streamed in chunks through
//     SnapshotTransport and installed on the receiver with one atomic SST
//     ingest (snapshot.go has the format and the atomicity argument).
//   - Membership changes (AddLearner, Promote, RemoveMember; membership.go)
//     are raft ConfChange entries, one at a time; the address a change
//     carries is stored in replicated state, so Members knows every
//     member's address after restarts and snapshots.
//
// # Concurrency and lock order
//
// Every exported method of Replica is safe for concurrent use. None holds
// a lock while it talks to the loop; they hand their request over a
// channel and wait for its answer, for ctx or for the replica to stop:
//
//   - Propose, ReadIndex, AddLearner, Promote, RemoveMember block until
//     answered (ctx bounds the wait).
//   - Step, Campaign and ReportUnreachable never block: when the loop's
//     inbox is full the input is dropped (raft retransmits or retries).
//   - Status, Stats, Members, MemberAddr, Applied, Leader, Group, Done and
//     Err read what the loop publishes (atomic pointers and counters, a
//     closed channel); they never wait for the loop.
//   - ServeWire is Step or ReceiveSnapshot behind the wire protocol.
//   - ReceiveSnapshot writes each chunk under recvMu (one incoming stream
//     at a time; a concurrent call waits for the chunk being written) and,
//     for the last chunk, waits for the loop to install the snapshot,
//     without the lock.
//   - Close may be called from any goroutine, more than once; it waits for
//     the loop and the snapshot sender goroutines to end.
//
// Goroutines: the loop (one per Replica) owns the RawNode, the log store,
// the state machine and every field the Replica struct lists as
// loop-owned; the writer (one per Replica) commits the synced batches the
// loop hands it, one at a time, and touches nothing else; the snapshot senders (at most Config.MaxSnapshotSends) each
// stream one Pebble snapshot through SnapshotTransport and report back
// over a channel.
//
// Locks: recvMu is the only mutex (besides the sync.Once in Close). It is
// a leaf lock — nothing else is acquired while it is held — so there is no
// lock order to respect.
//
// Callbacks: StateMachine.Apply, Restorer.Restored, Transport.Send and
// PeerForgetter.Forget run on the loop goroutine. They must not call a
// method that waits for the loop (Propose, ReadIndex, the membership
// changes, ReceiveSnapshot's last chunk, Close): that deadlocks.
package replica
