package up

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Restart backoff of a child that exits unexpectedly.
const (
	minBackoff  = 500 * time.Millisecond // first wait
	maxBackoff  = 10 * time.Second       // cap of the doubling
	stableAfter = 30 * time.Second       // uptime that resets the backoff
)

// nextBackoff returns the wait before restarting a child that ran for
// uptime, given the previous wait (0 before the first restart).
func nextBackoff(prev, uptime time.Duration) time.Duration {
	if prev == 0 || uptime >= stableAfter {
		return minBackoff
	}
	return min(prev*2, maxBackoff)
}

// A child that exits flapExits times within flapWindow is flapping: the
// supervisor's flapped hook may take it over (a node is replaced).
const (
	flapExits  = 5
	flapWindow = 2 * time.Minute
)

// supervise runs ch until ctx is done, restarting it with a backoff whenever
// it exits; then it sends SIGTERM and, after stopTimeout, SIGKILL. When the
// child flaps and flapped (may be nil) returns true, supervise gives up on
// it and returns; flapped gets ctx, which is done when the supervisor stops
// or the child is stopped.
func supervise(ctx context.Context, ch child, stopTimeout time.Duration, log *slog.Logger, flapped func(ctx context.Context, name string) bool) {
	log = log.With("child", ch.name)
	var backoff time.Duration
	var exits []time.Time
	for attempt := 1; ; attempt++ {
		started := time.Now()
		exited, proc, err := startChild(ch, attempt)
		if err != nil {
			log.Error("cannot start", "err", err)
		} else {
			select {
			case err := <-exited:
				if ctx.Err() != nil {
					return
				}
				log.Warn("exited unexpectedly", "err", exitText(err), "pid", proc.Pid, "uptime", time.Since(started).Round(time.Millisecond), "log", ch.log)
			case <-ctx.Done():
				stopChild(proc, exited, stopTimeout, log)
				return
			}
		}
		now := time.Now()
		exits = append(exits, now)
		for len(exits) > 0 && now.Sub(exits[0]) > flapWindow {
			exits = exits[1:]
		}
		if len(exits) >= flapExits && flapped != nil && flapped(ctx, ch.name) {
			log.Warn("gave up restarting: exited too often", "exits", len(exits), "within", flapWindow)
			return
		}
		backoff = nextBackoff(backoff, time.Since(started))
		log.Warn("restarting", "in", backoff, "attempt", attempt+1)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// startChild starts ch with its output appended to its log file and returns
// a channel receiving the result of Wait.
func startChild(ch child, attempt int) (<-chan error, *os.Process, error) {
	if ch.prepare != nil {
		if err := ch.prepare(); err != nil {
			return nil, nil, err
		}
	}
	f, err := os.OpenFile(ch.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(f, "==== cleave up: %s start #%d at %s\n", ch.name, attempt, time.Now().Format(time.RFC3339))
	cmd := exec.Command(ch.bin, ch.args...)
	cmd.Env = ch.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childSysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, nil, err
	}
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "==== cleave up: %s exited: %s\n", ch.name, exitText(err))
		f.Close()
		exited <- err
	}()
	return exited, cmd.Process, nil
}

// stopChild sends SIGTERM, waits up to timeout, then sends SIGKILL.
func stopChild(p *os.Process, exited <-chan error, timeout time.Duration, log *slog.Logger) {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		p.Kill()
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-exited:
		return
	case <-t.C:
	}
	log.Warn("did not stop after SIGTERM; killing", "pid", p.Pid, "waited", timeout)
	p.Kill()
	<-exited
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// procs is the set of supervised children. A child can be added and
// stopped while the others run (a split starts new nodes; an abandoned one
// stops them). Safe for concurrent use.
type procs struct {
	ctx         context.Context // stops every child when done
	stopTimeout time.Duration
	log         *slog.Logger
	flapped     func(ctx context.Context, name string) bool // set before the first start; may be nil

	mu      sync.Mutex
	running map[string]*proc
	wg      sync.WaitGroup
}

type proc struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func newProcs(ctx context.Context, stopTimeout time.Duration, log *slog.Logger) *procs {
	return &procs{ctx: ctx, stopTimeout: stopTimeout, log: log, running: map[string]*proc{}}
}

// start supervises ch until it is stopped or the procs' context is done.
// A child of the same name already running is left alone.
func (p *procs) start(ch child) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.running[ch.name]; ok {
		return
	}
	ctx, cancel := context.WithCancel(p.ctx)
	pr := &proc{cancel: cancel, done: make(chan struct{})}
	p.running[ch.name] = pr
	p.wg.Go(func() {
		defer close(pr.done)
		supervise(ctx, ch, p.stopTimeout, p.log, p.flapped)
	})
}

// stop stops the child named name (SIGTERM, then SIGKILL) and waits for it.
func (p *procs) stop(name string) {
	p.mu.Lock()
	pr, ok := p.running[name]
	delete(p.running, name)
	p.mu.Unlock()
	if ok {
		pr.cancel()
		<-pr.done
	}
}

// wait waits for every child to stop (after the procs' context is done).
func (p *procs) wait() { p.wg.Wait() }
