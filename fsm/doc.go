// Package fsm is the file state machine of a storage cluster: the namespace
// of the roots the cluster owns (files, directories, content-addressed
// chunks, sessions, the owned range and the split record), kept in Pebble
// under the "s/" keys and changed only by Apply. It knows no Raft, network
// or clock of its own; the storage node (package cluster) drives it.
//
// Determinism. Apply is a function of the state in the batch, the log
// index and the command only: the command carries the leader's times (Time
// for mtimes, Clock for expiry) and the cluster parameters (chunk size,
// session and chunk TTLs). Every replica that applies the same entries
// holds the same state and returns the same Results (StateChecksum and
// HashOverlay compare them). Anything that needs this node's own bytes —
// reading the blocks a write keeps, verifying chunks — happens before the
// command is proposed (PrepareWrite) or outside the log (VerifyChunks,
// ChunkData, RepairChunk). A Result with Code INTERNAL from Apply means a
// local read or decode fault: the caller must not commit the batch.
//
// Caches. Apply keeps copies of replicated state in memory (the owned
// range, recently used session records, the metadata of recently written
// chunks, lower bounds on the session-expiry and chunk-GC indexes;
// cache.go)
// and relies on the replica's rule: a batch Apply wrote into is committed
// before the next Apply, or the replica stops and this FSM applies nothing
// more. A caller that changes the state under the FSM in any other way (a
// snapshot's ingest) calls Restored before the next Apply.
//
// Concurrency. Apply (and Bootstrap, ForkState, Restored, MarkSplitTainted) must be
// called from one goroutine at a time, the replica's apply loop. The reads
// (Range, Stat, Exists, Read, ListPage, Split, SplitTainted, Usage, Clock),
// PrepareWrite and the chunk checks (VerifyChunks, ChunkData, RepairChunk)
// read the committed state, never the batch being applied, and are safe
// for concurrent use with each other and with Apply. A View (view.go)
// serves several reads from one snapshot of it, one goroutine at a time.
// The caller owns the DB and the batches.
//
// Where things are: the key layout at the top of fsm.go; commands and
// results in command.go, their hand-written msgpack codec (the bytes the
// reflection codec writes) in codec.go and records.go; files as grids of content-addressed,
// reference-counted chunks and the checksum forms in chunk.go; the
// exactly-once rule in session.go (per session, a window of the results of
// the last 1024 sequence numbers, expired after the session TTL of entry
// clock); the entry clock in clock.go; the split commands in split.go; the
// state checksum in checksum.go; what Apply caches in cache.go.
package fsm
