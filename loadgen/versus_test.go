package loadgen

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

// headline returns a put run of system s with the given figures.
func headline(target, label string, baseline bool, clients int, ops, p50, p99, cpu float64) *Result {
	r := &Result{Workload: "put", Size: "1KiB", Mode: "closed", Clients: clients, Target: target, Label: label,
		Baseline: baseline, OpsPerSec: ops, Latency: Latency{P50: p50, P99: p99}}
	if cpu > 0 {
		r.ServerCPU = &ServerCPU{UsPerOp: cpu}
	}
	return r
}

func TestSideBySideRatios(t *testing.T) {
	rs := []*Result{
		headline("cleave", "", false, 64, 12000, 2, 8, 150),
		headline("cleave", "cleave@abc1234", true, 64, 1800, 30, 90, 1400),
		headline("etcd", "", false, 64, 2000, 25, 60, 300),
		headline("cleave", "", false, 16, 5000, 3, 9, 0), // only cleave ran it: no group
		headline("etcd", "", false, 1, 300, 3, 6, 900),   // etcd alone: no group
		headline("cleave", "", false, 1, 600, 1.5, 2, 0), // CPU not measured
		{Workload: "mixed", Size: "1KiB", Mode: "closed", Clients: 64, ReadRatio: 0.9, Target: "etcd", OpsPerSec: 1},
		{Workload: "mixed", Size: "1KiB", Mode: "closed", Clients: 64, ReadRatio: 0.5, OpsPerSec: 1}, // another read ratio: not the same workload
	}
	vs := SideBySide(rs)
	if len(vs) != 2 {
		t.Fatalf("%d groups: %+v, want put c64 and put c1", len(vs), vs)
	}
	v := vs[0]
	if v.Title != "put 1KiB, 64 clients, closed loop" || len(v.Runs) != 3 || len(v.Ratios) != 2 {
		t.Fatalf("group %+v: want put c64 with 3 runs and 2 ratios", v)
	}
	if v.Runs[0].Name != "cleave" || v.Runs[1].Name != "cleave@abc1234" || v.Runs[2].Name != "etcd" {
		t.Errorf("runs %+v: want current, baseline, etcd", v.Runs)
	}
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %g, want %g", what, got, want)
		}
	}
	e := v.Ratios[0]
	if e.Name != "cleave / etcd" {
		t.Errorf("first ratio %q", e.Name)
	}
	near("ops cleave/etcd", e.OpsPerSec, 6)
	near("p50 cleave/etcd", e.P50, 0.08)
	near("p99 cleave/etcd", e.P99, 8.0/60)
	near("cpu cleave/etcd", e.CPUPerOp, 0.5)
	b := v.Ratios[1]
	if b.Name != "current / baseline" {
		t.Errorf("second ratio %q", b.Name)
	}
	near("ops current/baseline", b.OpsPerSec, 12000.0/1800)
	near("cpu current/baseline", b.CPUPerOp, 150.0/1400)

	c1 := vs[1]
	if len(c1.Ratios) != 1 || !math.IsNaN(c1.Ratios[0].CPUPerOp) || !math.IsNaN(c1.Runs[0].CPUPerOp) {
		t.Errorf("put c1 %+v: want a ratio whose CPU is unknown", c1)
	}
	near("ops c1", c1.Ratios[0].OpsPerSec, 2)
}

// TestSideBySideMedians: rounds of the same workload are shown by the
// median of each figure, and their errors summed; the ratios use the
// medians.
func TestSideBySideMedians(t *testing.T) {
	rs := []*Result{
		headline("cleave", "", false, 64, 1000, 5, 50, 100),
		headline("etcd", "", false, 64, 100, 10, 20, 200),
		headline("cleave", "", false, 64, 3000, 1, 10, 300),
		headline("etcd", "", false, 64, 300, 30, 40, 100),
		headline("cleave", "", false, 64, 2000, 3, 30, 200),
	}
	rs[4].Errors = 2
	rs[0].Errors = 1
	vs := SideBySide(rs)
	if len(vs) != 1 {
		t.Fatalf("%d groups, want 1", len(vs))
	}
	c, e, r := vs[0].Runs[0], vs[0].Runs[1], vs[0].Ratios[0]
	if c != (Figures{Name: "cleave (median of 3)", OpsPerSec: 2000, P50: 3, P99: 30, CPUPerOp: 200, Errors: 3}) {
		t.Errorf("cleave %+v: want the medians 2000, 3, 30, 200 and 3 errors", c)
	}
	if e != (Figures{Name: "etcd (median of 2)", OpsPerSec: 200, P50: 20, P99: 30, CPUPerOp: 150}) {
		t.Errorf("etcd %+v: want the means of the middle two", e)
	}
	if r.OpsPerSec != 10 || r.P99 != 1 || math.Abs(r.CPUPerOp-4.0/3) > 1e-9 {
		t.Errorf("ratio %+v: want 10x ops, 1x p99, 1.33x CPU", r)
	}
	if !math.IsNaN(median([]float64{1, math.NaN()})) || !math.IsNaN(median(nil)) {
		t.Error("a median over an unknown figure or none must be unknown")
	}
}

func TestWriteSummarySideBySide(t *testing.T) {
	rs := []*Result{
		headline("cleave", "", false, 64, 12000, 2, 8, 150),
		headline("etcd", "", false, 64, 2000, 25, 60, 300),
		headline("cleave", "", false, 1, 600, 1.5, 2, 0),
	}
	var buf bytes.Buffer
	if err := WriteSummary(&buf, []string{"put-1k-c64", "etcd-put-1k-c64", "put-1k-c1"}, rs); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(out, "\n")
	for _, want := range []string{
		"CPU µs/op",
		"side by side",
		"put 1KiB, 64 clients, closed loop",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	// The rows: each system's figures, then the ratio, in fixed columns.
	row := func(prefix string) []string {
		for _, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), prefix) {
				return strings.Fields(l)
			}
		}
		t.Fatalf("no line starting %q:\n%s", prefix, out)
		return nil
	}
	if f := row("cleave / etcd"); strings.Join(f[3:], " ") != "6.00x 0.08x 0.13x 0.50x" {
		t.Errorf("ratio row %q: want 6.00x 0.08x 0.13x 0.50x", f)
	}
	if f := row("put-1k-c1"); f[len(f)-2] != "-" {
		t.Errorf("put-1k-c1 row %q: want - for CPU not measured", f)
	}
	if f := row("etcd-put-1k-c64"); f[1] != "etcd" || f[len(f)-2] != "300" {
		t.Errorf("etcd row %q: want system etcd and CPU 300", f)
	}

	// Without a second system there is no side-by-side table.
	buf.Reset()
	if err := WriteSummary(&buf, []string{"a"}, rs[:1]); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "side by side") {
		t.Errorf("one system, yet a side-by-side table:\n%s", buf.String())
	}
}

func TestReportShowsSideBySide(t *testing.T) {
	rs := []*Result{
		headline("cleave", "cleave <new>", false, 64, 12000, 2, 8, 150),
		headline("etcd", "", false, 64, 2000, 25, 60, 300),
	}
	for _, r := range rs {
		r.Percentiles, r.PerOp = []Point{}, map[string]*OpResult{}
	}
	var buf bytes.Buffer
	if err := WriteReport(&buf, "t", rs...); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{`<table id="versus">`, "<td>6.00x</td>", "<td>0.50x</td>", "cleave &lt;new&gt; / etcd", "<td>150</td>"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(page, "cleave <new>") {
		t.Error("a label is not escaped in the report")
	}
}

// TestSideBySideDirectAndRouted: where cleave ran a workload both with its
// client direct to the clusters and through a router, the two are shown
// apart, each against etcd; alone, a run through a router is the current
// one.
func TestSideBySideDirectAndRouted(t *testing.T) {
	direct := headline("cleave", "cleave", false, 64, 6000, 1, 4, 16)
	direct.Direct = true
	rs := []*Result{
		direct,
		headline("cleave", "cleave via router", false, 64, 3000, 2, 6, 32),
		headline("etcd", "", false, 64, 1000, 6, 40, 170),
		headline("cleave", "", false, 1, 400, 2, 6, 3000), // through a router only
		headline("etcd", "", false, 1, 400, 2, 7, 2900),
	}
	vs := SideBySide(rs)
	if len(vs) != 2 {
		t.Fatalf("%d groups, want 2", len(vs))
	}
	v := vs[0]
	if len(v.Runs) != 3 || v.Runs[0].Name != "cleave" || v.Runs[1].Name != "cleave via router" || v.Runs[2].Name != "etcd" {
		t.Fatalf("runs %+v: want direct, via router, etcd", v.Runs)
	}
	if len(v.Ratios) != 2 || v.Ratios[0].Name != "cleave / etcd" || v.Ratios[0].OpsPerSec != 6 ||
		v.Ratios[1].Name != "cleave via router / etcd" || v.Ratios[1].OpsPerSec != 3 {
		t.Errorf("ratios %+v: want cleave / etcd 6x and cleave via router / etcd 3x", v.Ratios)
	}
	if c1 := vs[1]; len(c1.Runs) != 2 || len(c1.Ratios) != 1 || c1.Ratios[0].Name != "cleave / etcd" {
		t.Errorf("put c1 %+v: want cleave and etcd, one ratio", c1)
	}
}
