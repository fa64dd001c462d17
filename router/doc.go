// Package router is cleave's routing tier (DESIGN §6): it accepts client
// connections speaking the wire protocol, hashes each request's root
// directory onto the routing table and forwards the request to the leader of
// the owning cluster, retrying within the caller's deadline, so callers see
// a leader change only as a slower reply.
//
// # Contract
//
//   - Paths are checked with fspath.Validate before anything else; a bad
//     path is INVALID with the rule's message.
//   - "/" is virtual: LIST merges the roots of every cluster owning a range
//     (each root taken only from the cluster the table gives it to), STAT and
//     EXISTS are answered by the router, GET is IS_DIR, mutations are INVALID.
//   - STATUS returns a wire.Status built by asking every node in parallel; a
//     node that does not answer is listed with Role "down" and never fails the
//     status. TABLE returns the current routing table.
//   - Everything else is forwarded: a copy of the request, with the table
//     version it was routed with and the remaining deadline in TimeoutMs, goes
//     to the cluster's cached leader, else its members in table order. The
//     retry policy is documented on forward (forward.go). When the caller's
//     deadline (TimeoutMs, else Config.DefaultTimeout) is nearly spent the
//     answer is TIMEOUT if a try may have reached a node, else UNAVAILABLE.
//   - Mutations are retried after a broken connection even though they may
//     have been applied; exactly-once is the job of (session, seq) at the
//     cluster.
//
// # Routing table
//
// Table is the store of the routing table: immutable snapshots from Current,
// serialised, validated (control.ValidateTable) and durable changes through Update,
// each raising the version by one. control.FileTable keeps it in
// DataDir/table.json for a single router; the routers' meta group will
// implement Table (and optionally control.Refresher) later.
//
// # Concurrency
//
// Router, control.FileTable, control.MetaTable and every exported function are safe for
// concurrent use. Router.lmu (the leader cache), Router.mu (the listen
// address) and splitDrivers.mu (which split drivers run) are leaf locks,
// never held across I/O or another lock. Three locks are held across I/O on
// purpose, each to serialise a read-decide-write on this router:
//
//   - the split driver's lock (splitDrivers.step), for one step of a split
//     or an abandon's whole decision: calls to cluster leaders and meta
//     proposals happen under it (split_driver.go);
//   - control.MetaTable.mu, for one proposal of a table change or split record
//     (Update, RecordSplit) until this router has applied it;
//   - control.FileTable.mu, for one update including the file write.
//
// Lock order: the split driver's lock before control.MetaTable.mu. Nothing else is
// taken while control.MetaTable.mu or control.FileTable.mu is held.
package router
