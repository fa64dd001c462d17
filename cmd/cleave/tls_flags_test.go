package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/cluster"
	"github.com/cleavefs/cleave/internal/certs"
	"github.com/cleavefs/cleave/router"
)

// TestPeerTLSFlags: a node or router refuses to start without a choice
// for the peer plane, naming the flags; the three certificate flags go
// together (also from CLEAVE_PEER_*), and exclude --insecure-peer.
func TestPeerTLSFlags(t *testing.T) {
	dir := t.TempDir()
	if err := certs.NewCA(dir, "test CA", time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"node-1", "router-1"} {
		if err := certs.Issue(dir, dir, name, []string{"127.0.0.1"}, certs.Both, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	f := func(name string) string { return filepath.Join(dir, name) }
	peer := []string{"--peer-cert", f("node-1.crt"), "--peer-key", f("node-1.key"), "--peer-cacert", f("ca.crt")}
	tlsFlags := []string{"--tls-cert", f("node-1.crt"), "--tls-key", f("node-1.key"), "--tls-cacert", f("ca.crt")}
	node := []string{"--id", "1", "--cluster", "c1", "--listen", ":7501", "--peers", "1=:7501/:7601", "--data", "d", "--range", "0-1"}
	cat := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	runFlagCases(t, newNodeCmd, []flagCase[cluster.Config]{
		{name: "neither", args: cat(node, []string{"--peer-cert="}), wantErr: "the peer plane needs --peer-cert, --peer-key and --peer-cacert (mutual TLS), or --insecure-peer"},
		{name: "cert without key", args: cat(node, []string{"--peer-cert", f("node-1.crt"), "--peer-cacert", f("ca.crt")}), wantErr: "--peer-cert, --peer-key and --peer-cacert go together"},
		{name: "both", args: cat(node, peer, []string{"--insecure-peer"}), wantErr: "exclude each other"},
		{name: "missing file", args: cat(node, []string{"--peer-cert", f("none.crt"), "--peer-key", f("node-1.key"), "--peer-cacert", f("ca.crt")}), wantErr: "none.crt"},
		{name: "insecure", args: cat(node, []string{"--insecure-peer"}), check: func(t *testing.T, c cluster.Config) {
			if c.PeerTLS != nil || c.TLS != nil {
				t.Fatalf("PeerTLS %v TLS %v, want none", c.PeerTLS, c.TLS)
			}
		}},
		{name: "mutual TLS", args: cat(node, peer, tlsFlags), check: func(t *testing.T, c cluster.Config) {
			if c.PeerTLS == nil || c.TLS == nil {
				t.Fatalf("PeerTLS %v TLS %v, want both loaded", c.PeerTLS, c.TLS)
			}
		}},
		{name: "half the client TLS", args: cat(node, peer, []string{"--tls-cert", f("node-1.crt")}), wantErr: "--tls-cert, --tls-key and --tls-cacert go together"},
	}, nil)

	t.Setenv("CLEAVE_PEER_CERT", f("router-1.crt"))
	t.Setenv("CLEAVE_PEER_KEY", f("router-1.key"))
	t.Setenv("CLEAVE_PEER_CACERT", f("ca.crt"))
	runFlagCases(t, newRouterCmd, []flagCase[router.Config]{
		{name: "router from env", args: []string{"--data", "d", "--peer-cert", f("router-1.crt")}, check: func(t *testing.T, c router.Config) {
			if c.PeerTLS == nil || c.NodeTLS != nil {
				t.Fatalf("PeerTLS %v NodeTLS %v, want peer TLS from CLEAVE_PEER_* and plaintext to nodes", c.PeerTLS, c.NodeTLS)
			}
		}},
		{name: "node TLS without a CA", args: []string{"--data", "d", "--peer-cert", f("router-1.crt"), "--node-tls"}, wantErr: "--node-tls needs --tls-cacert"},
		{name: "node TLS", args: cat([]string{"--data", "d", "--peer-cert", f("router-1.crt"), "--node-tls"}, tlsFlags), check: func(t *testing.T, c router.Config) {
			if c.NodeTLS == nil || c.TLS == nil {
				t.Fatalf("NodeTLS %v TLS %v, want both", c.NodeTLS, c.TLS)
			}
		}},
	}, nil)
	if err := execute(newRouterCmd(func(context.Context, router.Config) error { return nil }), "--data", "d", "--insecure-peer"); err == nil || !strings.Contains(err.Error(), "exclude each other") {
		t.Fatalf("CLEAVE_PEER_* and --insecure-peer: %v, want a refusal", err)
	}
}
