package replica

import (
	"slices"
	"testing"
	"time"
)

// Each duration lands in the first bucket whose bound is at least it, and
// one beyond every bound in the last.
func TestSyncHistBuckets(t *testing.T) {
	var h syncHist
	for _, d := range []time.Duration{
		50 * time.Microsecond, 100 * time.Microsecond, // at most 100 µs: bucket 0
		101 * time.Microsecond,            // bucket 1 (250 µs)
		3 * time.Millisecond,              // bucket 5 (5 ms)
		time.Second,                       // bucket 12 (1 s)
		6 * time.Second, 10 * time.Second, // beyond 5 s
	} {
		h.observe(d)
	}
	got := h.buckets()
	want := make([]uint64, len(SyncBounds)+1)
	want[0], want[1], want[5], want[12], want[len(SyncBounds)] = 2, 1, 1, 1, 2
	if !slices.Equal(got, want) {
		t.Fatalf("buckets %v, want %v", got, want)
	}
	if len(h.counts) != len(SyncBounds)+1 {
		t.Fatalf("%d counters for %d bounds", len(h.counts), len(SyncBounds))
	}
}
