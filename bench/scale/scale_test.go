package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cleavefs/cleave/loadgen"
)

func TestParseSteps(t *testing.T) {
	for _, c := range []struct {
		in    string
		fresh bool
		want  string // steps, or the start of the error
	}{
		{"1,2,4,8", false, "[1 2 4 8]"},
		{"2, 4", false, "[2 4]"},
		{"1,3", false, "-steps \"1,3\": 3 after 1: each step must double"},
		{"1,3,5", true, "[1 3 5]"},
		{"4,2", true, "-steps \"4,2\": 2 after 4"},
		{"0", false, "-steps \"0\": \"0\" is not a positive"},
		{"x", false, "-steps \"x\": \"x\" is not a positive"},
	} {
		got, err := parseSteps(c.in, c.fresh)
		s := fmt.Sprint(got)
		if err != nil {
			s = err.Error()
		}
		if !strings.HasPrefix(s, c.want) {
			t.Errorf("parseSteps(%q, %v) = %s, want %s", c.in, c.fresh, s, c.want)
		}
	}
}

// The table and the plot show each size's share of linear scaling.
func TestReport(t *testing.T) {
	res := func(ops, p99 float64) *loadgen.Result {
		return &loadgen.Result{OpsPerSec: ops, Latency: loadgen.Latency{P99: p99}}
	}
	rep := &report{Quota: 0.05, PerClust: 64, Strong: 64, Steps: []step{
		{Clusters: 1, Weak: res(100, 10), Strong: res(100, 10)},
		{Clusters: 2, Weak: res(190, 12), Strong: res(150, 9), SplitS: 4},
		{Clusters: 4, Weak: res(360, 14), Strong: res(180, 8), SplitS: 9},
	}}
	var b strings.Builder
	printTable(&b, rep)
	for _, want := range []string{"      2         190       95%", "      4         360       90%", "1.80x"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	html := renderHTML(rep)
	if strings.Count(html, "<polyline") != 5 || !strings.Contains(html, "linear (weak)") {
		t.Errorf("report: want 5 lines (3 throughput, 2 p99) and the linear one:\n%s", html)
	}
	if out := os.Getenv("SCALE_REPORT_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(html), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
