package router

import (
	"context"

	"github.com/cleavefs/cleave/wire"
)

// SetSplitTestHooks installs hooks in r's split driver for the tests of
// package router_test (see splitTestHooks); either may be nil.
func SetSplitTestHooks(r *Router, beforeStep func(wire.SplitStatus), call func(ctx context.Context, cluster string, req *wire.Request, send func() *wire.Response) *wire.Response) {
	r.splits.hooks.Store(&splitTestHooks{beforeStep: beforeStep, call: call})
}
