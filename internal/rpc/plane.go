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
	ph := planeHandler{p: p, serves: serves, dropped: dropped, h: h}
	if ah, ok := h.(AsyncHandler); ok {
		return asyncPlaneHandler{ph, ah}
	}
	return ph
}

type planeHandler struct {
	p       wire.Plane
	serves  func(wire.Op, wire.Plane) bool
	dropped *atomic.Uint64
	h       Handler
}

func (ph planeHandler) Handle(ctx context.Context, req *wire.Request) *wire.Response {
	if ph.serves(req.Op, ph.p) {
		return ph.h.Handle(ctx, req)
	}
	if req.Op.OneWay() {
		if ph.dropped != nil {
			ph.dropped.Add(1)
		}
		return nil
	}
	return wire.WrongPlane(req.Op, ph.p)
}

// asyncPlaneHandler is a planeHandler over an AsyncHandler: it offers
// HandleAsync the ops the plane serves (Handle refuses the others).
type asyncPlaneHandler struct {
	planeHandler
	ah AsyncHandler
}

func (a asyncPlaneHandler) HandleAsync(ctx context.Context, req *wire.Request, reply func(*wire.Response)) bool {
	return a.serves(req.Op, a.p) && a.ah.HandleAsync(ctx, req, reply)
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
