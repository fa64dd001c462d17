package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/cleavefs/cleave/internal/certs"
)

// tlsOpts are the TLS flags of `cleave node` and `cleave router`.
type tlsOpts struct {
	peerCert, peerKey, peerCA string
	insecurePeer              bool
	cert, key, ca             string
	nodeTLS                   bool // router only
}

// addFlags registers the flags; router adds --node-tls.
func (o *tlsOpts) addFlags(f *pflag.FlagSet, router bool) {
	f.StringVar(&o.peerCert, "peer-cert", "", "certificate (PEM) this process presents on the peer plane, named node-<raft id> or router-<meta raft id>; with --peer-key and --peer-cacert")
	f.StringVar(&o.peerKey, "peer-key", "", "private key (PEM) of --peer-cert")
	f.StringVar(&o.peerCA, "peer-cacert", "", "CA (PEM) every peer's certificate must be signed by (mutual TLS on the peer plane)")
	f.BoolVar(&o.insecurePeer, "insecure-peer", false, "run the peer plane in plaintext, without certificates: only on a network you trust")
	f.StringVar(&o.cert, "tls-cert", "", "certificate (PEM) the client listener serves TLS 1.3 with; with --tls-key and --tls-cacert")
	f.StringVar(&o.key, "tls-key", "", "private key (PEM) of --tls-cert")
	f.StringVar(&o.ca, "tls-cacert", "", "CA (PEM) that client certificates, when a client presents one, must be signed by")
	if router {
		f.BoolVar(&o.nodeTLS, "node-tls", false, "dial the nodes' client listeners over TLS, trusting --tls-cacert")
	}
}

// peerTLS loads the peer plane's certificates: nil with --insecure-peer.
// Files re-read when they change (certs.Reloader).
func (o *tlsOpts) peerTLS() (*certs.Reloader, error) {
	given := o.peerCert != "" || o.peerKey != "" || o.peerCA != ""
	switch {
	case given && o.insecurePeer:
		return nil, usagef("--insecure-peer and --peer-cert/--peer-key/--peer-cacert exclude each other")
	case o.insecurePeer:
		return nil, nil
	case !given:
		return nil, usagef("the peer plane needs --peer-cert, --peer-key and --peer-cacert (mutual TLS), or --insecure-peer to run it in plaintext on a network you trust")
	case o.peerCert == "" || o.peerKey == "" || o.peerCA == "":
		return nil, usagef("--peer-cert, --peer-key and --peer-cacert go together (got %q, %q and %q)", o.peerCert, o.peerKey, o.peerCA)
	}
	r, err := certs.Load(o.peerCert, o.peerKey, o.peerCA)
	if err != nil {
		return nil, fmt.Errorf("peer plane: %w", err)
	}
	return r, nil
}

// clientTLS loads the client listener's certificates: nil without
// --tls-cert, --tls-key and --tls-cacert (all three or none).
func (o *tlsOpts) clientTLS() (*certs.Reloader, error) {
	if o.cert == "" && o.key == "" && o.ca == "" {
		if o.nodeTLS {
			return nil, usagef("--node-tls needs --tls-cacert (with --tls-cert and --tls-key)")
		}
		return nil, nil
	}
	if o.cert == "" || o.key == "" || o.ca == "" {
		return nil, usagef("--tls-cert, --tls-key and --tls-cacert go together (got %q, %q and %q)", o.cert, o.key, o.ca)
	}
	r, err := certs.Load(o.cert, o.key, o.ca)
	if err != nil {
		return nil, fmt.Errorf("client listener: %w", err)
	}
	return r, nil
}

// apply loads the TLS material into a node's or router's settings.
func (o *tlsOpts) apply(peer, client **certs.Reloader) error {
	var err error
	if *peer, err = o.peerTLS(); err != nil {
		return err
	}
	*client, err = o.clientTLS()
	return err
}
