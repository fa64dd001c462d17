package loadgen

import (
	"fmt"
	"io"
	"math"
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

// WriteCompare writes the comparison of b against a as a table.
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
	return tw.Flush()
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
