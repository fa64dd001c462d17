// Package ops is the HTTP side port of a node or a router:
// /metrics (Prometheus text format, from the process's own registry, never
// the global one), /healthz (the process is serving), /readyz (it can do
// its job: a node knows a leader, a router has a routing table), and, only
// when Config.Pprof is set, the Go profiler under /debug/pprof/ (never
// /debug/pprof/cmdline: a flag may hold a secret), and the pages the
// process adds with Config.Handlers (a router's status page at /).
//
// NewLogger makes the servers' logger, text or JSON, in which a key given
// again (a component's "component" under its parent's) replaces the
// earlier value rather than repeating it.
//
// The port is off unless an address is configured; it carries no auth, so
// bind it to loopback or a private network. Server methods are safe for
// concurrent use.
//
// Metric names follow cleave_<subsystem>_<name>_<unit>; labels are bounded
// (an op name, a wire code), never a path.
package ops
