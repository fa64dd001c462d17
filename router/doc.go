// Package router is cleave's routing tier: it accepts client
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
//     retry policy is documented on forward (forward.go). A request whose
//     first try can go at once is sent from the client connection's reader
//     and answered from the node connection's, without a goroutine of its
//     own; whatever else it needs continues on one (forward_async.go). When
//     the caller's deadline (TimeoutMs, else Config.DefaultTimeout) is
//     nearly spent the answer is TIMEOUT if a try may have reached a node,
//     else UNAVAILABLE.
//   - Mutations are retried after a broken connection even though they may
//     have been applied; exactly-once is the job of (session, seq) at the
//     cluster.
//
// # What router owns, what control owns
//
// Package router is the forwarder: connection pools to every node,
// forwarding with the retry policy (forward.go, policy.go), the gossip view
// (gossip.go), read-replica choice (replicas.go), the admin passthrough to
// the meta leader (admin.go), status aggregation (status.go) and the HTTP
// side port with its metrics (metrics.go) and status page (statuspage.go,
// the embedded statuspage/ directory, polling the status answer). The routing table, the meta group and the split driver are
// package control's; the router reads the table through control.Table and
// serves the split driver's calls to clusters (control.Clusters).
//
// # Configuration
//
// Start from DefaultConfig; New fills any zero optional field from
// DefaultConfig in one step (as replica.Open does), then Validate reports
// what is still wrong.
//
// # Concurrency
//
// Router and every exported function are safe for concurrent use. Its own
// locks are leaf locks, never held across I/O or another lock: Router.lmu
// (the leader cache), Router.mu (the listen address), liveness.mu (gossip's
// view), replicaRings.mu (the read-replica rings), hintGuard.mu (the
// refused-hint log's rate limit) and firstTry.mu (which of a first try's
// answer, timer and caller acts on it). Locks held across I/O
// belong to package control (its doc lists them); the router takes none of
// them while holding its own.
package router
