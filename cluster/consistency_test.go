package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/wire"
)

func TestDecide(t *testing.T) {
	v3 := map[uint64]bool{1: true, 2: true, 3: true}
	cases := []struct {
		name     string
		hashes   map[uint64]string
		voters   map[uint64]bool
		members  int
		ok       bool
		diverged []uint64
		split    bool
	}{
		{"all agree", map[uint64]string{1: "a", 2: "a", 3: "a"}, v3, 3, true, nil, false},
		{"majority agrees, third not reported yet", map[uint64]string{1: "a", 2: "a"}, v3, 3, true, nil, false},
		{"one of two reported differs: wait", map[uint64]string{1: "a", 3: "b"}, v3, 3, false, nil, false},
		{"minority named", map[uint64]string{1: "a", 2: "a", 3: "b"}, v3, 3, true, []uint64{3}, false},
		{"diverged learner named", map[uint64]string{1: "a", 2: "a", 4: "b"}, v3, 4, true, []uint64{4}, false},
		{"three ways: no majority", map[uint64]string{1: "a", 2: "b", 3: "c"}, v3, 3, true, []uint64{1, 2, 3}, true},
		{"alone: nothing to compare", map[uint64]string{1: "a"}, v3, 3, false, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, ok := decide(tc.hashes, tc.voters, tc.members)
			if ok != tc.ok || !slices.Equal(v.diverged, tc.diverged) || v.split != tc.split {
				t.Fatalf("decide = %+v, %v; want diverged %v split %v, %v", v, ok, tc.diverged, tc.split, tc.ok)
			}
		})
	}
}

// TestWeighRemembersEarlierReports: a peer reports only its latest
// result, and replicas apply a check entry at different moments (a
// follower learns the commit with the next message, a tick later at
// most). Here node 3's rounds always fall where the leader (1) has
// already moved to the next check and the other follower (2) reports the
// one node 3 has just reached: each round alone holds two hashes that
// disagree, which decides nothing. With what earlier rounds reported,
// the next round has all three.
func TestWeighRemembersEarlierReports(t *testing.T) {
	c := &checker{n: &Node{cfg: Config{NodeID: 3}}, log: slog.New(slog.DiscardHandler)}
	voters := map[uint64]bool{1: true, 2: true, 3: true}
	members := voters
	c.results = []checkResult{{10, "good10"}, {21, "bad21"}}
	c.compared = 10
	c.weigh([]peerCheck{{1, 31, "good31"}, {2, 21, "good21"}}, voters, members)
	if c.compared != 10 || c.alarm != "" {
		t.Fatalf("decided %d (alarm %q) from two disagreeing hashes", c.compared, c.alarm)
	}
	c.results = append(c.results, checkResult{31, "bad31"})
	c.weigh([]peerCheck{{1, 41, "good41"}, {2, 31, "good31"}}, voters, members)
	if c.compared != 31 || !slices.Equal(c.diverged, []uint64{3}) || !c.quarantined {
		t.Fatalf("after the second round: compared %d, diverged %v, quarantined %v; want 31, [3], true", c.compared, c.diverged, c.quarantined)
	}
	if len(c.reports) != 1 || c.reports[41] == nil {
		t.Fatalf("kept the reports at %v, want only those at 41 (not decided yet)", slices.Sorted(maps.Keys(c.reports)))
	}
	// A newer index two members agree on does not pass over an older one
	// every member reported: 2 reports 41 now, 1 reported it before.
	c.results = append(c.results, checkResult{41, "bad41"}, checkResult{51, "good51"})
	c.weigh([]peerCheck{{1, 51, "good51"}, {2, 41, "good41"}}, voters, members)
	if c.compared != 41 || !slices.Equal(c.diverged, []uint64{3}) {
		t.Fatalf("decided %d (diverged %v), want 41 ([3]): the newest index every member reported", c.compared, c.diverged)
	}
	// A member that left no longer counts, whatever it reported before:
	// 1's report at 51 alone with this node's is one voter of two.
	c.weigh(nil, map[uint64]bool{2: true, 3: true}, map[uint64]bool{2: true, 3: true})
	if c.compared != 41 {
		t.Fatalf("decided %d from a report of a member that left", c.compared)
	}
}

// TestConsistencyCheckQuarantinesDivergedNode runs the check on three real
// nodes: healthy, they compare equal hashes; once node 3 rewrites an entry
// outside the log, every node names it, node 3 refuses reads, and its
// metrics say so.
func TestConsistencyCheckQuarantinesDivergedNode(t *testing.T) {
	mn := newMemberNet(t, 3)
	for id := uint64(1); id <= 3; id++ {
		cfg := mn.cfgs[id]
		cfg.CheckInterval = 100 * time.Millisecond
		if id == 3 {
			cfg.UnsafeDivergePath = "/r1/f1"
			cfg.HTTP = "127.0.0.1:0"
		}
		mn.cfgs[id] = cfg
	}
	for id := uint64(1); id <= 3; id++ {
		mn.start(id)
	}
	lead := mn.leader()
	for i := 2; i < 10; i++ {
		mn.put(lead, i)
	}
	var at uint64
	for _, n := range mn.nodes {
		at = max(at, n.Status().Applied)
	}
	eventually.Holds(t, 20*time.Second, "every node compared a check after the writes", func() error {
		for id, n := range mn.nodes {
			st := n.Status()
			if st.Alarm != "" || st.Quarantined || st.CheckMismatches != 0 {
				t.Fatalf("false alarm on node %d: %+v", id, st)
			}
			if st.CheckCompared <= at {
				return fmt.Errorf("node %d compared up to %d, want > %d", id, st.CheckCompared, at)
			}
		}
		return nil
	})

	mn.put(lead, 1) // /r1/f1: node 3 diverges
	eventually.Holds(t, 20*time.Second, "every node names node 3", func() error {
		for id, n := range mn.nodes {
			st := n.Status()
			if !slices.Equal(st.Diverged, []uint64{3}) || st.Quarantined != (id == 3) || st.Alarm == "" {
				return fmt.Errorf("node %d: alarm %q diverged %v quarantined %v", id, st.Alarm, st.Diverged, st.Quarantined)
			}
		}
		return nil
	})
	for _, id := range []uint64{3, 1} {
		resp := mn.call(id, &wire.Request{Op: wire.OpGet, Path: "/r2/f2", Flags: wire.FlagStale})
		if id == 3 && (resp.Code != wire.Unavailable || !strings.Contains(resp.Message, "quarantined")) {
			t.Errorf("node 3 answered a read %v %q, want UNAVAILABLE (quarantined)", resp.Code, resp.Message)
		}
		if id == 1 && resp.Code != wire.OK {
			t.Errorf("node 1 answered a read %v %q, want OK", resp.Code, resp.Message)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+mn.nodes[3].HTTPAddr()+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"cleave_node_consistency_alarm 1", "cleave_node_consistency_quarantined 1"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(string(body), "cleave_node_consistency"))
		}
	}
	if strings.Contains(string(body), "cleave_node_consistency_mismatch_total 0\n") || !strings.Contains(string(body), "cleave_node_consistency_mismatch_total") {
		t.Errorf("mismatch counter not raised:\n%s", grepLines(string(body), "cleave_node_consistency"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
