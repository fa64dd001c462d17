package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// A probe is a process of the benchmark itself (scale -probe) that does a
// fixed storage workload under the same CPU cap as a node: Pebble, in
// memory, committing batches of 1 KiB values and reading keys back, much
// as a node applies puts, with no disk and no network. Its CPU time per
// operation depends only on the machine: on how many other processes
// share the cores and their caches. The benchmark runs one probe beside
// every round and records that figure, so a reader sees how much dearer
// the same work became as the deployment grew on one machine. With
// -ballast it also runs extra probes so that every step has as many
// capped processes as the largest (three per cluster of the last step):
// the machine is then as crowded at 1 cluster as at 8, and the measuring
// probe shows whether that held.

// probeBatch is how many operations (one write and one read each) a probe
// commits per batch.
const probeBatch = 16

// runProbe is the probe's process: it works until its standard input
// closes.
func runProbe() error {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
	return probeWork(ctx, os.Stdout, 250*time.Millisecond)
}

// probeWork does the probe's workload until ctx ends, writing to w every
// interval its cumulative operations and the process's CPU time (user +
// system, in ns) as "ops cpu_ns".
func probeWork(ctx context.Context, w io.Writer, every time.Duration) error {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), MemTableSize: 4 << 20, Logger: probeLogger{}})
	if err != nil {
		return err
	}
	defer db.Close()
	const keys = 1 << 14 // 16 MiB of values: flushes and compactions, as on a node
	r := rand.New(rand.NewPCG(1, 2))
	val := make([]byte, 1024)
	key := make([]byte, 8)
	var ops uint64
	next := time.Now()
	out := bufio.NewWriter(w)
	for ctx.Err() == nil {
		b := db.NewBatch()
		for range probeBatch {
			binary.BigEndian.PutUint64(key, r.Uint64N(keys))
			binary.BigEndian.PutUint64(val, ops)
			if err := b.Set(key, val, nil); err != nil {
				return err
			}
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
		b.Close()
		for range probeBatch {
			binary.BigEndian.PutUint64(key, r.Uint64N(keys))
			if v, c, err := db.Get(key); err == nil {
				_ = v[0]
				c.Close()
			}
		}
		ops += probeBatch
		if now := time.Now(); now.After(next) {
			next = now.Add(every)
			fmt.Fprintf(out, "%d %d\n", ops, processCPU())
			if err := out.Flush(); err != nil {
				return nil // the benchmark is gone
			}
		}
	}
	return nil
}

// processCPU is this process's user + system time in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// probeLogger drops Pebble's informational lines and prints its errors.
type probeLogger struct{}

func (probeLogger) Infof(string, ...any) {}
func (probeLogger) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "probe: pebble: "+format+"\n", args...)
}
func (l probeLogger) Fatalf(format string, args ...any) {
	l.Errorf(format, args...)
	os.Exit(1)
}

// probe is a running probe process, as the benchmark sees it.
type probe struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	last  probeCount // its last report
}

// probeCount is a probe's cumulative operations and CPU time at a moment.
type probeCount struct {
	ops uint64
	cpu int64
}

// startProbe starts a probe process and caps it like a node.
func startProbe(cg *cgroup) (*probe, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p := &probe{cmd: exec.Command(exe, "-probe")}
	p.cmd.Stderr = os.Stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start probe: %w", err)
	}
	if err := cg.limit(p.cmd.Process.Pid); err != nil {
		p.stop()
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				continue
			}
			ops, err1 := strconv.ParseUint(f[0], 10, 64)
			cpu, err2 := strconv.ParseInt(f[1], 10, 64)
			if err1 == nil && err2 == nil {
				p.mu.Lock()
				p.last = probeCount{ops, cpu}
				p.mu.Unlock()
			}
		}
	}()
	return p, nil
}

// count is the probe's last report.
func (p *probe) count() probeCount {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// stop ends the probe and waits for it.
func (p *probe) stop() {
	p.stdin.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// probes are the measuring probe and the ballast.
type probes struct {
	cg      *cgroup
	measure *probe
	ballast []*probe
}

// startProbes starts the measuring probe.
func startProbes(cg *cgroup) (*probes, error) {
	m, err := startProbe(cg)
	if err != nil {
		return nil, err
	}
	return &probes{cg: cg, measure: m}, nil
}

// setBallast starts or stops ballast probes until n run.
func (ps *probes) setBallast(n int) error {
	for len(ps.ballast) > max(n, 0) {
		last := len(ps.ballast) - 1
		ps.ballast[last].stop()
		ps.ballast = ps.ballast[:last]
	}
	for len(ps.ballast) < n {
		p, err := startProbe(ps.cg)
		if err != nil {
			return err
		}
		ps.ballast = append(ps.ballast, p)
	}
	return nil
}

// stop ends every probe.
func (ps *probes) stop() {
	ps.setBallast(0)
	ps.measure.stop()
}

// probeUse is what the measuring probe did over a round.
type probeUse struct {
	// NsPerOp is its CPU time per operation, in ns.
	NsPerOp float64 `json:"ns_per_op"`
	// OpsPerSec is its rate: its cap over its CPU per operation.
	OpsPerSec float64 `json:"ops_per_sec"`
	Ballast   int     `json:"ballast"` // ballast probes running
}

// probeSince is the measuring probe's work between two counts taken secs
// apart.
func probeSince(a, b probeCount, secs float64, ballast int) probeUse {
	u := probeUse{Ballast: ballast}
	if b.ops > a.ops {
		u.NsPerOp = float64(b.cpu-a.cpu) / float64(b.ops-a.ops)
		if secs > 0 {
			u.OpsPerSec = float64(b.ops-a.ops) / secs
		}
	}
	return u
}
