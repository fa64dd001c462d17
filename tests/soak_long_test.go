//go:build long

package tests

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestSoak is the randomized soak of `make test-long`: one cluster of three
// nodes (each in its own network namespace when `ip netns` works) and a
// router under six clients for CLEAVE_SOAK_DURATION (default 5m), with one
// fault after another drawn from every kind the harness has: kill -9 of
// the leader, a follower or the router (restarted after), SIGSTOP pauses
// of the leader or a follower, partitions (isolate the leader; a 2|1 split
// that also cuts the router off) and a wiped follower replaced by a new
// node that rejoins by snapshot (`cleave node replace` through the SDK).
// Each fault lasts 1-4 s and is healed before the next. The fault
// sequence is drawn from the printed seed (CLEAVE_SEED replays it; timing
// is the machine's). The history is checked with porcupine; a failing run
// saves the visualization under testdata/out/TestSoak.
func TestSoak(t *testing.T) {
	dur := 5 * time.Minute
	if s := os.Getenv("CLEAVE_SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("CLEAVE_SOAK_DURATION=%q: want a duration such as 5m", s)
		}
		dur = d
	}
	seed := scheduleSeed(t)
	lab, why := openNetLab(t)
	if lab == nil {
		t.Logf("no partition faults in this soak: %s", why)
	}
	pc := startProcCluster(t, 3, lab, 200) // short log: wiped nodes rejoin by snapshot
	t.Logf("soak for %v, seed %d (rerun with CLEAVE_SEED=%d)", dur, seed, seed)
	kinds := soakFaults(pc)
	counts := map[string]int{}
	sequence := fault{name: "soak", inject: func(t *testing.T, _ *deployment, rng *rand.Rand) func() {
		end := time.Now().Add(dur)
		for i := 0; time.Now().Before(end); i++ {
			f := kinds[rng.IntN(len(kinds))]
			hold := time.Second + time.Duration(rng.IntN(3000))*time.Millisecond
			t.Logf("fault %d: %s for %v", i, f.name, hold)
			heal := f.inject(t, pc, rng)
			time.Sleep(hold) // how long the fault lasts, not a wait for anything
			if heal != nil {
				heal()
			}
			counts[f.name]++
			pc.waitRouter(60 * time.Second)
			pc.d.waitLeaders(t, 60*time.Second)
			time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond) // healthy load between faults
		}
		t.Logf("faults injected: %v", counts)
		return nil
	}}
	ops := runScheduleRoots(t, pc.d, sequence, seed, 8*time.Second, 32)
	requireLinearizable(t, "soak", seed, ops)
}

// soakFault is one kind of fault of the soak: inject does it and returns
// how to undo it (nil: nothing to undo).
type soakFault struct {
	name   string
	inject func(t *testing.T, pc *procCluster, rng *rand.Rand) func()
}

func soakFaults(pc *procCluster) []soakFault {
	fs := []soakFault{
		{"kill-leader", func(t *testing.T, pc *procCluster, _ *rand.Rand) func() {
			id := pc.leader(30 * time.Second)
			pc.node(id).kill()
			return func() { pc.restart(id) }
		}},
		{"kill-follower", func(t *testing.T, pc *procCluster, rng *rand.Rand) func() {
			id := pc.follower(rng, 30*time.Second)
			pc.node(id).kill()
			return func() { pc.restart(id) }
		}},
		{"kill-router", func(t *testing.T, pc *procCluster, _ *rand.Rand) func() {
			pc.router.kill()
			return func() { pc.start(pc.router) }
		}},
		{"pause-leader", func(t *testing.T, pc *procCluster, _ *rand.Rand) func() {
			p := pc.node(pc.leader(30 * time.Second)).cmd.Process
			p.Signal(syscall.SIGSTOP)
			return func() { p.Signal(syscall.SIGCONT) }
		}},
		{"pause-follower", func(t *testing.T, pc *procCluster, rng *rand.Rand) func() {
			p := pc.node(pc.follower(rng, 30*time.Second)).cmd.Process
			p.Signal(syscall.SIGSTOP)
			return func() { p.Signal(syscall.SIGCONT) }
		}},
		{"wipe-follower", func(t *testing.T, pc *procCluster, rng *rand.Rand) func() {
			pc.wipeAndReplace(t, pc.follower(rng, 30*time.Second))
			return nil
		}},
	}
	if pc.lab != nil {
		fs = append(fs,
			soakFault{"isolate-leader", func(t *testing.T, pc *procCluster, _ *rand.Rand) func() {
				pc.lab.isolate(t, pc.leader(30*time.Second), pc.ids(), false)
				return func() { pc.lab.heal(t) }
			}},
			soakFault{"split-2-1", func(t *testing.T, pc *procCluster, rng *rand.Rand) func() {
				ids := pc.ids()
				pc.lab.isolate(t, ids[rng.IntN(len(ids))], ids, true)
				return func() { pc.lab.heal(t) }
			}})
	}
	return fs
}

// wipeAndReplace kills node dead, deletes its disk and replaces it with a
// new node (the next id) that joins empty, through client.ReplaceNode.
func (pc *procCluster) wipeAndReplace(t *testing.T, dead uint64) {
	t.Helper()
	pc.wipe(t, dead)
	peers, next := pc.peersExcept(dead), slices.Max(pc.ids())
	pc.forget(dead)
	nn := pc.joinNode(next+1, peers)
	c := pc.d.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if _, err := c.ReplaceNode(ctx, clusterID, dead, nn.id, nn.addr, nil); err != nil {
		t.Fatalf("replace %d by %d: %v", dead, nn.id, err)
	}
	t.Logf("node %d wiped and replaced by %d in %v", dead, nn.id, time.Since(start).Round(time.Millisecond))
}
