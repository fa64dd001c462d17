package loadgen

import (
	"bytes"
	"math"
	"strings"
	"testing"
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
