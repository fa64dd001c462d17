package router

import (
	"context"
	"crypto/tls"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/cleavefs/cleave/internal/certs"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

// peerRule decides whether a peer whose verified certificate names role
// and id may send op on a router's peer plane: only routers may. For RAFT
// and SNAPSHOT it returns the meta raft id the frame's sender (From) must
// be: the router the certificate names. The error names the identity and
// the op.
func peerRule(role, id string, op wire.Op) (sender uint64, err error) {
	if role != certs.RoleRouter {
		return 0, fmt.Errorf("peer %s may not send %v to a router", certs.Name(role, id), op)
	}
	if op == wire.OpRaft || op == wire.OpSnapshot {
		if sender, err = strconv.ParseUint(id, 10, 64); err != nil || sender == 0 {
			return 0, fmt.Errorf("peer %s may not send %v: its id is not a raft id", certs.Name(role, id), op)
		}
	}
	return sender, nil
}

type senderKey struct{}

// senderFrom returns the meta raft id the peer plane verified for ctx's
// request (0: not checked, the peer plane is plaintext).
func senderFrom(ctx context.Context) uint64 {
	id, _ := ctx.Value(senderKey{}).(uint64)
	return id
}

// checkPeers wraps the peer plane's handler: each request must come from
// a certificate peerRule allows. A refused one-way frame (RAFT) is dropped
// and counted in refused; others are answered FORBIDDEN.
func checkPeers(refused *atomic.Uint64, h rpc.Handler) rpc.Handler {
	return rpc.HandlerFunc(func(ctx context.Context, req *wire.Request) *wire.Response {
		role, id, err := peerIdentity(ctx)
		var sender uint64
		if err == nil {
			sender, err = peerRule(role, id, req.Op)
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

// peerDial is the dial configuration of the peer plane's pool.
func (c Config) peerDial() rpc.DialConfig {
	dc := rpc.DialConfig{Client: "router " + c.ID, Token: c.Token, MaxFrame: c.MaxFrame}
	if c.PeerTLS != nil {
		dc.TLS = c.PeerTLS.ClientConfig()
	}
	return dc
}

// clientServerTLS is the client listener's TLS configuration, nil for
// plaintext.
func (c Config) clientServerTLS() *tls.Config {
	if c.TLS == nil {
		return nil
	}
	return c.TLS.ServerConfig(tls.VerifyClientCertIfGiven)
}

// peerIdentity returns the role and id named by the verified certificate
// of the connection ctx's request arrived on.
func peerIdentity(ctx context.Context) (role, id string, err error) {
	var cs *tls.ConnectionState
	if ci := rpc.ConnInfoFrom(ctx); ci != nil {
		cs = ci.TLS
	}
	return certs.Verified(cs)
}
