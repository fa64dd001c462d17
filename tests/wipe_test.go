package tests

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/wire"
)

// TestWipedFollowerRejoinsBySnapshot: a
// follower's process is killed and its disk wiped while clients write; the
// node is replaced (`cleave node replace`: a new id, an empty disk,
// --join) and, since the leader's log was compacted past everything the
// new node lacks, rejoins by snapshot. Afterwards it holds the same state
// as the leader (equal checksums at the same applied index), is a voter
// that the cluster needs for a quorum, and every acknowledged write is
// readable.
func TestWipedFollowerRejoinsBySnapshot(t *testing.T) {
	skipInShortMode(t, "multi-process test")
	pc := startProcCluster(t, 3, nil, 32) // a short log: compaction comes soon
	c := pc.d.dial(t)
	ctx := context.Background()

	// Writers run through the whole test; every acknowledged value is
	// remembered as the file's last one (each writer owns its files).
	var (
		stop  atomic.Bool
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked = map[string]string{}
		fails atomic.Int64
	)
	mctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	if err := c.MkdirAll(mctx, "/wipe"); err != nil {
		t.Fatal(err)
	}
	cancel()
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				p := fmt.Sprintf("/wipe/w%d-%d", w, i%50)
				v := fmt.Sprintf("w%d-%d-%s", w, i, strings.Repeat("x", i%300))
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := c.Put(wctx, p, []byte(v))
				cancel()
				mu.Lock()
				if err == nil {
					acked[p] = v
				} else {
					fails.Add(1)
					delete(acked, p) // outcome unknown: not checked below
				}
				mu.Unlock()
			}
		})
	}
	defer func() { stop.Store(true); wg.Wait() }()

	// Wait until the leader has compacted its log well past index 1.
	lead := pc.leader(30 * time.Second)
	var lst *wire.NodeStatus
	eventually.Holds(t, 60*time.Second, "the leader's log compacted", func() error {
		st, err := pc.nodeStatus(ctx, pc.node(lead).addr, false)
		if err != nil {
			return err
		}
		lst = st
		return eventually.True(st.LogFirst > 200, "%+v", st)
	})
	t.Logf("leader %d: log starts at %d, commit %d", lead, lst.LogFirst, lst.Commit)

	// Kill a follower and wipe its disk.
	var dead uint64
	for _, id := range pc.ids() {
		if id != lead {
			dead = id
			break
		}
	}
	dn := pc.wipe(t, dead)
	t.Logf("killed follower %d and wiped %s", dead, dn.data)

	// Replace it: a new node (id 4) with an empty disk, joining.
	const newID = 4
	nn := pc.joinNode(newID, pc.peersExcept(dead))
	start := time.Now()
	out, err := pc.d.cli(t, nil, "--timeout", "60s", "node", "replace", "--cluster", clusterID,
		"--dead", fmt.Sprint(dead), "--id", fmt.Sprint(newID), "--addr", nn.addr, "--peer-addr", nn.peer)
	if err != nil {
		t.Fatalf("cleave node replace: %v\n%s", err, out)
	}
	t.Logf("cleave node replace took %v:\n%s", time.Since(start).Round(time.Millisecond), out)

	// The routing table lists the new voters.
	want := slices.DeleteFunc(append([]uint64{newID}, pc.ids()...), func(id uint64) bool { return id == dead })
	slices.Sort(want)
	if ids := tableMembers(t, c); !slices.Equal(ids, slices.Compact(want)) {
		t.Fatalf("routing table lists members %v, want %v", ids, want)
	}

	// The new node was filled by a snapshot: its own log starts after
	// entries the leader had already dropped.
	st, err := pc.nodeStatus(ctx, nn.addr, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.LogFirst <= lst.LogFirst {
		t.Fatalf("new node's log starts at %d, not after the leader's compacted prefix (%d): no snapshot?", st.LogFirst, lst.LogFirst)
	}
	t.Logf("new node %d: role %s, log starts at %d (leader had compacted below %d), applied %d", newID, st.Role, st.LogFirst, lst.LogFirst, st.Applied)

	// The cluster now needs the new node: with the other old member
	// stopped, writes still commit on {leader, new node}.
	lead = pc.leader(20 * time.Second)
	var other uint64
	for _, id := range pc.ids() {
		if id != lead && id != newID && id != dead {
			other = id
		}
	}
	if other != 0 {
		pc.node(other).kill()
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err := c.Put(wctx, "/wipe/quorum", []byte("with the new node"))
		cancel()
		if err != nil {
			t.Fatalf("write with node %d stopped (quorum needs new node %d): %v", other, newID, err)
		}
		pc.restart(other)
	}
	stop.Store(true)
	wg.Wait()

	// Equal state: checksums of the leader and the new node at the same
	// applied index (no writes run now, so they meet).
	eventually.Holds(t, 30*time.Second, "the leader and the new node at the same applied index", func() error {
		ls, err1 := pc.nodeStatus(ctx, pc.node(pc.leader(10*time.Second)).addr, true)
		ns, err2 := pc.nodeStatus(ctx, nn.addr, true)
		if err1 == nil && err2 == nil && ls.ChecksumIndex == ns.ChecksumIndex && ls.Checksum != "" {
			if ls.Checksum != ns.Checksum {
				t.Fatalf("at applied index %d the leader's state is %s, the new node's %s", ls.ChecksumIndex, ls.Checksum, ns.Checksum)
			}
			t.Logf("leader %d and new node %d agree at applied index %d: %s", ls.ID, ns.ID, ns.ChecksumIndex, ns.Checksum)
			return nil
		}
		return fmt.Errorf("%+v %v / %+v %v", ls, err1, ns, err2)
	})

	// Every acknowledged write is there.
	mu.Lock()
	defer mu.Unlock()
	for p, v := range acked {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		b, err := c.Get(rctx, p)
		cancel()
		if err != nil || string(b) != v {
			t.Fatalf("acknowledged %s = %.20q…, read %.20q…, %v", p, v, b, err)
		}
	}
	t.Logf("%d acknowledged files read back; %d writes had unknown outcomes", len(acked), fails.Load())
}

// A node whose disk was replaced comes back at its old addresses under a
// new id, as a Kubernetes pod does on a new volume. `cleave node replace`
// puts it in place of the old id: the old one is removed first, since two
// members of a cluster may not share an address (the routing table
// refuses it), and every acknowledged file reads back.
func TestWipedNodeReplacedAtItsAddress(t *testing.T) {
	skipInShortMode(t, "multi-process test")
	pc := startProcCluster(t, 3, nil, 0)
	c := pc.d.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	files := map[string]string{}
	put := func(prefix string) {
		for i := range 10 {
			p, v := fmt.Sprintf("/same/%s-%d", prefix, i), fmt.Sprintf("%s %d", prefix, i)
			if _, err := c.Put(ctx, p, []byte(v), client.Parents()); err != nil {
				t.Fatalf("put %s: %v", p, err)
			}
			files[p] = v
		}
	}
	put("before")
	lead := pc.leader(30 * time.Second)
	dead := pc.ids()[0]
	if dead == lead {
		dead = pc.ids()[1]
	}
	dn := pc.wipe(t, dead)
	pc.forget(dead)
	put("while-down")

	const newID = 4
	nn := &procNode{id: newID, addr: dn.addr, peer: dn.peer, data: filepath.Join(pc.dir, "n4")}
	nn.name = "node4"
	nn.argv = pc.nodeArgv(nn, strings.Join(append([]string{nn.peerFlag()}, pc.peersExcept(dead)...), ","), true)
	pc.mu.Lock()
	pc.nodes[newID] = nn
	pc.mu.Unlock()
	pc.start(&nn.proc)
	out, err := pc.d.cli(t, nil, "--timeout", "60s", "node", "replace", "--cluster", clusterID,
		"--dead", fmt.Sprint(dead), "--id", fmt.Sprint(newID), "--addr", nn.addr, "--peer-addr", nn.peer)
	if err != nil {
		t.Fatalf("cleave node replace at the dead node's address: %v\n%s", err, out)
	}
	t.Logf("cleave node replace:\n%s", out)

	if ids, want := tableMembers(t, c), pc.ids(); !slices.Equal(ids, want) {
		t.Fatalf("routing table lists members %v, want %v", ids, want)
	}
	put("after")
	eventually.Holds(t, 30*time.Second, "the new node applied what the leader did", func() error {
		ls, err1 := pc.nodeStatus(ctx, pc.node(pc.leader(10*time.Second)).addr, false)
		ns, err2 := pc.nodeStatus(ctx, nn.addr, false)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("%v / %v", err1, err2)
		}
		return eventually.True(ns.ID == newID && ns.Applied >= ls.Applied, "node %d applied %d, leader %d", ns.ID, ns.Applied, ls.Applied)
	})
	for p, v := range files {
		b, err := c.Get(ctx, p)
		if err != nil || string(b) != v {
			t.Fatalf("%s = %q, read %q, %v", p, v, b, err)
		}
	}
}

// tableMembers returns the ids of the first cluster's members in the
// routing table, sorted.
func tableMembers(t *testing.T, c *client.Client) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tbl, err := c.Table(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, m := range tbl.Clusters[0].Members {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}
