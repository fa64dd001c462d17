package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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

// TestEndToEnd builds cleave and cleave-loadgen, starts `cleave up` (a
// router and 2 clusters of 3 node processes) on loopback and runs the
// issue's command with a 3s duration: 64 clients putting 1 KiB files must
// produce valid JSON with the promised fields and no errors.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped: -short (the end-to-end test starts 7 processes)")
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
	defer logf.Close()
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

	report := filepath.Join(data, "put.html")
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	lg := exec.CommandContext(ctx, filepath.Join(bin, "cleave-loadgen"), "--router", router,
		"--workload", "put", "--size", "1KiB", "--clients", "64", "--duration", "3s", "-o", "json", "--report", report,
		"--cpu-tree", strconv.Itoa(up.Process.Pid))
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
	for _, k := range []string{"workload", "clients", "ops", "errors", "ops_per_sec", "latency_ms", "per_second"} {
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
