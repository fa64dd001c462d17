package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
)

// partitionFaults are the network partitions of the robustness suite, real
// at the socket level (netlab_test.go): every node of one cluster runs in
// its own network namespace, and a cut drops the packets between two hosts.
func partitionFaults(pc *procCluster) []fault {
	return []fault{
		// The leader loses its peers but the router still reaches it: it
		// must stop acknowledging (CheckQuorum) and never serve a stale
		// read, while the other two elect a leader the router finds.
		{"isolate-leader", func(t *testing.T, _ *deployment, _ *rand.Rand) func() {
			lead := pc.leader(20 * time.Second)
			t.Logf("partition: leader %d cut from its peers (the router still reaches it)", lead)
			start := time.Now()
			pc.lab.isolate(t, lead, pc.ids(), false)
			nl := pc.leaderOtherThan(t, lead, 15*time.Second)
			t.Logf("node %d leads the majority side %v after the cut", nl, time.Since(start).Round(time.Millisecond))
			pc.waitNotLeader(t, lead, 15*time.Second)
			t.Logf("old leader %d stepped down %v after the cut", lead, time.Since(start).Round(time.Millisecond))
			return func() { t.Logf("partition healed"); pc.lab.heal(t) }
		}},
		// A 2|1 split of the cluster in which the one side also loses the
		// router and the clients: any node, the leader included.
		{"split-2-1", func(t *testing.T, _ *deployment, rng *rand.Rand) func() {
			ids := pc.ids()
			lone := ids[rng.IntN(len(ids))]
			lead := pc.leader(20 * time.Second)
			t.Logf("partition: node %d (leader: %v) alone, cut from its peers and the router", lone, lone == lead)
			start := time.Now()
			pc.lab.isolate(t, lone, ids, true)
			nl := pc.leaderOtherThan(t, lone, 15*time.Second)
			t.Logf("node %d leads the majority side %v after the cut", nl, time.Since(start).Round(time.Millisecond))
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := pc.nodeStatus(ctx, pc.node(lone).addr, false)
			cancel()
			if err == nil {
				t.Fatalf("node %d still answers the test process after it was cut off", lone)
			}
			return func() { t.Logf("partition healed"); pc.lab.heal(t) }
		}},
	}
}

// leaderOtherThan waits until a node other than not answers as leader.
func (pc *procCluster) leaderOtherThan(t *testing.T, not uint64, timeout time.Duration) uint64 {
	t.Helper()
	var lead uint64
	eventually.Holds(t, timeout, fmt.Sprintf("a leader other than %d", not), func() error {
		others := slices.DeleteFunc(pc.ids(), func(id uint64) bool { return id == not })
		var seen []string
		lead, seen = pc.leaderAmong(others, 300*time.Millisecond)
		return eventually.True(lead != 0, "%v", seen)
	})
	return lead
}

// waitNotLeader waits until node id (reachable) no longer says it leads.
func (pc *procCluster) waitNotLeader(t *testing.T, id uint64, timeout time.Duration) {
	t.Helper()
	eventually.Holds(t, timeout, fmt.Sprintf("node %d, cut from its peers, no longer leading", id), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		st, err := pc.nodeStatus(ctx, pc.node(id).addr, false)
		cancel()
		if err != nil {
			return err
		}
		return eventually.True(st.Role != "leader", "%+v", st)
	})
}

// TestPartitions runs the partition schedules against one cluster of
// three nodes in network namespaces, checking each history with porcupine
// and reading back every key afterwards (runSchedule).
func TestPartitions(t *testing.T) {
	skipInShortMode(t, "robustness schedules")
	lab := newNetLab(t)
	pc := startProcCluster(t, 3, lab, 0)
	seed := scheduleSeed(t)
	dur := scheduleDuration(14 * time.Second)
	for i, f := range partitionFaults(pc) {
		t.Run(f.name, func(t *testing.T) {
			ops := runSchedule(t, pc.d, f, seed+uint64(i), dur)
			requireLinearizable(t, f.name, seed+uint64(i), ops)
		})
	}
}
