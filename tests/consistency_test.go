package tests

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/wire"
)

// TestConsistencyCheckNamesDivergedReplica: node 3's state is changed
// behind the log's back (the test-only CLEAVE_UNSAFE_DIVERGE switch makes
// it rewrite one file's stored entry once, outside the log), so its state
// differs from its peers' at every later index. The periodic
// cross-replica check must notice within 10 s and name node 3 in `cleave
// status` (JSON and table), and node 3 must refuse reads. Before the
// divergence, the same check runs on the same cluster without a false
// alarm.
func TestConsistencyCheckNamesDivergedReplica(t *testing.T) {
	skipInShortMode(t, "multi-process test")
	const victim = "/consistency/victim"
	t.Setenv("CLEAVE_CHECK_INTERVAL", "1s")
	t.Setenv("CLEAVE_UNSAFE_DIVERGE", "3:"+victim)
	pc := startProcCluster(t, 3, nil, 0)
	c := pc.d.dial(t)
	ctx := context.Background()

	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := c.MkdirAll(wctx, "/consistency"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := c.Put(wctx, fmt.Sprintf("/consistency/f%d", i), []byte(strings.Repeat("x", i*100))); err != nil {
			t.Fatal(err)
		}
	}

	// Healthy first: every node compares a check taken after these
	// writes with its peers, and none raises an alarm.
	var healthyAt uint64
	for _, n := range pc.d.status(t).Clusters[0].Nodes {
		healthyAt = max(healthyAt, n.Applied)
	}
	eventually.Holds(t, 30*time.Second, "every node compared a check with its peers", func() error {
		for _, n := range pc.d.status(t).Clusters[0].Nodes {
			if n.Alarm != "" || n.CheckMismatches != 0 || n.Quarantined {
				t.Fatalf("false alarm on a healthy cluster: node %d: %+v", n.ID, n)
			}
			if n.CheckCompared <= healthyAt {
				return fmt.Errorf("node %d compared up to index %d, want > %d (check index %d)", n.ID, n.CheckCompared, healthyAt, n.CheckIndex)
			}
		}
		return nil
	})

	// Diverge node 3.
	if _, err := c.Put(wctx, victim, []byte("same bytes everywhere")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var st *wire.Status
	eventually.Holds(t, 10*time.Second, "the consistency check names node 3", func() error {
		st = pc.d.status(t)
		var seen []string
		ok := true
		for _, n := range st.Clusters[0].Nodes {
			seen = append(seen, fmt.Sprintf("node %d: check %d compared %d alarm %q diverged %v quarantined %v",
				n.ID, n.CheckIndex, n.CheckCompared, n.Alarm, n.Diverged, n.Quarantined))
			ok = ok && n.Alarm != "" && slices.Equal(n.Diverged, []uint64{3}) && n.Quarantined == (n.ID == 3)
		}
		return eventually.True(ok, "%s", strings.Join(seen, "; "))
	})
	t.Logf("detected %v after the diverging write", time.Since(start).Round(time.Millisecond))
	for _, n := range st.Clusters[0].Nodes {
		t.Logf("node %d: %s", n.ID, n.Alarm)
		if n.CheckMismatches == 0 {
			t.Errorf("node %d: alarm raised but check_mismatches is 0", n.ID)
		}
	}

	// The table says it too.
	out, err := pc.d.cli(t, nil, "status")
	if err != nil {
		t.Fatalf("cleave status: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "quarantined") || !strings.Contains(string(out), "ALARM") {
		t.Errorf("cleave status does not show the alarm:\n%s", out)
	}
	t.Logf("cleave status:\n%s", out)

	// Node 3 refuses reads, stale ones included; a healthy node serves them.
	for _, id := range []uint64{3, 1} {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := callNode(rctx, pc.pool, pc.node(id).addr, &wire.Request{Op: wire.OpGet, Path: "/consistency/f1", Flags: wire.FlagStale})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case id == 3 && (resp.Code != wire.Unavailable || !strings.Contains(resp.Message, "quarantined")):
			t.Errorf("node 3 (diverged) answered a stale read %v %q, want UNAVAILABLE naming the quarantine", resp.Code, resp.Message)
		case id != 3 && resp.Code != wire.OK:
			t.Errorf("node %d (healthy) answered a stale read %v %q, want OK", id, resp.Code, resp.Message)
		}
	}
}
