package tests

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/wire"
)

// BenchmarkNormalClientUnderAttack measures what 100 slow-loris connections
// (a HELLO trickled one byte a second) and 100 clients that pipeline GETs
// of a 1 MiB file and never read the answers cost a normal client: its
// p50 and p99 for 1 KiB puts and gets, unloaded and then under attack,
// against a `cleave up` of its own. A benchmark, not a test: the figures
// are reported (docs/security.md), nothing is asserted about time.
//
//	go test ./tests -run '^$' -bench NormalClientUnderAttack -benchtime 1x
//
// ATTACK=loris or ATTACK=sink runs only the slow-loris connections or only
// the clients that never read.
func BenchmarkNormalClientUnderAttack(b *testing.B) {
	d := startUp(b, b.TempDir()+"/data", "")
	defer d.stop(b)
	c := d.dial(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := c.Put(ctx, "/attack/big", bytes.Repeat([]byte("x"), 1<<20), client.Parents()); err != nil {
		b.Fatal(err)
	}
	const ops = 600
	base := measureClient(ctx, b, c, "/calm", ops)

	attackCtx, stopAttack := context.WithCancel(ctx)
	var wg sync.WaitGroup
	addr := d.routerList()[0]
	for i := range 100 {
		if os.Getenv("ATTACK") != "sink" {
			wg.Add(1)
			go func() { defer wg.Done(); slowLoris(attackCtx, addr) }()
		}
		if os.Getenv("ATTACK") != "loris" {
			wg.Add(1)
			go func() { defer wg.Done(); neverReads(attackCtx, addr, i) }()
		}
	}
	time.Sleep(2 * time.Second) // let every attacker connect and fill its window
	under := measureClient(ctx, b, c, "/stormy", ops)
	stopAttack()
	wg.Wait()

	for _, m := range []struct {
		name       string
		calm, hard []time.Duration
	}{{"put", base.put, under.put}, {"get", base.get, under.get}} {
		p50c, p99c := pct(m.calm, 50), pct(m.calm, 99)
		p50h, p99h := pct(m.hard, 50), pct(m.hard, 99)
		b.ReportMetric(float64(p99c.Microseconds())/1000, m.name+"-p99-calm-ms")
		b.ReportMetric(float64(p99h.Microseconds())/1000, m.name+"-p99-attack-ms")
		b.ReportMetric(float64(p99h)/float64(p99c), m.name+"-p99-ratio")
		slow := 0
		for _, d := range m.hard {
			if d > 100*time.Millisecond {
				slow++
			}
		}
		b.Logf("%s: %d over 100ms under attack, max %v", m.name, slow, slices.Max(m.hard))
		b.Logf("%s: unloaded p50 %v p99 %v; under attack p50 %v p99 %v (p99 ×%.2f)", m.name, p50c, p99c, p50h, p99h, float64(p99h)/float64(p99c))
	}
}

type latencies struct{ put, get []time.Duration }

// measureClient does ops sequential 1 KiB puts, then as many gets, under
// dir, and returns each one's latency.
func measureClient(ctx context.Context, b *testing.B, c *client.Client, dir string, ops int) latencies {
	b.Helper()
	v := bytes.Repeat([]byte("v"), 1024)
	var l latencies
	for i := range ops {
		start := time.Now()
		if _, err := c.Put(ctx, fmt.Sprintf("%s/f%d", dir, i%50), v, client.Parents()); err != nil {
			b.Fatalf("put: %v", err)
		}
		l.put = append(l.put, time.Since(start))
	}
	for i := range ops {
		start := time.Now()
		if _, err := c.Get(ctx, fmt.Sprintf("%s/f%d", dir, i%50)); err != nil {
			b.Fatalf("get: %v", err)
		}
		l.get = append(l.get, time.Since(start))
	}
	return l
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

// slowLoris trickles a HELLO frame one byte a second until ctx ends or the
// server closes the connection, then starts again.
func slowLoris(ctx context.Context, addr string) {
	hello, _ := wire.AppendEncode(nil, &wire.Request{ID: 1, Op: wire.OpHello, Hello: &wire.Hello{Version: wire.ProtocolVersion, Client: "loris"}})
	for ctx.Err() == nil {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		for i := 0; i < len(hello) && ctx.Err() == nil; i++ {
			if _, err := nc.Write(hello[i : i+1]); err != nil {
				break
			}
			sleepCtx(ctx, time.Second)
		}
		nc.Close()
	}
}

// neverReads says HELLO, then pipelines GETs of /attack/big, a thousand
// to a write, without ever reading an answer, until its writes block (the
// server stopped reading it) or fail (it closed the connection); then
// holds it a while and starts again, until ctx ends. Writing in batches
// keeps the attacker's own CPU (it shares the machine and this process
// with the normal client) from being what the normal client measures.
func neverReads(ctx context.Context, addr string, i int) {
	hello, _ := wire.AppendEncode(nil, &wire.Request{ID: 1, Op: wire.OpHello, Hello: &wire.Hello{Version: wire.ProtocolVersion, Client: fmt.Sprintf("sink-%d", i)}})
	var batch []byte
	for ctx.Err() == nil {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetReadBuffer(4096) // a tiny window: answers back up at once
		}
		buf := hello
		for id := uint64(2); ctx.Err() == nil; {
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := nc.Write(buf); err != nil {
				break
			}
			batch = batch[:0]
			for range 1000 {
				batch, _ = wire.AppendEncode(batch, &wire.Request{ID: id, Op: wire.OpGet, Path: "/attack/big"})
				id++
			}
			buf = batch
		}
		// Writes block: the server stopped reading this connection (or
		// closed it). Hold it, unread, a while, then start again.
		sleepCtx(ctx, 5*time.Second)
		nc.Close()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
