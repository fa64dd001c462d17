package rpc

import (
	"context"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// BenchmarkRoundTrip measures one Call over a real loopback connection to
// a Server whose handler answers a 1 KiB value at once: ns/op and
// allocs/op of the transport alone, with 1 and 64 callers sharing the
// connection, and cpu-ns/op: the process's user+system CPU time per call
// (client and server both), steadier than wall time on a shared machine.
//
//	go test ./internal/rpc -run '^$' -bench RoundTrip -benchmem -count 3
func BenchmarkRoundTrip(b *testing.B) {
	value := make([]byte, 1024)
	srv := NewServer(ServerConfig{Name: "bench"}, HandlerFunc(func(ctx context.Context, req *wire.Request) *wire.Response {
		return &wire.Response{Data: value}
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	ctx := context.Background()
	c, err := Dial(ctx, ln.Addr().String(), DialConfig{Client: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			b.ReportAllocs()
			var wg sync.WaitGroup
			per := b.N / callers
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := range callers {
				n := per
				if i == 0 {
					n += b.N % callers
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range n {
						resp, err := c.Call(ctx, &wire.Request{Op: wire.OpGet, Path: "/bench/f"})
						if err != nil {
							b.Errorf("call: %v", err)
							return
						}
						if len(resp.Data) != len(value) {
							b.Errorf("answer of %d bytes, want %d", len(resp.Data), len(value))
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime returns the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
