package loadgen

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
)

func TestRatio(t *testing.T) {
	tests := []struct{ a, b, want float64 }{
		{100, 200, 2}, {200, 100, 0.5}, {0, 0, 1}, {0, 5, math.Inf(1)}, {4, 0, 0},
	}
	for _, tt := range tests {
		if got := Ratio(tt.a, tt.b); got != tt.want {
			t.Errorf("Ratio(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestCompare(t *testing.T) {
	a := &Result{Workload: "put", Size: "1KiB", Clients: 64, Mode: "closed", OpsPerSec: 1000,
		Latency: Latency{P50: 2, P90: 4, P99: 10, P999: 20, Max: 40}}
	b := &Result{Workload: "put", Size: "1KiB", Clients: 64, Mode: "closed", OpsPerSec: 2500,
		Latency: Latency{P50: 1, P90: 4.1, P99: 5, P999: 30, Max: 40}, Errors: 3}
	want := map[string]float64{"ops/s": 2.5, "p50 ms": 0.5, "p90 ms": 1.025, "p99 ms": 0.5, "p99.9 ms": 1.5, "max ms": 1, "errors": math.Inf(1)}
	for _, d := range Compare(a, b) {
		if w, ok := want[d.Metric]; !ok || math.Abs(d.Ratio-w) > 1e-9 && !math.IsInf(w, 1) {
			t.Errorf("%s: ratio %v, want %v", d.Metric, d.Ratio, w)
		}
	}
	var buf bytes.Buffer
	if err := WriteCompare(&buf, a, b, "a.json", "b.json"); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, s := range []string{"ops/s", "2.50x", "better", "0.50x", "1.50x", "worse", "~", "inf"} {
		if !strings.Contains(out, s) {
			t.Errorf("compare output lacks %q:\n%s", s, out)
		}
	}
}

func TestVerdict(t *testing.T) {
	tests := []struct {
		r      float64
		better string
		want   string
	}{
		{2, "higher", "better"}, {0.5, "higher", "worse"}, {0.5, "lower", "better"}, {2, "lower", "worse"},
		{1.01, "lower", "~"}, {math.Inf(1), "lower", "worse"},
	}
	for _, tt := range tests {
		if got := verdict(tt.r, tt.better); got != tt.want {
			t.Errorf("verdict(%v, %s) = %s, want %s", tt.r, tt.better, got, tt.want)
		}
	}
}

// TestCheckRegressions: an injected regression — read latencies 30%
// longer, updates failing more — is caught per operation and named; the
// same run against itself, or within the thresholds, passes.
func TestCheckRegressions(t *testing.T) {
	start := time.Now()
	base := samples(1)
	a := recordAll(t, start, 4, base)
	var worse []sample
	for _, s := range base {
		switch {
		case s.op == "read":
			s.lat = s.lat * 13 / 10
		case s.op == "update" && s.code == client.CodeOK && s.lat%7 == 0:
			s.code = client.CodeUnavailable
		}
		worse = append(worse, s)
	}
	b := recordAll(t, start, 4, worse)
	th := Thresholds{Throughput: 0.1, P50: 0.1, P99: 0.1, ErrorRate: 0.1}

	if r := CheckRegressions(a, a, th); len(r) != 0 {
		t.Fatalf("a run against itself: %v", r)
	}
	got := map[string]bool{}
	for _, r := range CheckRegressions(a, b, th) {
		got[r.Op+" "+r.Metric] = true
		if !strings.HasPrefix(r.String(), r.Op+" "+r.Metric+": ") {
			t.Errorf("message %q does not name the figure", r)
		}
	}
	for _, want := range []string{"read p50 ms", "read p99 ms", "update error rate", "update ops/s"} {
		if !got[want] {
			t.Errorf("regression %q not reported (got %v)", want, got)
		}
	}
	if got["insert p50 ms"] || got["insert ops/s"] || got["read ops/s"] {
		t.Errorf("unchanged figures reported: %v", got)
	}
	if r := CheckRegressions(a, b, Thresholds{Throughput: 0.5, P50: 0.5, P99: 0.5, ErrorRate: -1}); len(r) != 0 {
		t.Errorf("within 50%%: %v", r)
	}
	if r := CheckRegressions(a, b, NoThresholds); len(r) != 0 {
		t.Errorf("no thresholds: %v", r)
	}
	gone := *b
	gone.PerOp = map[string]*OpResult{"read": b.PerOp["read"], "update": b.PerOp["update"]}
	if r := CheckRegressions(a, &gone, Thresholds{Throughput: 0.1, P50: -1, P99: -1, ErrorRate: -1}); len(r) != 2 || r[0].Op != "insert" {
		t.Errorf("an operation kind B lacks: %v, want insert ops/s dropped to 0 (and update's)", r)
	}
	var out bytes.Buffer
	if err := WriteCompare(&out, a, b, "a", "b"); err != nil || !strings.Contains(out.String(), "error rate %") {
		t.Errorf("per-operation table: %v\n%s", err, out.String())
	}
}

func TestParsePercent(t *testing.T) {
	for in, want := range map[string]float64{"10%": 0.1, " 2.5 %": 0.025, "0%": 0} {
		if got, err := ParsePercent(in); err != nil || math.Abs(got-want) > 1e-12 {
			t.Errorf("ParsePercent(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"10", "x%", "-5%", "", "NaN%", "Inf%"} {
		if _, err := ParsePercent(in); err == nil || !strings.Contains(err.Error(), "10%") {
			t.Errorf("ParsePercent(%q): %v, want an error with an example", in, err)
		}
	}
}
