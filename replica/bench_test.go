package replica

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkProposeInflight runs b.N proposals of 128 bytes through the
// leader of three in-process replicas (real Pebble, fsync on), with exactly
// n proposals in flight. Besides ns/op and allocs/op it reports ops/s, the
// process's CPU time per proposal (user + system, all three replicas) and
// the leader's entries per fsync and the share of its synced batches it
// handed to the writer goroutine (the rest it wrote in place).
func BenchmarkProposeInflight(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("inflight=%d", n), func(b *testing.B) {
			c := newTestCluster(b, 3)
			c.countOnly = true
			c.startAll()
			lead := c.waitLeader()
			r := c.rep(lead)
			cmd := make([]byte, 128)
			before := r.Stats()
			cpu0 := cpuTime()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			var mu sync.Mutex
			next := 0
			for range n {
				wg.Go(func() {
					ctx := context.Background()
					for {
						mu.Lock()
						i := next
						next++
						mu.Unlock()
						if i >= b.N {
							return
						}
						if _, _, err := r.Propose(ctx, cmd); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			after := r.Stats()
			b.ReportMetric(float64(b.N)/el.Seconds(), "ops/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
			if s := after.Syncs - before.Syncs; s > 0 {
				b.ReportMetric(float64(after.Appended-before.Appended)/float64(s), "entries/fsync")
				b.ReportMetric(float64(after.Handoffs-before.Handoffs)/float64(s), "handoffs/fsync")
			}
		})
	}
}

// cpuTime is the user + system time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
