package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cleavefs/cleave/internal/testcluster"
	"github.com/cleavefs/cleave/wire"
)

func TestNodeAdminUsage(t *testing.T) {
	clearEnv(t)
	t.Setenv("CLEAVE_ROUTER", testcluster.ClosedAddr(t))
	for _, args := range [][]string{
		{"node", "add", "--cluster", "c1", "--id", "9"},                           // no --addr
		{"node", "promote", "--id", "9"},                                          // no --cluster
		{"node", "remove", "--cluster", "c1"},                                     // no --id
		{"node", "replace", "--cluster", "c1", "--id", "9", "--addr", "a:1"},      // no --dead
		{"node", "replace", "--cluster", "c1", "--dead", "2", "--addr", "a:1"},    // no --id
		{"node", "add", "--cluster", "c1", "--id", "9", "--addr", "a:1", "extra"}, // an argument
	} {
		if code, _, stderr := cli(t, "", args...); code != 2 {
			t.Errorf("cleave %s: exit %d, want 2 (usage)\n%s", strings.Join(args, " "), code, stderr)
		}
	}
}

// TestNodeAddRemoveLearner adds a learner that never starts to a real
// cluster through the router and removes it again: the leader's member
// list shows it, then not; the routing table, which lists voters, does not
// change.
func TestNodeAddRemoveLearner(t *testing.T) {
	clearEnv(t)
	useDeployment(t)
	addr, peer := testcluster.ClosedAddr(t), testcluster.ClosedAddr(t)
	code, out, stderr := cli(t, "", "-o", "json", "node", "add", "--cluster", "c1", "--id", "99", "--addr", addr, "--peer-addr", peer)
	if code != 0 {
		t.Fatalf("node add: exit %d: %s", code, stderr)
	}
	var st wire.NodeStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range st.Members {
		found = found || (m.ID == 99 && !m.Voter && m.Addr == addr && m.PeerAddr == peer)
	}
	if !found || st.Role != "leader" || st.Cluster != "c1" {
		t.Fatalf("after add, the leader's view: %+v", st)
	}
	code, out, stderr = cli(t, "", "node", "remove", "--cluster", "c1", "--id", "99")
	if code != 0 {
		t.Fatalf("node remove: exit %d: %s", code, stderr)
	}
	// Node 99 is gone: no row names it or its address (a bare "99" could
	// be part of another member's port).
	gone := !strings.Contains(out, addr)
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "99" {
			gone = false
		}
	}
	if !gone || !strings.Contains(out, "voter") {
		t.Fatalf("after remove:\n%s", out)
	}
	code, _, stderr = cli(t, "", "node", "remove", "--cluster", "nope", "--id", "99")
	if code == 0 || !strings.Contains(stderr, "NOT_FOUND") {
		t.Fatalf("remove from an unknown cluster: exit %d: %s", code, stderr)
	}
}
