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
	hist    *hdr.Histogram // latencies of successful operations
	errHist *hdr.Histogram // latencies of failed operations
	ops     int64
	errors  int64
	bytes   int64
	errs    map[string]int64 // failures by code
}

func newOpRec() *opRec {
	return &opRec{hist: newHist(histFigures), errHist: newHist(histFigures), errs: map[string]int64{}}
}

// secRec is what is recorded for one second of the run.
type secRec struct {
	ops, errors, bytes int64
	hist               *hdr.Histogram
}

// tally is everything a run's Result is computed from: what a recorder
// collects and what Merge rebuilds from results' raw histograms, so that a
// merged result is computed exactly as a single run's is.
type tally struct {
	ops     map[string]*opRec
	all     *hdr.Histogram // successful operations of every kind
	secs    []*secRec
	errs    map[string]int64  // by code
	samples map[string]string // one message per code
}

func newTally() tally {
	return tally{ops: map[string]*opRec{}, all: newHist(histFigures), errs: map[string]int64{}, samples: map[string]string{}}
}

// op returns the record of operation kind name, creating it.
func (t *tally) op(name string) *opRec {
	o := t.ops[name]
	if o == nil {
		o = newOpRec()
		t.ops[name] = o
	}
	return o
}

// sec returns the record of second i (from 0), creating it and those before.
func (t *tally) sec(i int) *secRec {
	for len(t.secs) <= i {
		t.secs = append(t.secs, &secRec{hist: newHist(secFigures)})
	}
	return t.secs[i]
}

// recorder collects samples from every worker. Safe for concurrent use;
// mu is held only while recording one sample or taking a snapshot.
type recorder struct {
	start time.Time          // when measuring began: the end of the warm-up
	code  func(error) string // names a failure's code; set before recording starts

	mu     sync.Mutex
	t      tally
	window *hdr.Histogram // since the last progress snapshot
	total  int64
	failed int64
}

func newRecorder(start time.Time) *recorder {
	return &recorder{
		start:  start,
		code:   func(err error) string { return client.CodeOf(err).String() },
		t:      newTally(),
		window: newHist(secFigures),
	}
}

// record notes one finished operation: op, its (intended) start, when it
// ended, the bytes it moved and its error. A failed operation's latency
// goes to its kind's error histogram, and it is counted by code; only
// successful ones make the latency figures and the per-second series'.
func (r *recorder) record(op string, began, ended time.Time, n int64, err error) {
	us := ended.Sub(began).Microseconds()
	us = min(max(us, histMinUs), histMaxUs)
	sec := max(int(ended.Sub(r.start)/time.Second), 0)
	var code, msg string
	if err != nil {
		code, msg = r.code(err), err.Error()
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.t.op(op)
	s := r.t.sec(sec)
	if err != nil {
		o.errors++
		o.errs[code]++
		o.errHist.RecordValue(us)
		s.errors++
		r.failed++
		r.t.errs[code]++
		if _, ok := r.t.samples[code]; !ok {
			r.t.samples[code] = msg
		}
		return
	}
	o.ops++
	o.bytes += n
	o.hist.RecordValue(us)
	r.t.all.RecordValue(us)
	s.ops++
	s.bytes += n
	s.hist.RecordValue(us)
	r.window.RecordValue(us)
	r.total++
}

// completed returns the operations recorded so far, failed ones included.
func (r *recorder) completed() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total + r.failed
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
