package loadgen

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cleavefs/cleave/client"
)

// Run sets up the namespace, preloads files, then measures cfg's workload
// against store and returns the Result. The setup is not measured. If ctx
// ends during the measurement, Run returns what was measured so far.
// progress, if not nil, is called about once a second with a live view.
func Run(ctx context.Context, cfg Config, store Store, progress func(Snapshot)) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := supports(store, cfg.Workload); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = DefaultConfig().Logger
	}
	if err := setup(ctx, &cfg, store); err != nil {
		return nil, err
	}

	workers := make([]*worker, cfg.Clients)
	for i := range workers {
		workers[i] = newWorker(&cfg, store, i)
	}
	cpu, err := startCPU(cfg.CPUPIDs, cfg.ClockTicks)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	rec := newRecorder(start)
	rec.code = func(err error) string { return errorCode(store, err) }
	var end time.Time // zero: no time limit
	if cfg.Duration > 0 {
		end = start.Add(cfg.Duration)
	}
	var sched *Schedule
	if cfg.Rate > 0 {
		s := NewSchedule(start, cfg.Rate)
		sched = &s
	}
	var tickets atomic.Int64
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	stopProgress := startProgress(rec, progress)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(runCtx, rec, &tickets, sched, end)
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	var watchdog <-chan time.Time // fires if an operation outlives its deadline by far
	if !end.IsZero() {
		t := time.NewTimer(time.Until(end) + cfg.Timeout + hangGrace)
		defer t.Stop()
		watchdog = t.C
	}
	select {
	case <-allDone:
	case <-watchdog:
		// An SDK call ignored its context. Stop waiting for it: count each
		// worker still inside a call as a failed operation and report.
		cancel()
		hung := 0
		for _, w := range workers {
			if w.busy.Load() {
				hung++
				rec.record(string(cfg.Workload), w.since(), time.Now(), 0, errHung)
			}
		}
		cfg.Logger.Warn("operations outlived their deadline; not waiting for them", "workers", hung)
	}
	elapsed := time.Since(start)
	stopProgress()
	res := rec.result(&cfg, elapsed)
	res.ServerCPU = cpu.stop(res.Ops + res.Errors)
	return res, nil
}

// hangGrace is how long past its deadline an operation may take before the
// run stops waiting for it.
var hangGrace = 5 * time.Second // a variable so tests can shorten it

// errHung is recorded for an operation that did not return within its
// deadline plus hangGrace: the SDK call ignored its context.
var errHung = &client.Error{Code: client.CodeTimeout, Op: "loadgen",
	Message: "operation did not return within its deadline + 5s (the SDK call ignored its context); the run stopped waiting for it"}

// loop runs operations until the run is over: the duration passed, the
// operation count was reached, or ctx ended.
func (w *worker) loop(ctx context.Context, rec *recorder, tickets *atomic.Int64, sched *Schedule, end time.Time) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for ctx.Err() == nil {
		i := tickets.Add(1) - 1
		if w.cfg.Ops > 0 && i >= w.cfg.Ops {
			return
		}
		var began time.Time
		if sched != nil {
			began = sched.Due(i)
			if !end.IsZero() && !began.Before(end) {
				return
			}
			if d := time.Until(began); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					timer.Stop()
					return
				}
			}
		} else {
			began = time.Now()
			if !end.IsZero() && !began.Before(end) {
				return
			}
		}
		octx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
		w.began.Store(began.UnixNano())
		w.busy.Store(true)
		op, n, err := w.do(octx)
		w.busy.Store(false)
		cancel()
		if ctx.Err() != nil && err != nil {
			return // interrupted, not failed
		}
		rec.record(op, began, time.Now(), n, err)
	}
}

// setup creates the root directories and preloads files with cfg.Clients
// workers. Nothing here is measured.
func setup(ctx context.Context, cfg *Config, store Store) error {
	names := Namer{Prefix: cfg.Prefix, Roots: cfg.Roots}
	if err := parallel(ctx, cfg.Clients, cfg.Roots, func(ctx context.Context, _ *worker, i int64) error {
		return store.MkdirAll(ctx, names.Root(i))
	}, cfg, store); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	n := cfg.preloadCount()
	if n == 0 {
		return nil
	}
	cfg.Logger.Info("preloading", "files", n, "size", cfg.Size.String())
	if err := parallel(ctx, cfg.Clients, n, func(ctx context.Context, w *worker, i int64) error {
		return store.Put(ctx, names.File(i), w.data())
	}, cfg, store); err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	return nil
}

// parallel calls f(i) for i in [0, n) from up to conc goroutines and
// returns the first error.
func parallel(ctx context.Context, conc int, n int64, f func(context.Context, *worker, int64) error, cfg *Config, store Store) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for g := range min(int64(conc), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newWorker(cfg, store, 1_000_000+int(g))
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				octx, ocancel := context.WithTimeout(ctx, cfg.Timeout)
				err := f(octx, w, i)
				ocancel()
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}

// startProgress calls progress about once a second until the returned stop
// function is called; stop calls it a last time.
func startProgress(rec *recorder, progress func(Snapshot)) (stop func()) {
	if progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				progress(rec.snapshot(now))
			case <-done:
				progress(rec.snapshot(time.Now()))
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

// since returns when the worker's current operation began.
func (w *worker) since() time.Time { return time.Unix(0, w.began.Load()) }
