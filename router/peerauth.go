package router

import (
	"crypto/tls"
	"fmt"
	"strconv"

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
