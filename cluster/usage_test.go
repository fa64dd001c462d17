package cluster

import (
	"fmt"
	"testing"

	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

// Usage counts the files (not directories) whose root is in the owned
// range, and their sizes.
func TestUsage(t *testing.T) {
	n := newNode(t, wholeRing)
	var want uint64
	for i := range 20 {
		p := fmt.Sprintf("/u%d/f", i)
		n.must(put(p, p+p, wire.FlagParents))
		want += uint64(len(p + p))
	}
	files, bytes, err := n.fsm.Usage()
	if err != nil || files != 20 || bytes != want {
		t.Fatalf("usage %d files %d bytes %v, want 20 and %d", files, bytes, err, want)
	}
	half := wire.Range{End: ring.Mid(wholeRing)}
	n.setRange(half)
	files, _, err = n.fsm.Usage()
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
