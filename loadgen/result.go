package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Result is the outcome of one run. Its JSON form (-o json) is the stable
// machine interface; fields are only ever added.
//
// Ops counts successful operations and Errors failed ones; OpsPerSec is
// Ops over the measured time (after the warm-up). Latencies are of
// successful operations, in milliseconds, measured from the intended send
// time in open-loop mode; failed operations' are per operation kind, in
// error_latency_ms. The hist fields are the raw HDR histograms behind the
// figures (HdrHistogram's V2 compressed encoding, base64, values in
// microseconds): Merge combines results from several hosts exactly.
type Result struct {
	Workload     string               `json:"workload"`
	Mode         string               `json:"mode"` // "closed" or "open"
	Clients      int                  `json:"clients"`
	Rate         float64              `json:"rate,omitempty"` // target ops/s of open loop
	Size         string               `json:"size"`
	Dist         string               `json:"dist"`
	Theta        float64              `json:"zipf_theta,omitempty"` // skew of zipf and latest
	Roots        int64                `json:"roots"`
	Files        int64                `json:"files"`
	Preload      int64                `json:"preload"`
	Pinned       []string             `json:"pinned_clusters,omitempty"` // with --pin-clusters: client i used only roots of Pinned[i mod len]
	ReadRatio    float64              `json:"read_ratio,omitempty"`
	Stale        bool                 `json:"stale,omitempty"`
	Direct       bool                 `json:"direct,omitempty"` // the client sent file operations straight to the clusters
	Seed         uint64               `json:"seed"`
	Router       string               `json:"router,omitempty"` // the addresses driven (etcd: its endpoints)
	Target       string               `json:"target,omitempty"` // "cleave" or "etcd"; empty in results of older loadgens: cleave
	Label        string               `json:"label,omitempty"`  // what summaries call the system; default Target
	Baseline     bool                 `json:"baseline,omitempty"`
	Started      time.Time            `json:"started"` // when measuring began (after the warm-up)
	DurationS    float64              `json:"duration_s"`
	WarmupS      float64              `json:"warmup_s,omitempty"` // run before Started, not recorded
	Ops          int64                `json:"ops"`
	Errors       int64                `json:"errors"`
	ErrorsByCode map[string]int64     `json:"errors_by_code"`
	ErrorSamples map[string]string    `json:"error_samples,omitempty"`
	OpsPerSec    float64              `json:"ops_per_sec"`
	BytesPerSec  float64              `json:"bytes_per_sec"`
	Latency      Latency              `json:"latency_ms"`
	Percentiles  []Point              `json:"percentiles"` // latency distribution of all ops
	PerOp        map[string]*OpResult `json:"per_op"`
	PerSecond    []Second             `json:"per_second"`
	ServerCPU    *ServerCPU           `json:"server_cpu,omitempty"` // with --cpu-pids or --cpu-tree
	HistUnit     string               `json:"hist_unit,omitempty"`  // unit of the raw histograms' values: "us"
	Hist         string               `json:"hist,omitempty"`       // raw histogram of Latency
	Merged       int                  `json:"merged,omitempty"`     // how many results Merge combined into this one

	// Where and with what the run was made.
	Version    string            `json:"version,omitempty"`    // of cleave-loadgen
	Commit     string            `json:"commit,omitempty"`     // VCS revision of cleave-loadgen
	GoVersion  string            `json:"go_version,omitempty"` // toolchain that built it
	Host       string            `json:"host,omitempty"`       // hostname of the load generator; Merge lists every host, comma-separated
	GOMAXPROCS int               `json:"gomaxprocs,omitempty"` // of the load generator
	NumCPU     int               `json:"num_cpu,omitempty"`
	Flags      map[string]string `json:"flags,omitempty"` // every flag of the command line and its value (secrets redacted)
}

// Latency is a latency summary in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// Point is one point of a latency distribution: P percent of operations
// took at most Ms milliseconds.
type Point struct {
	P  float64 `json:"p"`
	Ms float64 `json:"ms"`
}

// OpResult is the outcome of one operation kind (put, get, ...).
type OpResult struct {
	Ops          int64            `json:"ops"`
	Errors       int64            `json:"errors"`
	ErrorsByCode map[string]int64 `json:"errors_by_code,omitempty"`
	Bytes        int64            `json:"bytes"`
	OpsPerSec    float64          `json:"ops_per_sec"`
	Latency      Latency          `json:"latency_ms"`           // successful operations
	Percentiles  []Point          `json:"percentiles"`          // successful operations
	ErrorLatency Latency          `json:"error_latency_ms"`     // failed operations
	Hist         string           `json:"hist,omitempty"`       // raw histogram of Latency
	ErrorHist    string           `json:"error_hist,omitempty"` // raw histogram of ErrorLatency
}

// Second is one second of the run (T = 1 is the first).
type Second struct {
	T      int     `json:"t"`
	Ops    int64   `json:"ops"`
	Errors int64   `json:"errors"`
	Bytes  int64   `json:"bytes"`
	P50    float64 `json:"p50_ms"`
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
	Hist   string  `json:"hist,omitempty"` // raw histogram (2 significant figures)
}

// percentilePoints are the quantiles the distribution charts show.
var percentilePoints = []float64{0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97.5, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100}

func summarize(h *hdr.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		P50:  usToMs(h.ValueAtQuantile(50)),
		P90:  usToMs(h.ValueAtQuantile(90)),
		P99:  usToMs(h.ValueAtQuantile(99)),
		P999: usToMs(h.ValueAtQuantile(99.9)),
		Max:  usToMs(h.Max()),
		Mean: h.Mean() / 1000,
	}
}

func distribution(h *hdr.Histogram) []Point {
	if h.TotalCount() == 0 {
		return []Point{}
	}
	out := make([]Point, len(percentilePoints))
	for i, p := range percentilePoints {
		v := h.ValueAtQuantile(p)
		if p == 100 {
			v = h.Max()
		}
		out[i] = Point{P: p, Ms: usToMs(v)}
	}
	return out
}

// result builds the Result of a run that measured for elapsed.
func (r *recorder) result(cfg *Config, elapsed time.Duration) (*Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &Result{
		Workload: string(cfg.Workload), Mode: "closed", Clients: cfg.Clients,
		Size: cfg.Size.String(), Dist: string(cfg.dist()), Roots: cfg.Roots, Files: cfg.Files,
		Preload: cfg.preloadCount(), Stale: cfg.Stale, Direct: cfg.Direct, Seed: cfg.Seed, Router: cfg.Router,
		Target: cfg.Target, Label: cfg.Label, Baseline: cfg.Baseline,
		Started: r.start.UTC(), DurationS: max(elapsed.Seconds(), 0), WarmupS: cfg.Warmup.Seconds(),
	}
	if cfg.pin != nil {
		res.Pinned = cfg.pin.Clusters
	}
	if d := cfg.dist(); d == Zipf || d == Latest {
		res.Theta = cfg.Theta
	}
	if cfg.Rate > 0 {
		res.Mode, res.Rate = "open", cfg.Rate
	}
	if cfg.Workload == Mixed {
		res.ReadRatio = cfg.ReadRatio
	}
	t := r.t
	if full := int(cfg.Duration / time.Second); cfg.Ops == 0 && full > 0 && len(t.secs) > full {
		// Operations in flight when the duration ended finish a moment
		// later; count them in the last full second rather than showing
		// a nearly empty extra second.
		last := &secRec{hist: newHist(secFigures)}
		for _, s := range t.secs[full-1:] {
			last.ops += s.ops
			last.errors += s.errors
			last.bytes += s.bytes
			last.hist.Merge(s.hist)
		}
		t.secs = append(t.secs[:full-1:full-1], last)
	}
	if err := t.fill(res); err != nil {
		return nil, err
	}
	return res, nil
}

// fill sets res's counts, rates, latency figures, per-second series and
// raw histograms from t, over res.DurationS.
func (t *tally) fill(res *Result) error {
	secs := res.DurationS
	if secs <= 0 {
		secs = 1e-9
	}
	var err error
	res.Ops, res.Errors = 0, 0
	res.ErrorsByCode = maps.Clone(t.errs)
	res.ErrorSamples = nil
	if len(t.samples) > 0 {
		res.ErrorSamples = maps.Clone(t.samples)
	}
	res.Latency, res.Percentiles = summarize(t.all), distribution(t.all)
	res.HistUnit = histUnit
	if res.Hist, err = encodeHist(t.all); err != nil {
		return err
	}
	res.PerOp = map[string]*OpResult{}
	var bytes int64
	for name, o := range t.ops {
		res.Ops += o.ops
		res.Errors += o.errors
		bytes += o.bytes
		or := &OpResult{
			Ops: o.ops, Errors: o.errors, Bytes: o.bytes, OpsPerSec: float64(o.ops) / secs,
			Latency: summarize(o.hist), Percentiles: distribution(o.hist),
			ErrorLatency: summarize(o.errHist),
		}
		if len(o.errs) > 0 {
			or.ErrorsByCode = maps.Clone(o.errs)
		}
		if or.Hist, err = encodeHist(o.hist); err != nil {
			return err
		}
		if or.ErrorHist, err = encodeHist(o.errHist); err != nil {
			return err
		}
		res.PerOp[name] = or
	}
	res.OpsPerSec = float64(res.Ops) / secs
	res.BytesPerSec = float64(bytes) / secs
	res.PerSecond = make([]Second, len(t.secs))
	for i, s := range t.secs {
		l := summarize(s.hist)
		res.PerSecond[i] = Second{T: i + 1, Ops: s.ops, Errors: s.errors, Bytes: s.bytes, P50: l.P50, P99: l.P99, Max: l.Max}
		if res.PerSecond[i].Hist, err = encodeHist(s.hist); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON writes res as indented JSON.
func (res *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// ReadResult reads a Result written by WriteJSON.
func ReadResult(r io.Reader) (*Result, error) {
	var res Result
	dec := json.NewDecoder(r)
	if err := dec.Decode(&res); err != nil {
		return nil, fmt.Errorf("decode result: %w", err)
	}
	if res.Workload == "" {
		return nil, fmt.Errorf("decode result: no \"workload\" field: not a cleave-loadgen result")
	}
	return &res, nil
}

// Title names the run in one line: "put 1KiB, 64 clients, closed loop".
func (res *Result) Title() string {
	mode := "closed loop"
	if res.Mode == "open" {
		mode = fmt.Sprintf("open loop at %.0f/s", res.Rate)
	}
	return fmt.Sprintf("%s %s, %d clients, %s", res.Workload, res.Size, res.Clients, mode)
}

// WriteTable writes res as the human-readable table.
func (res *Result) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "%s: %s, %.1fs\n", res.System(), res.Title(), res.DurationS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tops\terrors\tops/s\tMiB/s\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\t")
	row := func(name string, ops, errs int64, opsPerSec, bytesPerSec float64, l Latency) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.2f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n",
			name, ops, errs, opsPerSec, bytesPerSec/(1<<20), l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	names := slices.Sorted(maps.Keys(res.PerOp))
	for _, n := range names {
		o := res.PerOp[n]
		row(n, o.Ops, o.Errors, o.OpsPerSec, float64(o.Bytes)/max(res.DurationS, 1e-9), o.Latency)
	}
	if len(names) != 1 {
		row("all", res.Ops, res.Errors, res.OpsPerSec, res.BytesPerSec, res.Latency)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if res.ServerCPU != nil {
		if err := res.ServerCPU.write(w); err != nil {
			return err
		}
	}
	if len(res.ErrorsByCode) > 0 {
		var parts []string
		for _, c := range slices.Sorted(maps.Keys(res.ErrorsByCode)) {
			parts = append(parts, fmt.Sprintf("%s %d", c, res.ErrorsByCode[c]))
		}
		fmt.Fprintf(w, "errors: %s\n", strings.Join(parts, ", "))
		for _, n := range names {
			if o := res.PerOp[n]; o.Errors > 0 {
				l := o.ErrorLatency
				fmt.Fprintf(w, "  failed %s: %d, latency p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", n, o.Errors, l.P50, l.P99, l.Max)
			}
		}
		for _, c := range slices.Sorted(maps.Keys(res.ErrorSamples)) {
			fmt.Fprintf(w, "  e.g. %s\n", res.ErrorSamples[c])
		}
	}
	return nil
}

// WriteSummary writes one line per result — the suite table of make bench —
// then, if some workload ran against more than one system (etcd, a
// baseline build), the side-by-side table of WriteSideBySide.
func WriteSummary(w io.Writer, names []string, rs []*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tsystem\tworkload\tsize\tclients\tops/s\tMiB/s\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\tCPU µs/op\terrors\t")
	for i, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%.0f\t%.2f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%s\t%d\t\n",
			names[i], r.System(), r.Workload, r.Size, r.Clients, r.OpsPerSec, r.BytesPerSec/(1<<20),
			r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.P999, r.Latency.Max, fmtFig(r.CPUPerOp(), 0), r.Errors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(SideBySide(rs)) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	return WriteSideBySide(w, rs)
}

// write writes the server CPU lines of the table form.
func (c *ServerCPU) write(w io.Writer) error {
	fmt.Fprintf(w, "server CPU: %.0f µs/op (%.2f s user+system over %d processes); loadgen itself %.0f µs/op\n",
		c.UsPerOp, c.Seconds, len(c.Procs), c.LoadgenUsPerOp)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  process\tpid\tuser s\tsys s\tµs/op\tshare\t")
	for _, p := range c.Procs {
		note := ""
		if p.Error != "" {
			note = "  (" + p.Error + ")"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%.2f\t%.2f\t%.0f\t%.0f%%\t%s\n", p.Label, p.PID, p.UserS, p.SysS, p.UsPerOp, 100*p.Share, note)
	}
	return tw.Flush()
}
