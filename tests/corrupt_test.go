package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cleavefs/cleave/cluster"
	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/internal/testcluster"
	"github.com/cleavefs/cleave/replica"
	"github.com/cleavefs/cleave/wire"
)

// TestCorruptChunk checks chunk repair: a byte flipped in a chunk
// stored on one replica's disk is never returned as data. It runs one
// cluster of three in-process nodes with 64 KiB chunks, stops nodes, opens
// their Pebble directly and flips one byte of a stored chunk value (key
// "s/c/" + SHA-256, cluster/fsm.go) — a flipped byte at rest as the file
// state machine sees it (a flip inside an SST block would be caught by
// Pebble's block checksum first) — and restarts them. Then:
//
//   - a stale read through the damaged follower returns the right bytes:
//     the node fetched the chunk from another member and rewrote its copy;
//   - a chunk damaged on every replica fails the read INTERNAL, naming the
//     chunk, and never returns data;
//   - with the scrubber on, the damaged follower reports the chunk
//     (NodeStatus.ScrubCorrupt via STATUS), repairs it, and its next passes
//     find nothing.
func TestCorruptChunk(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := startCorruptCluster(t)

	const bs = 64 << 10
	rng := mrand.NewChaCha8([32]byte{7})
	fileA := make([]byte, 6*bs-100) // six blocks, the last one short
	fileB := make([]byte, 5*bs)
	rng.Read(fileA)
	rng.Read(fileB)
	c.put(t, ctx, "/r/a", fileA)
	c.put(t, ctx, "/r/b", fileB)
	c.waitApplied(t, ctx)

	// Phase 1, scrubbers off: block 4 of a rots on every replica, block 1
	// of b on the follower f only.
	lead := c.leader(t, ctx)
	f := (lead + 1) % 3
	hA4, hB1 := chunkName(fileA[4*bs:5*bs]), chunkName(fileB[1*bs:2*bs])
	for i := range c.cfgs {
		c.stop(i)
		flipChunkByte(t, c.cfgs[i], fileA[4*bs:5*bs])
		if i == f {
			flipChunkByte(t, c.cfgs[i], fileB[1*bs:2*bs])
		}
	}
	for i := range c.cfgs {
		c.start(t, i, 0)
	}
	lead = c.leader(t, ctx)

	got, resp := c.get(t, ctx, f, "/r/b", true)
	if resp.Code != wire.OK || !bytes.Equal(got, fileB) {
		t.Fatalf("stale GET of b through node %d (chunk %s flipped on its disk): %v %q, %d bytes, equal %v",
			c.cfgs[f].NodeID, hB1, resp.Code, resp.Message, len(got), bytes.Equal(got, fileB))
	}
	if st := c.status(t, ctx, f); st.ChunksRepaired != 1 {
		t.Errorf("node %d repaired %d chunks on read, want 1", st.ID, st.ChunksRepaired)
	}
	for _, at := range []struct {
		node  int
		stale bool
	}{{lead, false}, {f, true}} {
		data, resp := c.get(t, ctx, at.node, "/r/a", at.stale)
		if resp.Code != wire.Internal || !strings.Contains(resp.Message, hA4) || data != nil {
			t.Errorf("GET of a through node %d (chunk %s flipped on every replica): %v %q, %d bytes; want INTERNAL naming the chunk, no data",
				c.cfgs[at.node].NodeID, hA4, resp.Code, resp.Message, len(data))
		}
		t.Logf("node %d, every copy bad: %v %s", c.cfgs[at.node].NodeID, resp.Code, resp.Message)
	}
	if resp := c.call(t, ctx, lead, &wire.Request{Op: wire.OpRemove, Path: "/r/a"}); resp.Code != wire.OK {
		t.Fatalf("rm /r/a: %v %s", resp.Code, resp.Message) // drops the unrepairable chunk everywhere
	}
	c.waitApplied(t, ctx)

	// Phase 2: block 2 of b rots on f; f restarts with its scrubber on.
	hB2 := chunkName(fileB[2*bs : 3*bs])
	c.stop(f)
	flipChunkByte(t, c.cfgs[f], fileB[2*bs:3*bs])
	c.start(t, f, 64<<20)
	st := c.waitStatus(t, ctx, f, "the scrubber to report and repair "+hB2, func(st *wire.NodeStatus) bool {
		return st.ScrubCorrupt >= 1 && st.ChunksRepaired >= 1
	})
	t.Logf("node %d after the first pass: checked %d, corrupt %d, repaired %d, passes %d", st.ID, st.ScrubChecked, st.ScrubCorrupt, st.ChunksRepaired, st.ScrubPasses)
	if st.ScrubCorrupt != 1 || st.RepairFailed != 0 {
		t.Errorf("scrubber found %d corrupt chunks (%d not repaired), want 1 (%s), repaired", st.ScrubCorrupt, st.RepairFailed, hB2)
	}
	after := c.waitStatus(t, ctx, f, "two more scrub passes", func(s *wire.NodeStatus) bool { return s.ScrubPasses >= st.ScrubPasses+2 })
	if after.ScrubCorrupt != st.ScrubCorrupt {
		t.Errorf("scrub passes after the repair found %d more corrupt chunks", after.ScrubCorrupt-st.ScrubCorrupt)
	}
	if got, resp := c.get(t, ctx, f, "/r/b", true); resp.Code != wire.OK || !bytes.Equal(got, fileB) {
		t.Errorf("stale GET of b through node %d after the scrubber's repair: %v %q, equal %v", c.cfgs[f].NodeID, resp.Code, resp.Message, bytes.Equal(got, fileB))
	}
	if st := c.status(t, ctx, f); st.ChunksRepaired != 1 {
		t.Errorf("the read after the scrubber's repair repaired again: %d repairs", st.ChunksRepaired)
	}
}

// testLogger discards logs unless CLEAVE_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("CLEAVE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// chunkName is the name of the chunk holding b.
func chunkName(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

// flipChunkByte flips one byte in the middle of the stored chunk holding
// block (which must exist) in the stopped node's Pebble.
func flipChunkByte(t *testing.T, cfg cluster.Config, block []byte) {
	t.Helper()
	sum := sha256.Sum256(block)
	key := append([]byte("s/c/"), sum[:]...)
	db, err := pebble.Open(filepath.Join(cfg.DataDir, "db"), &pebble.Options{Logger: replica.PebbleLogger(testLogger())})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, closer, err := db.Get(key)
	if err != nil {
		t.Fatalf("node %d: chunk %s: %v", cfg.NodeID, chunkName(block), err)
	}
	bad := bytes.Clone(v)
	closer.Close()
	if !bytes.Equal(bad, block) {
		t.Fatalf("node %d: chunk %s does not hold the block before the flip", cfg.NodeID, chunkName(block))
	}
	bad[len(bad)/2] ^= 0x01
	if err := db.Set(key, bad, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// corruptCluster is three in-process nodes that a test stops and restarts
// on the same data directories and addresses.
type corruptCluster struct {
	cfgs  []cluster.Config
	nodes []*cluster.Node
	pool  *rpc.Pool
}

func startCorruptCluster(t *testing.T) *corruptCluster {
	t.Helper()
	c := &corruptCluster{pool: rpc.NewPool(rpc.DialConfig{Client: "corrupt-test"})}
	t.Cleanup(c.pool.Close)
	addrs, peers := map[uint64]string{}, map[uint64]string{}
	for id := uint64(1); id <= 3; id++ {
		for _, m := range []map[uint64]string{addrs, peers} {
			addr, err := testcluster.FreeAddr()
			if err != nil {
				t.Fatal(err)
			}
			m[id] = addr
		}
	}
	dir := t.TempDir()
	for id := uint64(1); id <= 3; id++ {
		cfg := cluster.DefaultConfig()
		cfg.NodeID, cfg.ClusterID, cfg.Listen, cfg.Peers, cfg.Clients = id, "c1", addrs[id], peers, addrs
		cfg.DataDir = filepath.Join(dir, "n"+strconv.FormatUint(id, 10))
		cfg.ChunkSize = 64 << 10
		cfg.ScrubRate = 0
		cfg.Logger = testLogger()
		c.cfgs = append(c.cfgs, cfg)
		c.nodes = append(c.nodes, nil)
	}
	for i := range c.cfgs {
		c.start(t, i, 0)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	return c
}

func (c *corruptCluster) start(t *testing.T, i int, scrubRate int64) {
	t.Helper()
	cfg := c.cfgs[i]
	cfg.ScrubRate = scrubRate
	n, err := cluster.Start(cfg)
	if err != nil {
		t.Fatalf("start node %d: %v", cfg.NodeID, err)
	}
	c.nodes[i] = n
}

func (c *corruptCluster) stop(i int) {
	if c.nodes[i] != nil {
		c.nodes[i].Close()
		c.nodes[i] = nil
	}
}

// untilDone is how long ctx has left: the tests here bound every wait by
// the test's context.
func untilDone(ctx context.Context) time.Duration {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Minute
	}
	return time.Until(d)
}

// call sends req to node i, redialling while the connection fails (a
// restarted node's old connection).
func (c *corruptCluster) call(t *testing.T, ctx context.Context, i int, req *wire.Request) *wire.Response {
	t.Helper()
	var resp *wire.Response
	eventually.Holds(t, untilDone(ctx), fmt.Sprintf("%v to node %d", req.Op, c.cfgs[i].NodeID), func() error {
		conn, err := c.pool.Get(ctx, c.cfgs[i].Listen)
		if err != nil {
			return err
		}
		if resp, err = conn.Call(ctx, req); err != nil {
			c.pool.Drop(c.cfgs[i].Listen, conn)
		}
		return err
	})
	return resp
}

// leader waits for a leader and returns its index.
func (c *corruptCluster) leader(t *testing.T, ctx context.Context) int {
	t.Helper()
	lead := -1
	eventually.Holds(t, untilDone(ctx), "a leader", func() error {
		for i, n := range c.nodes {
			if n != nil && n.Status().Role == "leader" {
				lead = i
				return nil
			}
		}
		return errors.New("no node answers as leader")
	})
	return lead
}

func (c *corruptCluster) put(t *testing.T, ctx context.Context, path string, data []byte) {
	t.Helper()
	eventually.Holds(t, untilDone(ctx), "put "+path, func() error {
		resp := c.call(t, ctx, c.leader(t, ctx), &wire.Request{Op: wire.OpPut, Path: path, Data: data, Flags: wire.FlagParents})
		switch resp.Code {
		case wire.OK:
			return nil
		case wire.NotLeader, wire.Unavailable:
			return resp.Err()
		}
		t.Fatalf("put %s: %v %s", path, resp.Code, resp.Message)
		return nil
	})
}

// get reads path through node i (stale: from its local state).
func (c *corruptCluster) get(t *testing.T, ctx context.Context, i int, path string, stale bool) ([]byte, *wire.Response) {
	t.Helper()
	req := &wire.Request{Op: wire.OpGet, Path: path}
	if stale {
		req.Flags |= wire.FlagStale
	}
	resp := c.call(t, ctx, i, req)
	return resp.Data, resp
}

func (c *corruptCluster) status(t *testing.T, ctx context.Context, i int) *wire.NodeStatus {
	t.Helper()
	resp := c.call(t, ctx, i, &wire.Request{Op: wire.OpStatus})
	if resp.Code != wire.OK || resp.Node == nil {
		t.Fatalf("status of node %d: %v %s", c.cfgs[i].NodeID, resp.Code, resp.Message)
	}
	return resp.Node
}

func (c *corruptCluster) waitStatus(t *testing.T, ctx context.Context, i int, what string, ok func(*wire.NodeStatus) bool) *wire.NodeStatus {
	t.Helper()
	var st *wire.NodeStatus
	eventually.Holds(t, untilDone(ctx), fmt.Sprintf("node %d: %s", c.cfgs[i].NodeID, what), func() error {
		st = c.status(t, ctx, i)
		return eventually.True(ok(st), "status %+v", st)
	})
	return st
}

// waitApplied waits until every node has applied the leader's commit index.
func (c *corruptCluster) waitApplied(t *testing.T, ctx context.Context) {
	t.Helper()
	commit := c.nodes[c.leader(t, ctx)].Status().Commit
	for i := range c.nodes {
		c.waitStatus(t, ctx, i, "apply up to "+strconv.FormatUint(commit, 10), func(st *wire.NodeStatus) bool { return st.Applied >= commit })
	}
}
