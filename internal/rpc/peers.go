package rpc

import (
	"context"
	"crypto/tls"
	"sync/atomic"

	"github.com/cleavefs/cleave/wire"
)

// PeerRule decides whether the peer a verified certificate names (role,
// id) may send op. For ops sent in a raft member's name (RAFT, SNAPSHOT)
// it returns the raft id the frame's sender must be; 0 checks nothing.
// The error names the identity and the op.
type PeerRule func(role, id string, op wire.Op) (sender uint64, err error)

// Identify returns the role and id a connection's verified certificate
// names (certs.Verified).
type Identify func(cs *tls.ConnectionState) (role, id string, err error)

type senderKey struct{}

// VerifiedSender returns the raft id CheckPeers verified for ctx's
// request: 0 when nothing was checked (a plaintext peer plane, or an op
// not sent in a member's name).
func VerifiedSender(ctx context.Context) uint64 {
	id, _ := ctx.Value(senderKey{}).(uint64)
	return id
}

// CheckPeers wraps a peer plane's handler: each request must come on a
// connection whose certificate identify names a peer that rule allows to
// send its op. A refused one-way frame (RAFT) is dropped and counted in
// refused; anything else is answered FORBIDDEN. The sender rule returns
// reaches h through VerifiedSender.
func CheckPeers(identify Identify, rule PeerRule, refused *atomic.Uint64, h Handler) Handler {
	return HandlerFunc(func(ctx context.Context, req *wire.Request) *wire.Response {
		var cs *tls.ConnectionState
		if ci := ConnInfoFrom(ctx); ci != nil {
			cs = ci.TLS
		}
		role, id, err := identify(cs)
		var sender uint64
		if err == nil {
			sender, err = rule(role, id, req.Op)
		}
		if err != nil {
			if req.Op.OneWay() {
				refused.Add(1)
				return nil
			}
			return &wire.Response{Code: wire.Forbidden, Message: err.Error()}
		}
		if sender != 0 {
			ctx = context.WithValue(ctx, senderKey{}, sender)
		}
		return h.Handle(ctx, req)
	})
}
