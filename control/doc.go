// Package control is cleave's control plane: the routing table, the
// routers' meta group that replicates it, the split records and the split
// driver. Package router uses it; it never imports router.
//
// # What it owns
//
//   - The routing table (table.go): Table is its store, immutable snapshots
//     from Current and serialised, validated (ValidateTable), durable changes
//     through Update, each raising the version by one. FileTable keeps it in
//     one JSON file for a deployment with a single router; MetaTable is the
//     routers' meta group. Owner, Cluster and ClusterRange read a table.
//   - The meta group (meta.go): MetaTable, a Table replicated with Raft
//     among the routers (package replica), stored in Pebble. Every router is
//     a member and routes with its applied copy; only the meta leader changes
//     it, and a change is committed before any router routes with it.
//   - The split records (split.go): a split's progress is a
//     wire.SplitStatus stored beside the table; NextPhase is the pure state
//     machine of its phases, PlanSplit checks a new split against the table,
//     SplitTable is the table change a split commits.
//   - The split driver (driver.go): on the meta leader, Driver walks each
//     split through its phases, one idempotent step at a time, recording
//     each phase before the next; a new leader resumes from the record. It
//     reaches the storage clusters only through Clusters, which the router
//     implements.
//
// # Concurrency
//
// FileTable, MetaTable and Driver are safe for concurrent use; Table
// implementations must be. Current never blocks. Update, RecordSplit and
// Refresh block until the meta group has applied the change (or ctx ends);
// Driver.Handle blocks for an abandon's whole decision.
//
// MetaTable holds no lock: concurrent Update and RecordSplit calls are
// serialised by the log, each applied only if the table is still at the
// version it was built on (else rebuilt on the newer one). Two locks are
// held across I/O on purpose, each to serialise a read-decide-write:
//
//   - the split driver's lock (Driver.step), for one step of a split or an
//     abandon's whole decision: calls to cluster leaders (Clusters) and meta
//     proposals happen under it;
//   - FileTable.mu, for one update including the file write.
//
// Driver.mu (which splits have a goroutine) is a leaf lock. Lock order: the
// split driver's lock, then nothing else of this package; no lock is held
// while the driver's lock is taken. Clusters implementations must not call
// back into the Driver.
package control
