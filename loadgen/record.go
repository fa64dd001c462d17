package loadgen

import (
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/cleavefs/cleave/client"
)

// Histogram bounds: latencies in microseconds from 1 µs to 60 s. Whole-run
// histograms keep 3 significant figures; the per-second ones 2, so that an
// hour-long run stays small (a 2-figure histogram is about 10 KiB).
const (
	histMinUs   = 1
	histMaxUs   = 60_000_000
	histFigures = 3
	secFigures  = 2
)

func newHist(figures int) *hdr.Histogram { return hdr.New(histMinUs, histMaxUs, figures) }

// opRec is what is recorded for one operation kind.
type opRec struct {
	hist   *hdr.Histogram
	ops    int64
	errors int64
	bytes  int64
}

// secRec is what is recorded for one second of the run.
type secRec struct {
	ops, errors, bytes int64
	hist               *hdr.Histogram
}

// recorder collects samples from every worker. Safe for concurrent use;
// mu is held only while recording one sample or taking a snapshot.
type recorder struct {
	start time.Time
	code  func(error) string // names a failure's code; set before recording starts

	mu      sync.Mutex
	ops     map[string]*opRec
	all     *hdr.Histogram
	secs    []*secRec
	errs    map[string]int64  // by wire code name
	samples map[string]string // one message per code
	window  *hdr.Histogram    // since the last progress snapshot
	total   int64
	failed  int64
}

func newRecorder(start time.Time) *recorder {
	return &recorder{
		start:   start,
		code:    func(err error) string { return client.CodeOf(err).String() },
		ops:     map[string]*opRec{},
		all:     newHist(histFigures),
		errs:    map[string]int64{},
		samples: map[string]string{},
		window:  newHist(secFigures),
	}
}

// record notes one finished operation: op, its (intended) start, when it
// ended, the bytes it moved and its error. Latencies of failed operations
// are not put in the histograms; failures are counted by code.
func (r *recorder) record(op string, began, ended time.Time, n int64, err error) {
	us := ended.Sub(began).Microseconds()
	us = min(max(us, histMinUs), histMaxUs)
	sec := int(ended.Sub(r.start) / time.Second)
	if sec < 0 {
		sec = 0
	}
	var code, msg string
	if err != nil {
		code, msg = r.code(err), err.Error()
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.ops[op]
	if o == nil {
		o = &opRec{hist: newHist(histFigures)}
		r.ops[op] = o
	}
	for len(r.secs) <= sec {
		r.secs = append(r.secs, &secRec{hist: newHist(secFigures)})
	}
	s := r.secs[sec]
	if err != nil {
		o.errors++
		s.errors++
		r.failed++
		r.errs[code]++
		if _, ok := r.samples[code]; !ok {
			r.samples[code] = msg
		}
		return
	}
	o.ops++
	o.bytes += n
	o.hist.RecordValue(us)
	r.all.RecordValue(us)
	s.ops++
	s.bytes += n
	s.hist.RecordValue(us)
	r.window.RecordValue(us)
	r.total++
}

// Snapshot is a live view of a run for progress display.
type Snapshot struct {
	Elapsed   time.Duration
	Ops       int64   // successful operations so far
	Errors    int64   // failed operations so far
	WindowP99 float64 // p99 in ms since the previous snapshot (0 if none)
}

// snapshot returns the live view and starts a new p99 window.
func (r *recorder) snapshot(now time.Time) Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Snapshot{Elapsed: now.Sub(r.start), Ops: r.total, Errors: r.failed}
	if r.window.TotalCount() > 0 {
		s.WindowP99 = usToMs(r.window.ValueAtQuantile(99))
	}
	r.window.Reset()
	return s
}

func usToMs(us int64) float64 { return float64(us) / 1000 }
