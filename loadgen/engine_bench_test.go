package loadgen

import (
	"context"
	"testing"
)

// BenchmarkEngine is the engine's own cost per operation: a closed-loop
// put run of b.N operations by one worker against the in-memory store.
func BenchmarkEngine(b *testing.B) {
	cfg := testConfig()
	cfg.Workload, cfg.Ops, cfg.Clients, cfg.Files = Put, int64(b.N), 1, 100
	s := newMemStore()
	b.ReportAllocs()
	b.ResetTimer()
	if _, err := Run(context.Background(), cfg, s, nil); err != nil {
		b.Fatal(err)
	}
}
