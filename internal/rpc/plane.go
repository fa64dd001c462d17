package rpc

import (
	"context"
	"net"
	"sync/atomic"

	"github.com/cleavefs/cleave/wire"
)

// PlaneHandler serves on plane p only the ops serves allows there
// (wire.NodePlane, wire.RouterPlane) and passes them to h. Another op is
// refused before h sees it: a one-way frame is dropped and counted in
// dropped (if not nil), any other op answered FORBIDDEN naming the
// listener that serves it (wire.WrongPlane).
func PlaneHandler(p wire.Plane, serves func(wire.Op, wire.Plane) bool, dropped *atomic.Uint64, h Handler) Handler {
	return HandlerFunc(func(ctx context.Context, req *wire.Request) *wire.Response {
		if serves(req.Op, p) {
			return h.Handle(ctx, req)
		}
		if req.Op.OneWay() {
			if dropped != nil {
				dropped.Add(1)
			}
			return nil
		}
		return wire.WrongPlane(req.Op, p)
	})
}

// Advertise returns the address a process tells others for a listener:
// advertise when set, else the address ln is bound to (with the port the
// system chose for a listen address of port 0).
func Advertise(advertise string, ln net.Listener) string {
	if advertise != "" {
		return advertise
	}
	return ln.Addr().String()
}
