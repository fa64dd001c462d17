package loadgen

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cleavefs/cleave/client"
)

// Run sets up the namespace, preloads files (the YCSB load phase), runs
// cfg's workload for the warm-up without recording, then measures it
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
	if cfg.PinClusters {
		if err := pin(ctx, &cfg, store); err != nil {
			return nil, err
		}
	}
	if err := setup(ctx, &cfg, store); err != nil {
		return nil, err
	}

	var seq *insertSeq
	if isYCSB(cfg.Workload) {
		seq = newInsertSeq(cfg.Files)
	}
	workers := make([]*worker, cfg.Clients)
	for i := range workers {
		workers[i] = newWorker(&cfg, store, i, seq)
	}
	cpu, err := startCPU(cfg.CPUPIDs, cfg.ClockTicks) // checks the pids before the run
	if err != nil {
		return nil, err
	}
	start := time.Now()
	p := phases{measure: start.Add(cfg.Warmup)}
	rec := newRecorder(p.measure)
	rec.code = func(err error) string { return errorCode(store, err) }
	if cfg.Duration > 0 {
		p.end = p.measure.Add(cfg.Duration)
	}
	if cfg.Rate > 0 {
		s := NewSchedule(start, cfg.Rate)
		p.sched = &s
		if cfg.Warmup > 0 {
			p.warmOps = s.DueBy(p.measure.Add(-1))
		}
	}
	var tickets atomic.Int64
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(runCtx, rec, &tickets, &p)
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	if cfg.Warmup > 0 {
		waitWarmup(ctx, p.measure, allDone)
		if cpu != nil { // measure the servers' CPU from the end of the warm-up
			if cpu, err = startCPU(cfg.CPUPIDs, cfg.ClockTicks); err != nil {
				cancel()
				<-allDone
				return nil, err
			}
		}
	}
	stopProgress := startProgress(rec, progress)
	waitWorkers(&cfg, workers, rec, allDone, p.end, cancel)
	elapsed := time.Since(p.measure)
	stopProgress()
	// The CPU window ends before the result is built: encoding its
	// histograms is not the load generator's cost per operation.
	serverCPU := cpu.stop(rec.completed())
	res, err := rec.result(&cfg, elapsed)
	if err != nil {
		return nil, err
	}
	res.ServerCPU = serverCPU
	res.Host, _ = os.Hostname()
	res.GOMAXPROCS, res.NumCPU = runtime.GOMAXPROCS(0), runtime.NumCPU()
	res.Version, res.Commit, res.GoVersion = BuildInfo()
	return res, nil
}

// phases are the times a run's workers go by.
type phases struct {
	measure time.Time // the end of the warm-up: operations begun before are not recorded
	end     time.Time // no operation begins at or after it; zero: no time limit
	sched   *Schedule // open loop: when operation i is due; nil: closed loop
	warmOps int64     // open loop: operations due before measure
}

// waitWarmup waits until measuring begins at at, or the run ends first.
func waitWarmup(ctx context.Context, at time.Time, done <-chan struct{}) {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	case <-ctx.Done():
	}
}

// waitWorkers waits until every worker returned, or until an operation
// outlived its deadline by far past end: then it counts each worker still
// inside a call as a failed operation and stops waiting.
func waitWorkers(cfg *Config, workers []*worker, rec *recorder, allDone <-chan struct{}, end time.Time, cancel func()) {
	var watchdog <-chan time.Time
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
}

// hangGrace is how long past its deadline an operation may take before the
// run stops waiting for it.
var hangGrace = 5 * time.Second // a variable so tests can shorten it

// errHung is recorded for an operation that did not return within its
// deadline plus hangGrace: the SDK call ignored its context.
var errHung = &client.Error{Code: client.CodeTimeout, Op: "loadgen",
	Message: "operation did not return within its deadline + 5s (the SDK call ignored its context); the run stopped waiting for it"}

// loop runs operations until the run is over: the duration passed, the
// operation count was reached, or ctx ended. Operations begun during the
// warm-up are not recorded and do not count towards cfg.Ops.
func (w *worker) loop(ctx context.Context, rec *recorder, tickets *atomic.Int64, p *phases) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for ctx.Err() == nil {
		began, warm, ok := w.next(ctx, tickets, p, timer)
		if !ok {
			return
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
		if !warm {
			rec.record(op, began, time.Now(), n, err)
		}
	}
}

// next waits for the worker's next operation and returns when it begins
// (its due time in open loop) and whether it is a warm-up one; ok is false
// when the run is over.
func (w *worker) next(ctx context.Context, tickets *atomic.Int64, p *phases, timer *time.Timer) (began time.Time, warm, ok bool) {
	if p.sched == nil {
		began = time.Now()
		if began.Before(p.measure) {
			return began, true, true
		}
		if !p.end.IsZero() && !began.Before(p.end) {
			return began, false, false
		}
		i := tickets.Add(1) - 1
		return began, false, w.cfg.Ops == 0 || i < w.cfg.Ops
	}
	i := tickets.Add(1) - 1
	if w.cfg.Ops > 0 && i-p.warmOps >= w.cfg.Ops {
		return began, false, false
	}
	began = p.sched.Due(i)
	if !p.end.IsZero() && !began.Before(p.end) {
		return began, false, false
	}
	if d := time.Until(began); d > 0 {
		timer.Reset(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return began, false, false
		}
	}
	return began, i < p.warmOps, true
}

// pin sets cfg.pin from store's routing table: ceil(Roots/N) roots for
// each of its N clusters.
func pin(ctx context.Context, cfg *Config, store Store) error {
	tb, ok := store.(Tabler)
	if !ok {
		return fmt.Errorf("pin clusters: %w (this target has no routing table)", ErrNotSupported)
	}
	tctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	t, err := tb.Table(tctx)
	if err != nil {
		return fmt.Errorf("pin clusters: routing table: %w", err)
	}
	owners := map[string]bool{}
	for _, ro := range t.Ranges {
		owners[ro.Cluster] = true
	}
	n := max(int64(len(owners)), 1) // PinRoots reports a table without ranges
	p, err := PinRoots(t, cfg.Prefix, (cfg.Roots+n-1)/n)
	if err != nil {
		return err
	}
	cfg.pin = p
	cfg.Logger.Info("clients pinned to clusters", "clusters", len(p.Clusters), "roots_per_cluster", len(p.Roots[0]))
	return nil
}

// setup creates the root directories and preloads files with cfg.Clients
// workers. Nothing here is measured.
func setup(ctx context.Context, cfg *Config, store Store) error {
	names := Namer{Prefix: cfg.Prefix, Roots: cfg.Roots}
	if cfg.pin != nil {
		names.Dirs = slices.Concat(cfg.pin.Roots...) // every cluster's pinned roots
		names.Roots = int64(len(names.Dirs))
	}
	if err := parallel(ctx, cfg.Clients, names.Roots, func(ctx context.Context, _ *worker, i int64) error {
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
			w := newWorker(cfg, store, 1_000_000+int(g), nil)
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
