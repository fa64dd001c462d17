package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

// TestSplitLeavesOwnedUsage writes 200 MiB across 50 roots into one
// cluster, splits it and, once both sides are cleaned up, checks from
// `cleave status -o json` that every node of each cluster holds exactly
// the files, bytes and referenced chunks of the roots its range owns, and
// that the chunk bytes the two clusters store add up to what the one
// stored before the split within 5%.
func TestSplitLeavesOwnedUsage(t *testing.T) {
	skipInShortMode(t, "a 200 MiB split")
	const (
		files = 50
		size  = 4 << 20 // 4 chunks of 1 MiB per file: 200 MiB in 50 uploads
		chunk = 1 << 20
	)
	d := ownDeployment(t, "--clusters", "1")
	c := d.dial(t)
	path := func(i int) string { return fmt.Sprintf("/usage-%d/f", i) }
	written := writeBulk(t, c, files, size, path)

	orig := waitUsage(t, d, chunk, func(wire.Range) (uint64, uint64) { return files, files * size })["c1"]
	t.Logf("before the split: c1 holds %d files, %d bytes, %d chunks (%d bytes)", orig.Files, orig.Bytes, orig.Chunks, orig.ChunkBytes)

	t.Logf("split:\n%s", d.split(t, "c1"))
	owned := func(r wire.Range) (n, bytes uint64) {
		for i := range files {
			if r.Contains(ring.PathPoint(path(i))) {
				n, bytes = n+1, bytes+size
			}
		}
		return n, bytes
	}
	after := waitUsage(t, d, chunk, owned)
	if len(after) != 2 {
		t.Fatalf("%d clusters after one split: %v", len(after), after)
	}
	var sum uint64
	for id, u := range after {
		t.Logf("%s %v: %d files, %d bytes, %d chunks stored (%d bytes), of them %d unreferenced (%d bytes)", id, u.Range, u.Files, u.Bytes, u.Chunks, u.ChunkBytes, u.PendingChunks, u.PendingBytes)
		sum += u.ChunkBytes
	}
	if lo, hi := orig.ChunkBytes*95/100, orig.ChunkBytes*105/100; sum < lo || sum > hi {
		t.Errorf("the two clusters store %d chunk bytes; the one before the split %d (more than 5%% apart)", sum, orig.ChunkBytes)
	}
	written.verify(t, c, "after the split")
}

// waitUsage waits (up to 2 minutes) until no split runs and every node
// of every cluster reports the files, bytes and referenced chunks that
// want says its range owns (each file of chunkSize-byte chunks), and
// returns each cluster's usage as its first node reports it, with the
// cluster's range.
func waitUsage(t *testing.T, d *deployment, chunkSize uint64, want func(wire.Range) (files, bytes uint64)) map[string]wire.NodeStatus {
	t.Helper()
	var out map[string]wire.NodeStatus
	eventually.Holds(t, 2*time.Minute, "every node to report what its range owns", func() error {
		st := d.status(t)
		for _, sp := range st.Splits {
			if !sp.Phase.Final() {
				return fmt.Errorf("split %d is %s", sp.ID, sp.Phase)
			}
		}
		out = map[string]wire.NodeStatus{}
		for _, cl := range st.Clusters {
			files, bytes := want(cl.Range)
			for _, n := range cl.Nodes {
				chunks, chunkBytes := n.Chunks-n.PendingChunks, n.ChunkBytes-n.PendingBytes
				if n.Error != "" || n.Files != files || n.Bytes != bytes || chunks != bytes/chunkSize || chunkBytes != bytes {
					return fmt.Errorf("%s node %d (%s): %d files, %d bytes, %d referenced chunks of %d bytes; its range owns %d files, %d bytes, %d chunks",
						cl.ID, n.ID, n.Error, n.Files, n.Bytes, chunks, chunkBytes, files, bytes, bytes/chunkSize)
				}
			}
			u := cl.Nodes[0]
			u.Range = cl.Range
			out[cl.ID] = u
		}
		return nil
	})
	return out
}
