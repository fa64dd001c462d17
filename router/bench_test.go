package router

import (
	"context"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

// BenchmarkForward measures the router's cost of forwarding one 1 KiB put:
// a client connection to a real router, which forwards over its pool to a
// real rpc server standing in for the cluster's leader (the wire codec and
// both connections' readers and writers run; the node answers at once, as
// a leader answers a put, with the file's Stat). callers share the one
// client connection. cpu-ns/op is the process's user+system CPU per put:
// client, router and node together, steadier than ns/op on a shared
// machine.
//
//	go test ./router -run '^$' -bench Forward -benchmem -count 3
func BenchmarkForward(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	node := rpc.NewServer(rpc.ServerConfig{Name: "node", ID: "n1"}, rpc.HandlerFunc(func(ctx context.Context, req *wire.Request) *wire.Response {
		if req.Op != wire.OpPut {
			return wire.Errorf(req.ID, wire.Invalid, "bench node does not do %v", req.Op)
		}
		return &wire.Response{Stat: &wire.Stat{Name: req.Path, Type: wire.TypeFile, Size: int64(len(req.Data)), Version: 42}}
	}))
	go node.Serve(ln)
	defer node.Close()
	_, c := startRouter(b, []wire.ClusterInfo{{ID: "c1", Members: members(ln.Addr().String())}}, nil)
	value := make([]byte, 1024)
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
				wg.Go(func() {
					for j := range n {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						resp, err := c.Call(ctx, &wire.Request{Op: wire.OpPut, Path: fmt.Sprintf("/bench/%d-%d", i, j%64), Data: value, Session: uint64(i + 1), Seq: uint64(j + 1)})
						cancel()
						if err != nil {
							b.Errorf("put: %v", err)
							return
						}
						if resp.Code != wire.OK || resp.Stat == nil || resp.Stat.Size != int64(len(value)) {
							b.Errorf("put: %v %+v", resp.Err(), resp.Stat)
							return
						}
					}
				})
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
