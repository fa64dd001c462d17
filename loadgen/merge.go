package loadgen

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// histUnit is the unit of the raw histograms' values.
const histUnit = "us"

// encodeHist returns h in HdrHistogram's V2 compressed encoding, base64:
// the form HdrHistogram's tools in every language read.
func encodeHist(h *hdr.Histogram) (string, error) {
	b, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		return "", fmt.Errorf("encode histogram: %w", err)
	}
	return string(b), nil
}

// decodeHist decodes what encodeHist wrote; what names it in errors.
// An empty string is an empty histogram of the given precision.
func decodeHist(s string, figures int, what string) (*hdr.Histogram, error) {
	if s == "" {
		return newHist(figures), nil
	}
	h, err := hdr.Decode([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("%s: raw histogram: %w", what, err)
	}
	return h, nil
}

// ErrNotMergeable is returned by Merge for results it cannot combine.
var ErrNotMergeable = errors.New("loadgen: results cannot be merged")

// Merge combines the results of runs made at the same time from several
// hosts against one system into the result of one run over all their
// operations: counts and errors summed, latency figures computed from the
// merged raw histograms (so exactly those of one run that recorded every
// sample), throughput as all operations over the longest duration, the
// per-second series summed second by second. The runs must be of the same
// workload, size and mode and carry raw histograms (results of this
// version on). Server CPU is kept when exactly one result measured it
// (the host next to the servers), per operation of the merged total.
func Merge(rs ...*Result) (*Result, error) {
	if len(rs) == 0 {
		return nil, fmt.Errorf("%w: no results", ErrNotMergeable)
	}
	first := rs[0]
	t := newTally()
	out := *first
	out.Clients, out.DurationS, out.Merged, out.ServerCPU = 0, 0, 0, nil
	var hosts []string
	var cpus []*ServerCPU
	for i, r := range rs {
		if r.Workload != first.Workload || r.Size != first.Size || r.Mode != first.Mode {
			return nil, fmt.Errorf("%w: result %d is %s, result 1 is %s", ErrNotMergeable, i+1, r.Title(), first.Title())
		}
		if r.Hist == "" && r.Ops > 0 {
			return nil, fmt.Errorf("%w: result %d has no raw histograms (written by an older cleave-loadgen)", ErrNotMergeable, i+1)
		}
		if err := t.add(r, fmt.Sprintf("result %d", i+1)); err != nil {
			return nil, err
		}
		out.Clients += r.Clients
		out.DurationS = max(out.DurationS, r.DurationS)
		out.Merged += max(r.Merged, 1)
		if r.Started.Before(out.Started) {
			out.Started = r.Started
		}
		if r.Host != "" && !slices.Contains(hosts, r.Host) {
			hosts = append(hosts, r.Host)
		}
		if r.ServerCPU != nil {
			cpus = append(cpus, r.ServerCPU)
		}
	}
	out.Host = strings.Join(hosts, ",")
	if err := t.fill(&out); err != nil {
		return nil, err
	}
	if len(cpus) == 1 {
		c := *cpus[0]
		c.UsPerOp = c.Seconds * 1e6 / float64(max(out.Ops+out.Errors, 1))
		out.ServerCPU = &c
	}
	return &out, nil
}

// add merges result r's raw histograms and counts into t.
func (t *tally) add(r *Result, what string) error {
	all, err := decodeHist(r.Hist, histFigures, what)
	if err != nil {
		return err
	}
	t.all.Merge(all)
	for _, name := range slices.Sorted(maps.Keys(r.PerOp)) {
		o := r.PerOp[name]
		h, err := decodeHist(o.Hist, histFigures, what+" "+name)
		if err != nil {
			return err
		}
		eh, err := decodeHist(o.ErrorHist, histFigures, what+" "+name+" errors")
		if err != nil {
			return err
		}
		m := t.op(name)
		m.hist.Merge(h)
		m.errHist.Merge(eh)
		m.ops += o.Ops
		m.errors += o.Errors
		m.bytes += o.Bytes
		for c, n := range o.ErrorsByCode {
			m.errs[c] += n
		}
	}
	for c, n := range r.ErrorsByCode {
		t.errs[c] += n
	}
	for c, msg := range r.ErrorSamples {
		if _, ok := t.samples[c]; !ok {
			t.samples[c] = msg
		}
	}
	for i, s := range r.PerSecond {
		h, err := decodeHist(s.Hist, secFigures, fmt.Sprintf("%s second %d", what, s.T))
		if err != nil {
			return err
		}
		m := t.sec(i)
		m.ops += s.Ops
		m.errors += s.Errors
		m.bytes += s.Bytes
		m.hist.Merge(h)
	}
	return nil
}
