package tests

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/wire"
)

// BenchmarkNormalClientUnderAttack measures what 100 slow-loris connections
// (a HELLO trickled one byte a second) and 100 clients that pipeline GETs
// of a 1 MiB file and never read the answers cost a normal client: its
// p50 and p99 for 1 KiB puts and gets, unloaded and then under attack,
// against a `cleave up` of its own. The attackers run in a process of
// their own, as they would on another host: they share the machine's
// CPUs, not the measuring client's Go runtime. A benchmark, not a test:
// the figures are reported (docs/security.md), nothing is asserted about
// time.
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
	const ops = 1500
	base := measureClient(ctx, b, c, "/calm", ops)

	attacker := startAttacker(b, d.routerList()[0], os.Getenv("ATTACK"))
	time.Sleep(2 * time.Second) // let every attacker connect and fill its window
	under := measureClient(ctx, b, c, "/stormy", ops)
	attacker.stop(b)

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

// attackerEnv, when set, makes the test binary an attacker process
// (TestMain): its value is the router address to attack; attackerKind
// says which attacks ("loris", "sink", or both when empty).
const (
	attackerEnv  = "CLEAVE_TEST_ATTACK_ADDR"
	attackerKind = "CLEAVE_TEST_ATTACK_KIND"
	// attackerLimit bounds an attacker process's life should its parent
	// never stop it.
	attackerLimit = 2 * time.Minute
)

// attackerProcess is a running attacker process.
type attackerProcess struct {
	cmd  *exec.Cmd
	done chan error
}

// startAttacker re-runs the test binary as an attacker process against
// addr (see runAttacker).
func startAttacker(b *testing.B, addr, kind string) *attackerProcess {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), attackerEnv+"="+addr, attackerKind+"="+kind)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting the attacker process: %v", err)
	}
	a := &attackerProcess{cmd: cmd, done: make(chan error, 1)}
	go func() { a.done <- cmd.Wait() }()
	return a
}

// stop ends the attack: SIGTERM, then SIGKILL if it lingers.
func (a *attackerProcess) stop(b *testing.B) {
	b.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
		b.Log("the attacker process ignored SIGTERM for 10s and was killed")
	}
}

// runAttacker is the attacker process's body, run from TestMain when
// attackerEnv is set: 100 slow-loris connections and 100 clients that
// never read, against the address it names, until SIGTERM or
// attackerLimit. It reports whether this process is an attacker.
func runAttacker() bool {
	addr := os.Getenv(attackerEnv)
	if addr == "" {
		return false
	}
	kind := os.Getenv(attackerKind)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, attackerLimit)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 100 {
		if kind != "sink" {
			wg.Go(func() { slowLoris(ctx, addr) })
		}
		if kind != "loris" {
			wg.Go(func() { neverReads(ctx, addr, i) })
		}
	}
	wg.Wait()
	return true
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
// keeps the attacker's own CPU (it shares the machine with the normal
// client) from being what the normal client measures.
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
