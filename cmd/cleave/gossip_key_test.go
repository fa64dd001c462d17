package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/cleavefs/cleave/cluster"
	"github.com/cleavefs/cleave/router"
)

// TestGossipKeyFileFlag: node and router read --gossip-key-file (or
// CLEAVE_GOSSIP_KEY_FILE), first line primary, and name the file when it
// is bad.
func TestGossipKeyFileFlag(t *testing.T) {
	dir := t.TempDir()
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16)
	good := filepath.Join(dir, "keys")
	os.WriteFile(good, []byte(base64.StdEncoding.EncodeToString(k1)+"\n"+base64.StdEncoding.EncodeToString(k2)+"\n"), 0o600)
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("not a key\n"), 0o600)
	wantKeys := func(t *testing.T, got [][]byte) {
		t.Helper()
		if len(got) != 2 || !bytes.Equal(got[0], k1) || !bytes.Equal(got[1], k2) {
			t.Fatalf("gossip keys %x, want [%x %x]", got, k1, k2)
		}
	}
	node := []string{"--id", "1", "--cluster", "c1", "--listen", ":7501", "--peers", "1=:7501/:7601", "--data", "d", "--range", "0-1"}
	runFlagCases(t, newNodeCmd, []flagCase[cluster.Config]{
		{name: "node key file", args: append(node, "--gossip-key-file", good),
			check: func(t *testing.T, c cluster.Config) { wantKeys(t, c.GossipKeys) }},
		{name: "node bad key file", args: append(node, "--gossip-key-file", bad), wantErr: "--gossip-key-file: gossip key file " + bad + " line 1"},
		{name: "node no key file", args: node,
			check: func(t *testing.T, c cluster.Config) {
				if c.GossipKeys != nil {
					t.Fatalf("keys without a key file: %x", c.GossipKeys)
				}
			}},
	}, nil)
	runFlagCases(t, newRouterCmd, []flagCase[router.Config]{
		{name: "router key file", args: []string{"--data", "d", "--gossip-key-file", good},
			check: func(t *testing.T, c router.Config) { wantKeys(t, c.GossipKeys) }},
		{name: "router missing key file", args: []string{"--data", "d", "--gossip-key-file", filepath.Join(dir, "none")}, wantErr: "none"},
	}, nil)

	t.Setenv("CLEAVE_GOSSIP_KEY_FILE", good)
	var got router.Config
	if err := execute(newRouterCmd(func(_ context.Context, c router.Config) error { got = c; return nil }), "--data", "d", "--insecure-peer"); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, got.GossipKeys)
}
