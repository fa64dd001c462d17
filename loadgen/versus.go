package loadgen

import (
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
)

// System names the system a result measured, as summaries show it: its
// Label, else its Target, else "cleave".
func (res *Result) System() string {
	switch {
	case res.Label != "":
		return res.Label
	case res.Target != "":
		return res.Target
	}
	return "cleave"
}

// CPUPerOp returns the server CPU µs per operation, or NaN when the run did
// not measure it.
func (res *Result) CPUPerOp() float64 {
	if res.ServerCPU == nil {
		return math.NaN()
	}
	return res.ServerCPU.UsPerOp
}

// role is what a result is in a side-by-side comparison.
type role int

const (
	roleCurrent  role = iota // cleave as built now (its client direct, if any run of the workload was)
	roleRouted               // cleave as built now, through a router, beside direct runs
	roleBaseline             // cleave built from BENCH_BASELINE
	roleEtcd                 // etcd
	roles
)

// roleOf returns r's role; a run of the current cleave through a router
// is roleRouted, which SideBySide makes roleCurrent in a workload that no
// direct run had.
func roleOf(r *Result) role {
	switch {
	case r.Target == "etcd":
		return roleEtcd
	case r.Baseline:
		return roleBaseline
	case !r.Direct:
		return roleRouted
	}
	return roleCurrent
}

// Figures are the headline figures of one run, or the ratios of two runs'.
// NaN marks a figure that is unknown (CPU not measured; errors of a ratio).
type Figures struct {
	Name      string // the system, or "cleave / etcd" for a ratio
	OpsPerSec float64
	P50, P99  float64 // ms
	CPUPerOp  float64 // server CPU µs per operation
	Errors    float64
}

// Versus is one workload as run against several systems: the current
// cleave (its client direct to the clusters, and also through a router
// when both ran), a baseline build of cleave and etcd (whichever ran), and
// their ratios — current / etcd, through a router / etcd, and current /
// baseline — of every figure.
type Versus struct {
	Title  string    // the workload, as Result.Title
	Runs   []Figures // current, baseline, etcd: those that ran
	Ratios []Figures // Name "cleave / etcd" or "current / baseline"
}

// figuresOf returns the figures of one or more runs of a system: with
// several (rounds of the same workload), the median of each figure and
// the sum of the errors, named "SYSTEM (median of N)".
func figuresOf(rs []*Result) Figures {
	name := rs[0].System()
	if len(rs) > 1 {
		name = fmt.Sprintf("%s (median of %d)", name, len(rs))
	}
	med := func(f func(*Result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	f := Figures{Name: name,
		OpsPerSec: med(func(r *Result) float64 { return r.OpsPerSec }),
		P50:       med(func(r *Result) float64 { return r.Latency.P50 }),
		P99:       med(func(r *Result) float64 { return r.Latency.P99 }),
		CPUPerOp:  med((*Result).CPUPerOp),
	}
	for _, r := range rs {
		f.Errors += float64(r.Errors)
	}
	return f
}

// median returns the median of v (the mean of the middle two when even);
// NaN if any value is NaN or v is empty.
func median(v []float64) float64 {
	if len(v) == 0 || slices.ContainsFunc(v, math.IsNaN) {
		return math.NaN()
	}
	v = slices.Clone(v)
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// ratioOf returns b's figures over a's.
func ratioOf(name string, a, b Figures) Figures {
	return Figures{Name: name, OpsPerSec: Ratio(a.OpsPerSec, b.OpsPerSec), P50: Ratio(a.P50, b.P50),
		P99: Ratio(a.P99, b.P99), CPUPerOp: Ratio(a.CPUPerOp, b.CPUPerOp), Errors: math.NaN()}
}

// versusKey is what makes two runs the same workload.
func versusKey(r *Result) string {
	return fmt.Sprintf("%s|%g|%t", r.Title(), r.ReadRatio, r.Stale)
}

// SideBySide groups results that ran the same workload (workload, size,
// clients, mode, read ratio, staleness) against more than one system, in
// the order the workloads first appear. A system that ran a workload more
// than once (rounds) is shown by the medians of its runs' figures.
func SideBySide(rs []*Result) []Versus {
	var order []string
	groups := map[string]*[roles][]*Result{}
	for _, r := range rs {
		k := versusKey(r)
		g := groups[k]
		if g == nil {
			g = new([roles][]*Result)
			groups[k] = g
			order = append(order, k)
		}
		g[roleOf(r)] = append(g[roleOf(r)], r)
	}
	var out []Versus
	for _, k := range order {
		g := groups[k]
		if len(g[roleCurrent]) == 0 {
			g[roleCurrent], g[roleRouted] = g[roleRouted], nil
		}
		v := Versus{}
		var figs [roles]Figures
		for i, rs := range g {
			if len(rs) > 0 {
				v.Title = rs[0].Title()
				figs[i] = figuresOf(rs)
				v.Runs = append(v.Runs, figs[i])
			}
		}
		if len(v.Runs) < 2 {
			continue
		}
		if cur := g[roleCurrent]; len(cur) > 0 {
			if len(g[roleEtcd]) > 0 {
				v.Ratios = append(v.Ratios, ratioOf(cur[0].System()+" / etcd", figs[roleEtcd], figs[roleCurrent]))
				if routed := g[roleRouted]; len(routed) > 0 {
					v.Ratios = append(v.Ratios, ratioOf(routed[0].System()+" / etcd", figs[roleEtcd], figs[roleRouted]))
				}
			}
			if len(g[roleBaseline]) > 0 {
				v.Ratios = append(v.Ratios, ratioOf("current / baseline", figs[roleBaseline], figs[roleCurrent]))
			}
		}
		out = append(out, v)
	}
	return out
}

// fmtRatio writes a ratio as "2.50x", "-" when unknown.
func fmtRatio(r float64) string {
	switch {
	case math.IsNaN(r):
		return "-"
	case math.IsInf(r, 0):
		return "inf"
	}
	return fmt.Sprintf("%.2fx", r)
}

// fmtFig writes a figure with d decimals, "-" when unknown.
func fmtFig(v float64, d int) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.*f", d, v)
}

// WriteSideBySide writes the groups of SideBySide as one table: per
// workload, a line per system and a line per ratio (first / second, so
// ops/s above 1x and the others below 1x mean the first is better). It
// writes nothing if no workload ran against two systems.
func WriteSideBySide(w io.Writer, rs []*Result) error {
	vs := SideBySide(rs)
	if len(vs) == 0 {
		return nil
	}
	fmt.Fprintln(w, "side by side (ratios are first / second: ops/s above 1x is better, latency and CPU below 1x):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, v := range vs {
		fmt.Fprintf(tw, "%s\tops/s\tp50 ms\tp99 ms\tCPU µs/op\terrors\t\n", v.Title)
		for _, f := range v.Runs {
			fmt.Fprintf(tw, "  %s\t%.0f\t%.3f\t%.3f\t%s\t%.0f\t\n", f.Name, f.OpsPerSec, f.P50, f.P99, fmtFig(f.CPUPerOp, 0), f.Errors)
		}
		for _, f := range v.Ratios {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t\t\n", f.Name, fmtRatio(f.OpsPerSec), fmtRatio(f.P50), fmtRatio(f.P99), fmtRatio(f.CPUPerOp))
		}
	}
	return tw.Flush()
}
