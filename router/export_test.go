package router

import (
	"context"

	"github.com/cleavefs/cleave/wire"
)

// Call is call for the tests of package router_test.
var Call = call

// SetSplitTestHooks installs hooks in r's split driver for the tests of
// package router_test (see control.Driver.SetTestHooks); either may be nil.
func SetSplitTestHooks(r *Router, beforeStep func(wire.SplitStatus), call func(ctx context.Context, cluster string, req *wire.Request, send func() *wire.Response) *wire.Response) {
	r.splits.SetTestHooks(beforeStep, call)
}

// GossipAddr returns r's gossip address, for router_test.
func GossipAddr(r *Router) string { return r.gossip.Addr() }

// LeaderHintsRefused returns how many leader hints r ignored because the
// routing table does not list the address for that cluster.
func LeaderHintsRefused(r *Router) uint64 { return r.hints.refused.Load() }
