package loadgen

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Delta is one compared figure: A's value, B's, and B/A.
type Delta struct {
	Metric string  `json:"metric"`
	A      float64 `json:"a"`
	B      float64 `json:"b"`
	Ratio  float64 `json:"ratio"`  // B / A; +Inf if A is 0 and B not, 1 if both 0
	Better string  `json:"better"` // "higher" or "lower": which way is an improvement
}

// Ratio returns b/a, with 1 when both are 0 and +Inf when only a is.
func Ratio(a, b float64) float64 {
	switch {
	case a == 0 && b == 0:
		return 1
	case a == 0:
		return math.Inf(1)
	}
	return b / a
}

// Compare returns the figures of b relative to a: throughput, latency
// percentiles and errors.
func Compare(a, b *Result) []Delta {
	d := func(m string, x, y float64, better string) Delta {
		return Delta{Metric: m, A: x, B: y, Ratio: Ratio(x, y), Better: better}
	}
	return []Delta{
		d("ops/s", a.OpsPerSec, b.OpsPerSec, "higher"),
		d("p50 ms", a.Latency.P50, b.Latency.P50, "lower"),
		d("p90 ms", a.Latency.P90, b.Latency.P90, "lower"),
		d("p99 ms", a.Latency.P99, b.Latency.P99, "lower"),
		d("p99.9 ms", a.Latency.P999, b.Latency.P999, "lower"),
		d("max ms", a.Latency.Max, b.Latency.Max, "lower"),
		d("errors", float64(a.Errors), float64(b.Errors), "lower"),
	}
}

// verdict says whether ratio r is an improvement, a regression or neither
// (within 5%).
func verdict(r float64, better string) string {
	switch {
	case math.IsInf(r, 1):
		if better == "lower" {
			return "worse"
		}
		return "better"
	case r > 0.95 && r < 1.05:
		return "~"
	case (r > 1) == (better == "higher"):
		return "better"
	}
	return "worse"
}

// WriteCompare writes the comparison of b against a as tables: the totals,
// then each operation kind's throughput, p50, p99 and error rate.
func WriteCompare(w io.Writer, a, b *Result, nameA, nameB string) error {
	fmt.Fprintf(w, "A: %s (%s)\nB: %s (%s)\n", nameA, a.Title(), nameB, b.Title())
	if a.Workload != b.Workload || a.Size != b.Size || a.Clients != b.Clients || a.Mode != b.Mode {
		fmt.Fprintln(w, "note: the runs differ in workload, size, clients or mode")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tA\tB\tB/A\t\t")
	for _, d := range Compare(a, b) {
		ratio := "inf"
		if !math.IsInf(d.Ratio, 0) {
			ratio = fmt.Sprintf("%.2fx", d.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", d.Metric, num(d.A), num(d.B), ratio, verdict(d.Ratio, d.Better))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(a.PerOp)+len(b.PerOp) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	return writeOpCompare(w, a, b)
}

func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	if math.Abs(v) >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// Thresholds are the regressions CheckRegressions tolerates per operation
// kind, as fractions of A's figure (0.1 = 10%); a negative one is not
// checked.
type Thresholds struct {
	Throughput float64 // largest drop of ops/s
	P50        float64 // largest rise of the p50 latency
	P99        float64 // largest rise of the p99 latency
	// ErrorRate is the largest rise of errors / (ops + errors). From an
	// error rate of 0, any error is a regression.
	ErrorRate float64
}

// NoThresholds checks nothing.
var NoThresholds = Thresholds{Throughput: -1, P50: -1, P99: -1, ErrorRate: -1}

// Regression is one figure of one operation kind past its threshold.
type Regression struct {
	Op     string  `json:"op"`
	Metric string  `json:"metric"` // "ops/s", "p50 ms", "p99 ms" or "error rate"
	A      float64 `json:"a"`
	B      float64 `json:"b"`
	Change float64 `json:"change"` // (B - A) / A, signed so that > 0 is worse; +Inf from 0
	Limit  float64 `json:"limit"`
}

// String is "read p99 ms: 4.100 -> 5.200 (+26.8% worse, limit 10.0%)".
func (r Regression) String() string {
	ch := "from 0"
	if !math.IsInf(r.Change, 0) {
		ch = fmt.Sprintf("%+.1f%% worse", 100*r.Change)
	}
	return fmt.Sprintf("%s %s: %s -> %s (%s, limit %.1f%%)", r.Op, r.Metric, num(r.A), num(r.B), ch, 100*r.Limit)
}

// ErrorRate is errors / (ops + errors) of an operation kind, 0 if none ran.
func (o *OpResult) ErrorRate() float64 {
	if o == nil || o.Ops+o.Errors == 0 {
		return 0
	}
	return float64(o.Errors) / float64(o.Ops+o.Errors)
}

// CheckRegressions returns every figure of B worse than A's by more than
// th allows, for each operation kind A ran (one B did not run has
// throughput 0), in the order of the kinds' names.
func CheckRegressions(a, b *Result, th Thresholds) []Regression {
	var out []Regression
	check := func(op, metric string, x, y, limit float64, higherIsBetter bool) {
		if limit < 0 {
			return
		}
		change := relChange(x, y)
		if higherIsBetter {
			change = -change
		}
		if change > limit {
			out = append(out, Regression{Op: op, Metric: metric, A: x, B: y, Change: change, Limit: limit})
		}
	}
	for _, op := range slices.Sorted(maps.Keys(a.PerOp)) {
		x, y := a.PerOp[op], b.PerOp[op]
		if y == nil {
			y = &OpResult{}
		}
		check(op, "ops/s", x.OpsPerSec, y.OpsPerSec, th.Throughput, true)
		if y.Ops > 0 {
			check(op, "p50 ms", x.Latency.P50, y.Latency.P50, th.P50, false)
			check(op, "p99 ms", x.Latency.P99, y.Latency.P99, th.P99, false)
		}
		check(op, "error rate", x.ErrorRate(), y.ErrorRate(), th.ErrorRate, false)
	}
	return out
}

// relChange is (y - x) / x: 0 when both are 0, +Inf when only x is.
func relChange(x, y float64) float64 {
	switch {
	case x == y:
		return 0
	case x == 0:
		return math.Inf(1)
	}
	return (y - x) / x
}

// ParsePercent parses "10%" (or "2.5%") into 0.1 (0.025).
func ParsePercent(s string) (float64, error) {
	t, ok := strings.CutSuffix(strings.TrimSpace(s), "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if !ok || err != nil || !(f >= 0) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q: want a percentage >= 0 such as 10%%", s)
	}
	return f / 100, nil
}

// writeOpCompare writes the per-operation rows of WriteCompare.
func writeOpCompare(w io.Writer, a, b *Result) error {
	ops := slices.Sorted(maps.Keys(a.PerOp))
	for _, op := range slices.Sorted(maps.Keys(b.PerOp)) {
		if a.PerOp[op] == nil {
			ops = append(ops, op)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tmetric\tA\tB\tB/A\t\t")
	for _, op := range ops {
		x, y := a.PerOp[op], b.PerOp[op]
		if x == nil {
			x = &OpResult{}
		}
		if y == nil {
			y = &OpResult{}
		}
		for _, d := range []Delta{
			{Metric: "ops/s", A: x.OpsPerSec, B: y.OpsPerSec, Better: "higher"},
			{Metric: "p50 ms", A: x.Latency.P50, B: y.Latency.P50, Better: "lower"},
			{Metric: "p99 ms", A: x.Latency.P99, B: y.Latency.P99, Better: "lower"},
			{Metric: "error rate %", A: 100 * x.ErrorRate(), B: 100 * y.ErrorRate(), Better: "lower"},
		} {
			d.Ratio = Ratio(d.A, d.B)
			ratio := "inf"
			if !math.IsInf(d.Ratio, 0) {
				ratio = fmt.Sprintf("%.2fx", d.Ratio)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", op, d.Metric, num(d.A), num(d.B), ratio, verdict(d.Ratio, d.Better))
		}
	}
	return tw.Flush()
}
