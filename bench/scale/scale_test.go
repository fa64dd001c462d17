package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

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

// A quota below the kernel's 1 ms a period is refused with the period
// that would work.
func TestCheckQuota(t *testing.T) {
	for _, c := range []struct {
		quota  float64
		period time.Duration
		want   string
	}{
		{0.05, 100 * time.Millisecond, ""},
		{0.05, 20 * time.Millisecond, ""},
		{0.05, 10 * time.Millisecond, "-cfs-period 10ms with -quota 0.05 is a quota of 500 µs a period, below the kernel's 1 ms minimum: use a period of at least 20ms"},
		{0, 100 * time.Millisecond, "-quota 0: want a CPU share"},
		{0.5, 2 * time.Second, "-cfs-period 2s: the kernel takes 1ms to 1s"},
	} {
		err := checkQuota(c.quota, c.period)
		if got := fmt.Sprint(err); (c.want == "" && err != nil) || (c.want != "" && !strings.HasPrefix(got, c.want)) {
			t.Errorf("checkQuota(%v, %v) = %v, want %q", c.quota, c.period, err, c.want)
		}
	}
}

// cpu.stat of v1 counts nanoseconds, of v2 microseconds.
func TestParseCPUStat(t *testing.T) {
	v1 := parseCPUStat([]byte("nr_periods 120\nnr_throttled 30\nthrottled_time 4500000000\nnr_bursts 0\n"))
	v2 := parseCPUStat([]byte("usage_usec 9\nnr_periods 120\nnr_throttled 30\nthrottled_usec 4500000\n"))
	want := throttle{Periods: 120, Throttled: 30, WaitNs: 4500000000}
	if v1 != want || v2 != want {
		t.Errorf("v1 %+v, v2 %+v, want %+v", v1, v2, want)
	}
	u := throttleSince(map[int]throttle{7: {10, 5, 100}}, map[int]throttle{7: {30, 10, 300}, 8: {20, 0, 0}})
	if u.Periods != 40 || u.Throttled != 5 || u.WaitNs != 200 || u.Share != 5.0/40 {
		t.Errorf("throttleSince = %+v, want 40 periods, 5 throttled, 200 ns, share 1/8", u)
	}
}

// The median round is the middle one by throughput, the spread its ends;
// the per-process CPU is summed by kind and put per put on leaders and
// followers.
func TestMedianAndAttribute(t *testing.T) {
	rs := []*round{{OpsPerSec: 300}, {OpsPerSec: 100}, {OpsPerSec: 200}}
	if m, lo, hi := median(rs); m != rs[2] || lo != 100 || hi != 300 {
		t.Errorf("median = %v %v %v, want the 200 round, 100, 300", m.OpsPerSec, lo, hi)
	}
	r := &loadgen.Result{DurationS: 10, Ops: 1000, ServerCPU: &loadgen.ServerCPU{LoadgenUsPerOp: 500, Procs: []loadgen.ProcCPU{
		{PID: 1, Label: "cleave up"},
		{PID: 2, Label: "cleave router name=r1", UserS: 1},
		{PID: 3, Label: "cleave node cluster=c1 id=1", UserS: 0.4, SysS: 0.1},
		{PID: 4, Label: "cleave node cluster=c1 id=2", UserS: 0.3},
		{PID: 5, Label: "cleave node cluster=c1 id=3", UserS: 0.1},
	}}}
	c := cpuUse{Machine: 1}
	c.attribute(r, map[int]string{3: "leader", 4: "follower", 5: "follower"}, 0.05)
	want := cpuUse{Machine: 1, Nodes: 0.09, Routers: 0.1, Loadgen: 0.05, Other: 0.76, NodeMaxOfQuota: 1,
		LeaderUsPerPut: 500, FollowerUsPerPut: 200}
	if !near(c, want) {
		t.Errorf("attribute = %+v, want %+v", c, want)
	}
}

func near(a, b cpuUse) bool {
	x := []float64{a.Machine, a.Nodes, a.Routers, a.Up, a.Loadgen, a.Other, a.NodeMaxOfQuota, a.LeaderUsPerPut, a.FollowerUsPerPut}
	y := []float64{b.Machine, b.Nodes, b.Routers, b.Up, b.Loadgen, b.Other, b.NodeMaxOfQuota, b.LeaderUsPerPut, b.FollowerUsPerPut}
	for i := range x {
		if math.Abs(x[i]-y[i]) > 1e-9 {
			return false
		}
	}
	return true
}

// A deployment is not settled while a split is being cleaned or a node
// is unreachable.
func TestUnsettled(t *testing.T) {
	var st status
	err := json.Unmarshal([]byte(`{"clusters":[{"id":"c1","leader":"a","nodes":[{"pid":3,"role":"leader"},{"pid":4,"role":"follower"}]}],
		"splits":[{"id":1,"phase":"cleaning"}]}`), &st)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.unsettled(); got != "split 1 is cleaning" {
		t.Errorf("unsettled = %q, want the split named", got)
	}
	st.Splits[0].Phase = "cleaned"
	if got := st.unsettled(); got != "" {
		t.Errorf("unsettled = %q, want settled", got)
	}
	st.Clusters[0].Nodes[1].Error = "dial: refused"
	if got := st.unsettled(); got != "c1 node pid 4: dial: refused" {
		t.Errorf("unsettled = %q, want the node named", got)
	}
	if r := st.roles(); r[3] != "leader" || r[4] != "follower" {
		t.Errorf("roles = %v", r)
	}
}

// The machine's cores are taken over the samples that bracket the window.
func TestBusySamples(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := busySamples{{t0, 0}, {t0.Add(time.Second), 100}, {t0.Add(2 * time.Second), 150}, {t0.Add(3 * time.Second), 350}}
	if got := s.cores(t0.Add(time.Second), t0.Add(2*time.Second)); got != 0.5 {
		t.Errorf("cores over the second second = %v, want 0.5", got)
	}
	if got := s.cores(t0.Add(1500*time.Millisecond), t0.Add(2500*time.Millisecond)); got != 1.25 {
		t.Errorf("cores from 1.5 s to 2.5 s = %v, want 1.25 (over 1 s to 3 s)", got)
	}
	if got := (busySamples{{t0, 0}}).cores(t0, t0); got != 0 {
		t.Errorf("one sample: %v, want 0", got)
	}
}

// TestLoadgenArgsPinWeakOnly checks that weak rounds pin each cluster's
// clients to it (unless -pin-weak=false) and strong rounds never do, and
// that the report says which was used.
func TestLoadgenArgsPinWeakOnly(t *testing.T) {
	cfg := config{loadgen: "lg", duration: 10 * time.Second, warmup: 3 * time.Second, pinWeak: true}
	has := func(args []string) bool { return slices.Contains(args, "--pin-clusters") }
	if a := loadgenArgs(cfg, "r:1", 7, 256, cfg.pinFor("weak")); !has(a) || !slices.Contains(a, "256") {
		t.Errorf("weak round args %v: want --pin-clusters and 256 clients", a)
	}
	if a := loadgenArgs(cfg, "r:1", 7, 64, cfg.pinFor("strong")); has(a) {
		t.Errorf("strong round args %v: want no --pin-clusters", a)
	}
	cfg.pinWeak = false
	if a := loadgenArgs(cfg, "r:1", 7, 256, cfg.pinFor("weak")); has(a) {
		t.Errorf("-pin-weak=false: weak round args %v: want no --pin-clusters", a)
	}
	b, err := json.Marshal(report{WeakPinned: true, Steps: []step{{WeakRounds: []*round{{Kind: "weak", Pinned: true}}}}})
	if err != nil || !strings.Contains(string(b), `"weak_pinned":true`) || !strings.Contains(string(b), `"pinned":true`) {
		t.Errorf("report JSON %s (err %v): want weak_pinned and each round's pinned", b, err)
	}
}

// The probe's workload reports rising operations and CPU time, and its
// figures come out per operation.
func TestProbeWork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	if err := probeWork(ctx, &out, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var counts []probeCount
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var c probeCount
		if _, err := fmt.Sscanf(line, "%d %d", &c.ops, &c.cpu); err != nil {
			t.Fatalf("probe line %q: %v", line, err)
		}
		counts = append(counts, c)
	}
	if len(counts) < 3 {
		t.Fatalf("probe reported %d times in 700 ms, want at least 3:\n%s", len(counts), out.String())
	}
	a, b := counts[0], counts[len(counts)-1]
	if b.ops <= a.ops || b.cpu <= a.cpu {
		t.Fatalf("probe did not progress: first %+v, last %+v", a, b)
	}
	u := probeSince(probeCount{ops: 1000, cpu: 5e6}, probeCount{ops: 3000, cpu: 9e6}, 2, 6)
	if u.NsPerOp != 2000 || u.OpsPerSec != 1000 || u.Ballast != 6 {
		t.Errorf("probeSince = %+v, want 2000 ns/op, 1000 ops/s, 6 ballast", u)
	}
}

// The table gives each size's probe cost against the first size's.
func TestReportProbe(t *testing.T) {
	mk := func(n int, ops, probeNs float64) step {
		r := &loadgen.Result{OpsPerSec: ops}
		return step{Clusters: n, Weak: r, Strong: r, WeakRounds: []*round{{OpsPerSec: ops, Probe: probeUse{NsPerOp: probeNs}, result: r}}}
	}
	rep := &report{Quota: 0.05, PerClust: 64, Strong: 64, Steps: []step{mk(1, 100, 20000), mk(2, 180, 30000)}}
	var b strings.Builder
	printTable(&b, rep)
	lines := strings.Split(b.String(), "\n")
	if len(lines) < 5 || !strings.HasSuffix(lines[3], " 1.00x") || !strings.HasSuffix(lines[4], " 1.50x") {
		t.Errorf("want the probe column at 1.00x and 1.50x:\n%s", b.String())
	}
}
