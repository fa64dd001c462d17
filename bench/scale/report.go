package main

import (
	"fmt"
	"html"
	"io"
	"strings"

	"github.com/cleavefs/cleave/loadgen"
)

// efficiency is throughput at a size over the first size's scaled
// linearly: 1 is perfect scaling.
func efficiency(rep *report, i int, pick func(step) float64) float64 {
	base := rep.Steps[0]
	if pick(base) == 0 {
		return 0
	}
	linear := pick(base) * float64(rep.Steps[i].Clusters) / float64(base.Clusters)
	return pick(rep.Steps[i]) / linear
}

func weakOps(s step) float64   { return s.Weak.OpsPerSec }
func strongOps(s step) float64 { return s.Strong.OpsPerSec }

// printTable prints one line per size: weak and strong throughput (the
// median round), their share of linear (weak) or of one cluster (strong),
// p99s, split time, the rounds' spread, and where the CPU went in the
// median weak round: the whole machine, the nodes against their quotas.
func printTable(w io.Writer, rep *report) {
	fmt.Fprintf(w, "\nscale-out: 1 KiB durable puts, node processes capped at %.2f core (CFS period %g ms), %d clients per cluster (weak%s), %d in all (strong)%s, median of %d round(s)\n",
		rep.Quota, rep.PeriodMs, rep.PerClust, map[bool]string{true: ", pinned to their cluster", false: ", unpinned"}[rep.WeakPinned], rep.Strong, map[bool]string{true: ", fresh deployments", false: ", grown by splitting"}[rep.Fresh], max(rep.Rounds, 1))
	fmt.Fprintf(w, "%8s  %10s %9s %9s  %10s %9s %9s  %8s  %11s  %11s  %7s %7s %7s %6s %7s %6s\n", "clusters", "weak op/s", "of linear", "p99 ms",
		"strong op/s", "vs 1st", "p99 ms", "split s", "weak range", "strong rng", "machine", "nodes", "others", "thrtl", "ldr µs", "probe")
	probe0 := 0.0
	if len(rep.Steps) > 0 {
		if r := medianRound(rep.Steps[0].WeakRounds, rep.Steps[0].Weak); r != nil {
			probe0 = r.Probe.NsPerOp
		}
	}
	for i, s := range rep.Steps {
		fmt.Fprintf(w, "%8d  %10.0f %8.0f%% %9.1f  %10.0f %8.2fx %9.1f  %8.0f  %5.0f-%-5.0f  %5.0f-%-5.0f",
			s.Clusters, s.Weak.OpsPerSec, 100*efficiency(rep, i, weakOps), s.Weak.Latency.P99,
			s.Strong.OpsPerSec, strongOps(s)/strongOps(rep.Steps[0]), s.Strong.Latency.P99, s.SplitS,
			s.WeakSpread[0], s.WeakSpread[1], s.StrongSpread[0], s.StrongSpread[1])
		if r := medianRound(s.WeakRounds, s.Weak); r != nil {
			fmt.Fprintf(w, "  %7.2f %7.2f %7.2f %5.0f%% %7.0f", r.CPU.Machine, r.CPU.Nodes, r.CPU.Other, 100*r.Throttle.Share, r.CPU.LeaderUsPerPut)
			if probe0 > 0 && r.Probe.NsPerOp > 0 {
				fmt.Fprintf(w, " %5.2fx", r.Probe.NsPerOp/probe0)
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "(ranges: lowest-highest round; machine, nodes, others: cores busy in the median weak round; thrtl: share of the nodes' CFS periods that ran out of quota; ldr µs: leaders' CPU per put; probe: the probe's CPU per operation, against the first size's)")
}

// medianRound finds the round whose result is res; nil if none is.
func medianRound(rs []*round, res *loadgen.Result) *round {
	for _, r := range rs {
		if r.result == res {
			return r
		}
	}
	return nil
}

// renderHTML draws throughput and p99 against clusters, with the linear
// line, as inline SVG: no script, nothing fetched.
func renderHTML(rep *report) string {
	var b strings.Builder
	b.WriteString(`<!doctype html><meta charset="utf-8"><title>cleave scale-out</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}svg{background:#fafafa;border:1px solid #ddd}td,th{padding:.2em .8em;text-align:right}</style>
<h1>cleave scale-out</h1>`)
	fmt.Fprintf(&b, "<p>1 KiB durable puts; every node process capped at %.2f core (CFS period %g ms); %d clients per cluster for weak scaling, %d in all for strong; %s. Started %s.</p>",
		rep.Quota, rep.PeriodMs, rep.PerClust, rep.Strong, map[bool]string{true: "a fresh deployment per size", false: "grown by splitting every cluster"}[rep.Fresh], rep.Started.Format("2006-01-02 15:04 MST"))
	var pre strings.Builder
	printTable(&pre, rep)
	b.WriteString("<pre>" + html.EscapeString(pre.String()) + "</pre>")
	b.WriteString("<h2>Throughput</h2>")
	b.WriteString(plot(rep, "puts/s", []series{
		{"linear (weak)", "#999", true, func(s step) float64 {
			return weakOps(rep.Steps[0]) * float64(s.Clusters) / float64(rep.Steps[0].Clusters)
		}},
		{"weak scaling", "#1f77b4", false, weakOps},
		{"strong scaling", "#ff7f0e", false, strongOps},
	}))
	b.WriteString("<h2>p99 latency</h2>")
	b.WriteString(plot(rep, "ms", []series{
		{"weak scaling", "#1f77b4", false, func(s step) float64 { return s.Weak.Latency.P99 }},
		{"strong scaling", "#ff7f0e", false, func(s step) float64 { return s.Strong.Latency.P99 }},
	}))
	return b.String()
}

// series is one line of a plot.
type series struct {
	name   string
	colour string
	dashed bool
	y      func(step) float64
}

// plot draws the series against the steps' cluster counts, on linear axes
// from zero.
func plot(rep *report, unit string, ss []series) string {
	const w, h, left, bottom, top, right = 640, 320, 70, 40, 20, 160
	maxX, maxY := 0.0, 0.0
	for _, st := range rep.Steps {
		maxX = max(maxX, float64(st.Clusters))
		for _, s := range ss {
			maxY = max(maxY, s.y(st))
		}
	}
	if maxY == 0 {
		maxY = 1
	}
	maxY *= 1.1
	x := func(v float64) float64 { return left + v/maxX*(w-left-right) }
	y := func(v float64) float64 { return h - bottom - v/maxY*(h-bottom-top) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`, w, h)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`,
		left, h-bottom, w-right, h-bottom, left, top, left, h-bottom)
	for _, st := range rep.Steps {
		fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">%d</text>`, x(float64(st.Clusters)), h-bottom+18, st.Clusters)
	}
	for i := 0; i <= 4; i++ {
		v := maxY * float64(i) / 4
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%.0f</text>`, left-6, y(v)+4, v)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">clusters</text>`, (w-right+left)/2, h-4)
	fmt.Fprintf(&b, `<text x="12" y="%d" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`, h/2, h/2, unit)
	for i, s := range ss {
		var pts []string
		for _, st := range rep.Steps {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(st.Clusters)), y(s.y(st))))
		}
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`, s.colour, dash, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/><text x="%d" y="%d">%s</text>`,
			w-right+10, top+10+i*20, w-right+30, top+10+i*20, s.colour, dash, w-right+36, top+14+i*20, html.EscapeString(s.name))
	}
	b.WriteString("</svg>")
	return b.String()
}
