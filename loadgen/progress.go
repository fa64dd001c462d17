package loadgen

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Progress is a live progress bar (mpb) showing elapsed time, ops/s, the
// p99 of the last second and errors. Use it only on a terminal; the caller
// decides (cleave-loadgen shows it when stderr is a TTY and neither -o json
// nor --quiet is given).
type Progress struct {
	p     *mpb.Progress
	bar   *mpb.Bar
	total int64 // bar length: seconds, or operations when counting ops
	byOps bool
	line  atomic.Value // string: ops/s, p99, errors
	last  Snapshot
}

// NewProgress starts a bar on out for a run of cfg.
func NewProgress(out io.Writer, cfg Config) *Progress {
	pr := &Progress{p: mpb.New(mpb.WithOutput(out), mpb.WithWidth(32), mpb.WithRefreshRate(250*time.Millisecond))}
	pr.total, pr.byOps = int64(cfg.Duration/time.Second), false
	if cfg.Ops > 0 {
		pr.total, pr.byOps = cfg.Ops, true
	}
	pr.total = max(pr.total, 1)
	pr.line.Store("starting")
	name := string(cfg.Workload) + " " + cfg.Size.String() + " x" + fmt.Sprint(cfg.Clients)
	pr.bar = pr.p.AddBar(pr.total,
		mpb.PrependDecorators(decor.Name(name+" ", decor.WCSyncSpaceR), decor.Elapsed(decor.ET_STYLE_GO)),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return pr.line.Load().(string) })),
	)
	return pr
}

// Update takes a snapshot from Run's progress callback.
func (pr *Progress) Update(s Snapshot) {
	dt := (s.Elapsed - pr.last.Elapsed).Seconds()
	rate := 0.0
	if dt > 0 {
		rate = float64(s.Ops-pr.last.Ops) / dt
	}
	pr.line.Store(fmt.Sprintf("%8.0f ops/s  p99 %7.3f ms  errors %d", rate, s.WindowP99, s.Errors))
	if pr.byOps {
		pr.bar.SetCurrent(min(s.Ops+s.Errors, pr.total))
	} else {
		pr.bar.SetCurrent(min(int64(s.Elapsed/time.Second), pr.total))
	}
	pr.last = s
}

// Done completes the bar and waits for its last render.
func (pr *Progress) Done() {
	pr.bar.SetCurrent(pr.total)
	pr.p.Wait()
}
