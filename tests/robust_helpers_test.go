package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

// Helpers shared by the robustness schedules (robust_*_test.go,
// partition_test.go, soak_long_test.go): talking to a node directly,
// comparing the replicas' state at the end, a schedule's seed and length,
// a split's progress.

// callNode sends req to the node at addr directly (not through a router).
func callNode(ctx context.Context, pool *rpc.Pool, addr string, req *wire.Request) (*wire.Response, error) {
	conn, err := pool.Get(ctx, addr)
	if err != nil {
		return nil, err
	}
	resp, err := conn.Call(ctx, req)
	if err != nil {
		pool.Drop(addr, conn)
		return nil, err
	}
	return resp, nil
}

// statusOf asks the node at addr for its status, waiting at most 5 s;
// with checksum set it includes the state checksum.
func statusOf(pool *rpc.Pool, addr string, checksum bool) (*wire.NodeStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return askStatus(ctx, pool, addr, checksum)
}

// askStatus asks the node at addr for its status; with checksum set it
// includes the state checksum.
func askStatus(ctx context.Context, pool *rpc.Pool, addr string, checksum bool) (*wire.NodeStatus, error) {
	req := &wire.Request{Op: wire.OpStatus}
	if checksum {
		req.Flags |= wire.FlagChecksum
	}
	resp, err := callNode(ctx, pool, addr, req)
	if err != nil {
		return nil, err
	}
	if resp.Node == nil {
		return nil, resp.Err()
	}
	return resp.Node, nil
}

// clusterAddrs lists the members of every cluster of d, as its status
// reports them.
func clusterAddrs(t *testing.T, d *deployment) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, c := range d.status(t).Clusters {
		for _, n := range c.Nodes {
			out[c.ID] = append(out[c.ID], n.Addr)
		}
	}
	return out
}

// requireEqualChecksums waits until the replicas of each cluster (its
// members' addresses) report their state at one applied index, and fails
// t if their checksums differ there. It is called after the load stopped,
// so the members meet at the last index. Every member must take part: a
// replica that never catches up fails the wait.
func requireEqualChecksums(t *testing.T, pool *rpc.Pool, clusters map[string][]string, timeout time.Duration) {
	t.Helper()
	ids := make([]string, 0, len(clusters))
	for id := range clusters {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		addrs := clusters[id]
		eventually.Holds(t, timeout, fmt.Sprintf("the %d replicas of %s at one applied index", len(addrs), id), func() error {
			agreed, err := equalChecksums(pool, addrs)
			var d *divergence
			if errors.As(err, &d) {
				t.Fatalf("cluster %s: replicas at applied index %d hold different state: %s", id, d.index, d.seen)
			}
			if err == nil {
				t.Logf("cluster %s: %d replicas agree: %s", id, len(addrs), agreed)
			}
			return err
		})
	}
}

// divergence is replicas at one applied index with different checksums.
type divergence struct {
	index uint64
	seen  string
}

func (d *divergence) Error() string {
	return fmt.Sprintf("different state at applied index %d: %s", d.index, d.seen)
}

// equalChecksums asks the nodes at addrs for their state checksums: nil
// and what they agree on if all are at one applied index with one
// checksum, a *divergence if they are at one index with different
// checksums, else an error saying what was seen.
func equalChecksums(pool *rpc.Pool, addrs []string) (string, error) {
	var seen []string
	sums := map[string]bool{}
	indexes := map[uint64]bool{}
	var index uint64
	var sum string
	for _, a := range addrs {
		st, err := statusOf(pool, a, true)
		if err != nil {
			return "", fmt.Errorf("%s: %v (seen: %s)", a, err, strings.Join(seen, "; "))
		}
		if st.Checksum == "" {
			return "", fmt.Errorf("%s: no checksum (seen: %s)", a, strings.Join(seen, "; "))
		}
		seen = append(seen, fmt.Sprintf("node %d at %d: %s", st.ID, st.ChecksumIndex, st.Checksum))
		indexes[st.ChecksumIndex] = true
		index = st.ChecksumIndex
		sums[st.Checksum] = true
		sum = st.Checksum
	}
	switch {
	case len(indexes) > 1:
		return "", fmt.Errorf("not at one index: %s", strings.Join(seen, "; "))
	case len(sums) > 1:
		return "", &divergence{index: index, seen: strings.Join(seen, "; ")}
	}
	return fmt.Sprintf("applied index %d, %s", index, sum), nil
}

// scheduleSeed is the seed of a schedule's random choices: CLEAVE_SEED if
// set, else the clock.
func scheduleSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("CLEAVE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CLEAVE_SEED=%q: %v", s, err)
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}

// scheduleDuration is def unless CLEAVE_SCHEDULE_SECONDS sets it.
func scheduleDuration(def time.Duration) time.Duration {
	if s := os.Getenv("CLEAVE_SCHEDULE_SECONDS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	}
	return def
}

// waitSplit polls the deployment's splits until split number n (1 is the
// first) exists and ok holds for it, and returns it.
func waitSplit(t *testing.T, c *client.Client, n int, timeout time.Duration, what string, ok func(client.SplitStatus) bool) client.SplitStatus {
	t.Helper()
	var last client.SplitStatus
	eventually.Holds(t, timeout, what, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		splits, err := c.Splits(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("phase %q, then %w", last.Phase, err)
		}
		if len(splits) < n {
			return fmt.Errorf("%d splits recorded, waiting for split %d", len(splits), n)
		}
		last = splits[n-1]
		return eventually.True(ok(last), "split %d: phase %q (%s)", n, last.Phase, last.Error)
	})
	return last
}
