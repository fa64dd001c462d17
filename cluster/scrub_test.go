package cluster

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// TestScrubPacesSmallChunks: the scrubber's cost is per chunk as much as
// per byte (a key, a value read, a hash set-up), so a store of small
// chunks must not be re-read at ScrubRate's bytes per second, which is
// thousands of chunks a second and more CPU than a small node has.
func TestScrubPacesSmallChunks(t *testing.T) {
	n := newTestFSM(t, wholeRing)
	const files, size = 600, 1000
	for i := range files {
		p := fmt.Sprintf("/s%d/f", i)
		n.must(put(p, fmt.Sprintf("%0*d", size, i), wire.FlagParents)) // distinct: chunks are content-addressed
	}
	const rate = 1 << 20 // more than the whole store: one step used to read it all
	s := startScrubber(n.fsm, rate, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	time.Sleep(2 * time.Second)
	s.stop()
	// A first step of at most firstScrubStep bytes, then each chunk paced
	// as its bytes plus scrubChunkCost.
	limit := firstScrubStep/size + 1 + 2*rate/(size+scrubChunkCost) + 1
	if got := s.checked.Load(); got > uint64(limit) || got == 0 {
		t.Errorf("the scrubber verified %d of %d chunks of %d bytes in 2 s at %d bytes/s (%d passes), want 1 to %d",
			got, files, size, rate, s.passes.Load(), limit)
	}
}
