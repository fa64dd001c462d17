package cluster

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

// Usage counts the files (not directories) whose root is in the owned
// range, and their sizes.
func TestUsage(t *testing.T) {
	n := newTestFSM(t, wholeRing)
	var want uint64
	for i := range 20 {
		p := fmt.Sprintf("/u%d/f", i)
		n.must(put(p, p+p, wire.FlagParents))
		want += uint64(len(p + p))
	}
	files, bytes, _, err := n.fsm.Usage()
	if err != nil || files != 20 || bytes != want {
		t.Fatalf("usage %d files %d bytes %v, want 20 and %d", files, bytes, err, want)
	}
	half := wire.Range{End: ring.Mid(wholeRing)}
	n.setRange(half)
	files, _, _, err = n.fsm.Usage()
	if err != nil || files == 0 || files >= 20 {
		t.Fatalf("usage of the lower half: %d files, %v", files, err)
	}
	var u usageCache
	var ns wire.NodeStatus
	u.report(n.fsm, &ns)
	if ns.Files != files {
		t.Fatalf("first status reports %d files, want %d", ns.Files, files)
	}
}

// The status names the roots with the most requests, then the most bytes,
// with their files, bytes and request counts.
func TestUsageByRoot(t *testing.T) {
	n := newTestFSM(t, wholeRing)
	n.must(put("/big/a/x", string(make([]byte, 5000)), wire.FlagParents))
	n.must(put("/big/b", "12345", wire.FlagParents))
	for i := range 7 {
		n.must(put(fmt.Sprintf("/r%d/f", i), "x", wire.FlagParents))
	}
	var u usageCache
	for range 9 {
		u.perRoot.add("/hot/file")
	}
	u.perRoot.add("/big/b")
	var ns wire.NodeStatus
	u.report(n.fsm, &ns)
	if len(ns.Roots) != wire.TopRoots {
		t.Fatalf("roots %+v, want %d", ns.Roots, wire.TopRoots)
	}
	if r := ns.Roots[0]; r.Name != "hot" || r.Ops != 9 || r.Files != 0 {
		t.Fatalf("first root %+v, want the hot one with 9 requests and no files", r)
	}
	if r := ns.Roots[1]; r.Name != "big" || r.Ops != 1 || r.Files != 2 || r.Bytes != 5005 {
		t.Fatalf("second root %+v, want big: 1 request, 2 files, 5005 bytes", r)
	}
}

// Requests with oversized invalid paths are refused before anything
// counts them: 60 STATs of 4 MiB paths, each a new root, leave the heap
// flat and the STATUS reply small (it once kept every such root name and
// grew past the frame limit).
func TestOversizedInvalidPathsAreNotCounted(t *testing.T) {
	mn := newMemberNet(t, 1)
	mn.start(1)
	mn.leader()
	before := heapInUse()
	for i := range 60 {
		p := fmt.Sprintf("/%02d", i) + strings.Repeat("a", 4<<20)
		if resp := mn.call(1, &wire.Request{Op: wire.OpStat, Path: p}); resp.Code != wire.Invalid {
			t.Fatalf("STAT of a %d-byte path: %v, want INVALID", len(p), resp.Err())
		}
	}
	after := heapInUse()
	t.Logf("heap in use: %d MiB before, %d MiB after 60 STATs of 4 MiB invalid paths", before>>20, after>>20)
	if after > before+32<<20 {
		t.Errorf("heap grew by %d MiB, want under 32 MiB", (after-before)>>20)
	}
	resp := mn.call(1, &wire.Request{Op: wire.OpStatus})
	b, err := wire.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("STATUS reply: %d bytes", len(b))
	if len(b) > 64<<10 {
		t.Errorf("STATUS reply is %d bytes, want under 64 KiB", len(b))
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
