package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/syncbuf"
	"github.com/cleavefs/cleave/internal/testcluster"
	"github.com/cleavefs/cleave/loadgen"
)

func TestUsageErrors(t *testing.T) {
	tests := [][]string{
		{"--workload", "scan"},
		{"--size", "lots"},
		{"--dist", "normal"},
		{"--rate", "fast"},
		{"-o", "yaml"},
		{"--clients", "0"},
		{"--bogus"},
		{"compare", "only-one.json"},
		{"--target", "redis"},
		{"--cpu-pids", "x"},
		{"--cpu-pids", "-3"},
		{"--cpu-tree", "1073741824"},
		{"--clk-tck", "-1"},
		{"--target", "etcd", "--conns", "0"},
		{"--zipf-theta", "1"},
		{"--zipf-theta", "0"},
		{"--warmup", "-1s"},
		{"--dist", "hot"},
		{"--size", "lognormal:4KiB"},
		{"--size", "hist:/nonexistent/sizes.txt"},
		{"--workload", "ycsb-e", "--preload", "5"},
		{"--workload", "ycsb-z"},
		{"compare", "--max-regression", "10", "a.json", "b.json"},
		{"compare", "--max-p99-rise", "x%", "a.json", "b.json"},
		{"merge", "only-one.json"},
		{"--pin-clusters", "--workload", "get"},
		{"--pin-clusters", "--preload", "10"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb, false); code != 2 {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, errb.String())
			}
			if !strings.Contains(errb.String(), "cleave-loadgen: ") {
				t.Errorf("stderr does not say what is wrong:\n%s", errb.String())
			}
		})
	}
}

// TestEtcdUnreachable: --target etcd with no etcd at --endpoints fails
// (exit 1) with a message naming the endpoint, not a hang.
func TestEtcdUnreachable(t *testing.T) {
	ep := testcluster.ClosedAddr(t)
	var out, errb bytes.Buffer
	code := run([]string{"--target", "etcd", "--endpoints", ep, "--ops", "1", "-q", "--timeout", "2s"}, &out, &errb, false)
	if code != 1 || !strings.Contains(errb.String(), ep) {
		t.Fatalf("exit %d, want 1 with a message naming %s:\n%s", code, ep, errb.String())
	}
}

func writeResult(t *testing.T, dir, name string, r *loadgen.Result) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := r.WriteJSON(f); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCompareSummaryReport(t *testing.T) {
	dir := t.TempDir()
	a := writeResult(t, dir, "a.json", &loadgen.Result{Workload: "put", Size: "1KiB", Clients: 64, Mode: "closed", OpsPerSec: 1000,
		Latency: loadgen.Latency{P50: 2, P90: 3, P99: 8, P999: 9, Max: 10}, PerOp: map[string]*loadgen.OpResult{}})
	b := writeResult(t, dir, "b.json", &loadgen.Result{Workload: "put", Size: "1KiB", Clients: 64, Mode: "closed", OpsPerSec: 3000,
		Latency: loadgen.Latency{P50: 1, P90: 3, P99: 4, P999: 9, Max: 10}, PerOp: map[string]*loadgen.OpResult{}})
	var out, errb bytes.Buffer
	if code := run([]string{"compare", a, b}, &out, &errb, false); code != 0 {
		t.Fatalf("compare: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "3.00x") || !strings.Contains(out.String(), "0.50x") {
		t.Errorf("compare output:\n%s", out.String())
	}
	out.Reset()
	if code := run([]string{"summary", a, b}, &out, &errb, false); code != 0 || strings.Count(out.String(), "put") != 2 {
		t.Fatalf("summary: exit %d:\n%s%s", code, out.String(), errb.String())
	}
	html := filepath.Join(dir, "r.html")
	if code := run([]string{"report", "-o", html, a, b}, &out, &errb, false); code != 0 {
		t.Fatalf("report: exit %d: %s", code, errb.String())
	}
	if page, err := os.ReadFile(html); err != nil || !bytes.Contains(page, []byte("loadgen-data")) {
		t.Fatalf("report page: %v", err)
	}
	if code := run([]string{"compare", a, filepath.Join(dir, "missing.json")}, &out, &errb, false); code != 1 {
		t.Errorf("compare with a missing file: exit %d, want 1", code)
	}
}

// moduleRoot returns the directory holding go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Skipf("skipped: cannot find the module root (go env GOMOD): %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// deployment is a running `cleave up` and the binaries built for it.
type deployment struct {
	bin    string // directory of the cleave and cleave-loadgen binaries
	data   string // temporary directory of the deployment
	router string // client address of its router
	pid    int    // of `cleave up`
}

// startUp builds cleave and cleave-loadgen and starts `cleave up` (3
// routers and 2 clusters of 3 node processes) on loopback; it is stopped
// when the test ends. Each test starts its own: none is shared.
func startUp(t *testing.T) deployment {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped: -short (the end-to-end tests start 10 processes)")
	}
	root := moduleRoot(t)
	bin := t.TempDir()
	for _, b := range []struct{ out, pkg string }{{"cleave", "./cmd/cleave"}, {"cleave-loadgen", "./cmd/cleave-loadgen"}} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, b.out), b.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}

	data := t.TempDir()
	router := testcluster.ClosedAddr(t)
	up := exec.Command(filepath.Join(bin, "cleave"), "up", "--data", filepath.Join(data, "d"), "--listen", router, "--log-level", "warn")
	stdout := &syncbuf.Buffer{}
	logf, err := os.Create(filepath.Join(data, "up.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	up.Stdout, up.Stderr = stdout, logf
	up.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- up.Wait() }()
	t.Cleanup(func() {
		up.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			up.Process.Kill()
			<-done
			t.Errorf("cleave up did not stop within 30s of SIGTERM")
		}
	})
	eventually.Holds(t, 60*time.Second, "cleave up", func() error {
		select {
		case err := <-done:
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("cleave up exited: %v\nstdout:\n%s\nlog:\n%.4000s", err, stdout.String(), log)
		default:
		}
		return eventually.True(strings.Contains(stdout.String(), "cleave is up"), "not up yet; stdout:\n%s", stdout.String())
	})
	return deployment{bin: bin, data: data, router: router, pid: up.Process.Pid}
}

// TestEndToEnd starts `cleave up` and runs the command with a 3s
// duration: 64 clients putting 1 KiB files must produce valid JSON with
// the promised fields and no errors.
func TestEndToEnd(t *testing.T) {
	d := startUp(t)
	bin, data, router := d.bin, d.data, d.router
	report := filepath.Join(data, "put.html")
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	lg := exec.CommandContext(ctx, filepath.Join(bin, "cleave-loadgen"), "--router", router,
		"--workload", "put", "--size", "1KiB", "--clients", "64", "--duration", "3s", "-o", "json", "--report", report,
		"--cpu-tree", strconv.Itoa(d.pid))
	var lgErr bytes.Buffer
	lg.Stderr = &lgErr
	out, err := lg.Output()
	if err != nil {
		t.Fatalf("cleave-loadgen: %v\nstderr:\n%s\nstdout:\n%s", err, lgErr.String(), out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"workload", "clients", "ops", "errors", "ops_per_sec", "latency_ms", "per_second",
		"hist", "version", "commit", "host", "gomaxprocs", "flags"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	var res loadgen.Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	if res.Workload != "put" || res.Clients != 64 || res.Ops == 0 {
		t.Errorf("workload %q clients %d ops %d", res.Workload, res.Clients, res.Ops)
	}
	if res.Errors != 0 {
		t.Errorf("%d errors, want 0: %v %v", res.Errors, res.ErrorsByCode, res.ErrorSamples)
	}
	if l := res.Latency; !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("latency percentiles not positive and ordered: %+v", l)
	}
	if len(res.PerSecond) < 3 {
		t.Errorf("per_second has %d entries for 3s, want 3", len(res.PerSecond))
	}
	if lgErr.Len() != 0 {
		t.Errorf("-o json wrote to stderr (progress must be off):\n%s", lgErr.String())
	}
	if st, err := os.Stat(report); err != nil || st.Size() == 0 {
		t.Errorf("--report: %v", err)
	}
	checkServerCPU(t, res.ServerCPU)
	pinned, _ := d.loadgen(t, "--workload", "put", "--clients", "4", "--ops", "100", "--roots", "8", "--pin-clusters")
	if len(pinned.Pinned) != 2 || pinned.Errors != 0 || pinned.Ops != 100 || pinned.Flags["pin-clusters"] != "true" {
		t.Errorf("--pin-clusters: pinned %v, ops %d, errors %d, flag %q: want both clusters, 100, 0, true",
			pinned.Pinned, pinned.Ops, pinned.Errors, pinned.Flags["pin-clusters"])
	}
	t.Logf("64 clients, 1 KiB puts, 3s: %.0f ops/s, p50 %.2f ms, p99 %.2f ms, server CPU %.0f µs/op",
		res.OpsPerSec, res.Latency.P50, res.Latency.P99, res.ServerCPU.UsPerOp)
}

// checkServerCPU checks the CPU measured over `cleave up`'s process tree:
// the supervisor, its 3 routers and 6 nodes, each labelled, all measured,
// with time spent.
func checkServerCPU(t *testing.T, c *loadgen.ServerCPU) {
	t.Helper()
	if c == nil {
		t.Fatal("no server_cpu in the JSON, with --cpu-tree")
	}
	kinds := map[string]int{}
	for _, p := range c.Procs {
		if p.Error != "" {
			t.Errorf("process %d %s: %s", p.PID, p.Label, p.Error)
		}
		kinds[strings.Join(strings.Fields(p.Label)[:2], " ")]++
	}
	if kinds["cleave up"] != 1 || kinds["cleave router"] != 3 || kinds["cleave node"] != 6 {
		t.Errorf("processes %v: want cleave up, 3 routers and 6 nodes", kinds)
	}
	if c.Seconds <= 0 || c.UsPerOp <= 0 {
		t.Errorf("server CPU %.3f s, %.0f µs/op: want time spent", c.Seconds, c.UsPerOp)
	}
}

// loadgen runs the built cleave-loadgen with args against d, bounded by
// one minute, and returns its JSON result (-o json is added).
func (d deployment) loadgen(t *testing.T, args ...string) (*loadgen.Result, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append([]string{"--router", d.router, "-o", "json", "--timeout", "10s"}, args...)
	lg := exec.CommandContext(ctx, filepath.Join(d.bin, "cleave-loadgen"), args...)
	var stderr bytes.Buffer
	lg.Stderr = &stderr
	out, err := lg.Output()
	if err != nil {
		t.Fatalf("cleave-loadgen %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var res loadgen.Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("output is not a result: %v\n%.2000s", err, out)
	}
	return &res, out
}

// TestYCSBEndToEnd runs each YCSB core workload briefly (a load phase of
// 200 records over 8 roots, then 300 measured operations) against a real
// `cleave up` with zero errors; then runs ycsb-a from two "hosts" at once,
// merges their results and checks the merge, and has compare fail (exit 3,
// naming the figure) on an injected regression.
func TestYCSBEndToEnd(t *testing.T) {
	d := startUp(t)
	want := map[string][]string{
		"ycsb-a": {"read", "update"}, "ycsb-b": {"read", "update"}, "ycsb-c": {"read"},
		"ycsb-d": {"read", "insert"}, "ycsb-e": {"scan", "insert"}, "ycsb-f": {"read", "read-modify-write"},
	}
	for _, w := range []string{"ycsb-a", "ycsb-b", "ycsb-c", "ycsb-d", "ycsb-e", "ycsb-f"} {
		t.Run(w, func(t *testing.T) {
			res, _ := d.loadgen(t, "--workload", w, "--records", "200", "--roots", "8", "--ops", "300",
				"--clients", "8", "--size", "lognormal:1KiB,0.5", "--warmup", "200ms", "--prefix", w)
			if res.Errors != 0 || res.Ops != 300 {
				t.Fatalf("ops %d errors %d, want 300 and 0: %v %v", res.Ops, res.Errors, res.ErrorsByCode, res.ErrorSamples)
			}
			for _, op := range want[w] {
				if o := res.PerOp[op]; o == nil || o.Ops == 0 || o.Hist == "" {
					t.Errorf("no %s operations with a histogram: %v", op, res.PerOp)
				}
			}
			if res.Flags["workload"] != w || res.Flags["files"] != "200" || res.Flags["zipf-theta"] != "0.99" || res.GOMAXPROCS == 0 || res.Host == "" || res.Commit == "" {
				t.Errorf("run description: flags %v host %q gomaxprocs %d commit %q", res.Flags, res.Host, res.GOMAXPROCS, res.Commit)
			}
		})
	}

	// Two hosts at once, then merge.
	type hostRun struct {
		res *loadgen.Result
		out []byte
	}
	runs := make([]hostRun, 2)
	done := make(chan int, 2)
	for i := range runs {
		go func() {
			defer func() { done <- i }()
			r, out := d.loadgen(t, "--workload", "ycsb-a", "--records", "200", "--roots", "8", "--duration", "2s",
				"--clients", "4", "--prefix", "host"+strconv.Itoa(i))
			runs[i] = hostRun{r, out}
		}()
	}
	<-done
	<-done
	if t.Failed() {
		t.FailNow()
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	os.WriteFile(a, runs[0].out, 0o644)
	os.WriteFile(b, runs[1].out, 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"merge", a, b}, &out, &errb, false); code != 0 {
		t.Fatalf("merge: exit %d: %s", code, errb.String())
	}
	m, err := loadgen.ReadResult(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if m.Ops != runs[0].res.Ops+runs[1].res.Ops || m.Errors != 0 || m.Clients != 8 || m.Merged != 2 ||
		m.PerOp["read"].Ops != runs[0].res.PerOp["read"].Ops+runs[1].res.PerOp["read"].Ops {
		t.Fatalf("merged: ops %d errors %d clients %d merged %d; runs: %d and %d ops", m.Ops, m.Errors, m.Clients, m.Merged, runs[0].res.Ops, runs[1].res.Ops)
	}
	if lo, hi := min(runs[0].res.Latency.Max, runs[1].res.Latency.Max), max(runs[0].res.Latency.Max, runs[1].res.Latency.Max); m.Latency.Max < lo || m.Latency.Max > hi {
		t.Errorf("merged max %.3f ms outside the runs' %.3f-%.3f", m.Latency.Max, lo, hi)
	}

	// An injected regression: B's reads 50% slower at p99.
	merged := filepath.Join(dir, "merged.json")
	os.WriteFile(merged, out.Bytes(), 0o644)
	m.PerOp["read"].Latency.P99 *= 1.5
	slow := writeResult(t, dir, "slow.json", m)
	errb.Reset()
	if code := run([]string{"compare", "--max-regression", "10%", merged, merged}, io.Discard, &errb, false); code != 0 {
		t.Fatalf("compare of a run with itself: exit %d: %s", code, errb.String())
	}
	if code := run([]string{"compare", "--max-p99-rise", "10%", merged, slow}, io.Discard, &errb, false); code != 3 || !strings.Contains(errb.String(), "regression: read p99 ms") {
		t.Fatalf("compare with a slower p99: exit %d, want 3 naming read p99:\n%s", code, errb.String())
	}
}

// TestRecordsFlagAndFlagValues: --records is YCSB's name for --files, and
// the run's description lists every flag with the token redacted.
func TestRecordsFlagAndFlagValues(t *testing.T) {
	root := newRoot(false)
	root.SetArgs([]string{"--workload", "ycsb-b", "--records", "5000", "--token", "s3cret", "--zipf-theta", "0.8"})
	var o *opts
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		o = &opts{}
		return nil
	}
	if err := root.Execute(); err != nil || o == nil {
		t.Fatal(err)
	}
	fl := flagValues(root)
	if fl["files"] != "5000" || fl["zipf-theta"] != "0.8" || fl["workload"] != "ycsb-b" || fl["token"] != "(set)" || fl["warmup"] != "0s" {
		t.Errorf("flag values %v", fl)
	}
	for k, v := range fl {
		if strings.Contains(v, "s3cret") {
			t.Errorf("flag %s shows the token", k)
		}
	}
}

// TestVersionFlag: --version names the version and commit.
func TestVersionFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--version"}, &out, &errb, false); code != 0 || !strings.Contains(out.String(), "commit") {
		t.Fatalf("--version: exit %d: %q %q", code, out.String(), errb.String())
	}
}
