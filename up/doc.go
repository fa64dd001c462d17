// Package up is the local supervisor behind `cleave up`: the
// local twin of the operator, making the same decisions with processes
// instead of pods.
//
// Contract:
//
//   - Topology. On the first start in a data directory DIR, Run chooses N
//     clusters (c1..cN, owning ring.Even(N) in order) of R nodes (raft ids
//     1..N*R, in order), gives every node a free port on 127.0.0.1, and
//     writes all of it, with the router's address, to DIR/up.json
//     atomically. Every later start reads DIR/up.json and reuses it, so each
//     node finds its data and its peers again; a different --clusters or
//     --replicas is reported and ignored. --listen may move the router.
//   - Processes. Every node and the router runs as its own OS process: the
//     cleave binary re-executed with the `node` and `router` subcommands.
//     Node data lives in DIR/<cluster>/n<id>, the router's in DIR/router,
//     and each child's stdout and stderr are appended to
//     DIR/logs/<name>.log (router.log, c1-n1.log, ...). Each child gets
//     GOMAXPROCS = CPUs / processes, rounded up (childProcs), unless
//     GOMAXPROCS is set in Run's environment, which children inherit.
//   - Supervision. A child that exits while Run is running is restarted
//     after a backoff that starts at 500ms, doubles up to 10s, and resets
//     once a child has stayed up for 30s. Each restart is logged.
//   - Readiness. Run prints the router address, data and log directories
//     and example commands once the router answers STATUS and every cluster
//     has a leader; if that does not happen within ReadyTimeout (30s) it
//     stops everything and returns an error naming what was missing.
//   - Stopping. When ctx is done Run sends SIGTERM to every child, SIGKILL
//     to those still alive after StopTimeout (10s), and returns nil.
//     Children run in their own process group, so a terminal's Ctrl-C
//     reaches only the supervisor; on Linux they also get SIGTERM from the
//     kernel if the supervisor dies (Pdeathsig).
//   - Splits. Once up, Run answers `cleave split` on the unix socket
//     DIR/up.sock (admin.go): it starts the new cluster's nodes, records
//     the cluster in DIR/up.json (pending until the split is cleaned, then
//     with the range the routing table gave it) and asks the routers to
//     split. With Config.AutoSplit it does the same by itself for a
//     cluster over a size or load threshold. docs/split.md has the design.
//   - Exclusion. DIR/up.lock (flock) keeps a second supervisor off the same
//     directory; Run fails, naming the address, if the router's or a node's
//     port is taken.
//
// The supervisor writes its children's flags with FormatPeers,
// FormatCluster and wire.FormatRange; package main (cmd/cleave) reads them
// back, and its tests check the round trip.
package up
