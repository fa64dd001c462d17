package replica

import (
	"sync/atomic"
	"time"
)

// SyncBounds are the upper bounds, in seconds, of the buckets of the fsync
// latency histogram (Stats.SyncBuckets): from 100 µs, a quiet disk's
// fdatasync, to 5 s, a stalled one.
var SyncBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// syncHist counts synced commits by duration, one counter per bucket of
// SyncBounds and one beyond the last. Written by one goroutine, read by any.
type syncHist struct {
	counts [16]atomic.Uint64 // len(SyncBounds)+1
}

// observe counts one synced commit that took d.
func (h *syncHist) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(SyncBounds) && s > SyncBounds[i] {
		i++
	}
	h.counts[i].Add(1)
}

// buckets returns each bucket's count (not cumulative), the last the count
// beyond SyncBounds.
func (h *syncHist) buckets() []uint64 {
	out := make([]uint64, len(SyncBounds)+1)
	for i := range out {
		out[i] = h.counts[i].Load()
	}
	return out
}
