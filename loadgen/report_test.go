package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/syncbuf"
)

// sampleResults returns two results with every chart fed: a mixed run
// with errors and a put run.
func sampleResults(t *testing.T) []*Result {
	t.Helper()
	s := newMemStore()
	s.fail = func(n int64) wireCode {
		if n > 100 && n%97 == 0 { // not during the preload of 100 files
			return codeTimeout
		}
		return codeOK
	}
	cfg := testConfig()
	cfg.Workload = Mixed
	a, err := Run(context.Background(), cfg, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Workload = Put
	b, err := Run(context.Background(), cfg, newMemStore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return []*Result{a, b}
}

func TestReportIsSelfContained(t *testing.T) {
	rs := sampleResults(t)
	var buf bytes.Buffer
	if err := WriteReport(&buf, "", rs...); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	// Nothing is fetched: no external src/href, no fetch or XHR.
	if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`).FindString(page); m != "" {
		t.Errorf("report references an external resource: %q", m)
	}
	for _, bad := range []string{"fetch(", "XMLHttpRequest", "<link", "@import"} {
		if strings.Contains(page, bad) {
			t.Errorf("report contains %q", bad)
		}
	}
	if strings.Count(page, "</script>") != 2 {
		t.Errorf("want exactly 2 script elements (data and code), page has %d closings", strings.Count(page, "</script>"))
	}
	if !strings.Contains(page, `"workload":"mixed"`) || !strings.Contains(page, "cleave-loadgen: 2 runs") {
		t.Error("report lacks its data or title")
	}
	if err := WriteReport(&buf, ""); err == nil {
		t.Error("a report of no results must fail")
	}
}

// TestReportRendersInChromium loads a report in headless Chromium and
// checks that its script drew every chart element. Chromium is installed
// with scripts/install-chromium.sh if missing; the test is skipped, saying
// why, only if that cannot be done.
func TestReportRendersInChromium(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("skipped: the Chromium rendering test runs on Linux only")
	}
	bin := findChromium(t)
	rs := sampleResults(t)
	rs[1].ServerCPU = &ServerCPU{ClockTicks: 100, Seconds: 3, UsPerOp: 150, Procs: []ProcCPU{
		{PID: 10, Label: "cleave node cluster=c1 id=1", UserS: 1.5, SysS: 0.5, UsPerOp: 100, Share: 2.0 / 3},
		{PID: 11, Label: "cleave router id=r1", UserS: 0.7, SysS: 0.3, UsPerOp: 50, Share: 1.0 / 3},
	}}
	dir := t.TempDir()
	html := filepath.Join(dir, "report.html")
	f, err := os.Create(html)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteReport(f, "", rs...); err != nil {
		t.Fatal(err)
	}
	f.Close()

	dom, err := dumpDOM(bin, filepath.Join(dir, "profile"), "file://"+html, 45*time.Second)
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	if !strings.Contains(dom, `data-rendered="true"`) {
		t.Fatalf("the report's script did not finish (no data-rendered on body); DOM:\n%.2000s", dom)
	}
	want := []string{
		`<svg id="chart-throughput-0"`, `<path id="throughput-line-0"`, `<path id="errors-line-0"`,
		`<svg id="chart-latency-time-0"`, `<path id="latency-time-0-p50"`, `<path id="latency-time-0-p99"`,
		`<svg id="chart-latency-0"`, `<path id="latency-line-0-get"`, `<path id="latency-line-0-put"`,
		`<table id="summary-0"`,
		`<svg id="chart-throughput-1"`, `<path id="throughput-line-1"`, `<path id="latency-line-1-put"`,
		`<table id="cpu-1"`, `<td>cleave node cluster=c1 id=1</td>`, `<td>67%</td>`, `server CPU µs/op`,
	}
	for _, w := range want {
		if !strings.Contains(dom, w) {
			t.Errorf("rendered DOM lacks %s", w)
		}
	}
	if strings.Contains(dom, `id="cpu-0"`) {
		t.Error("a CPU table for a run that did not measure CPU")
	}
	// Lines have real geometry: a path's d starts with a move and has points.
	if m := regexp.MustCompile(`<path id="throughput-line-0" d="M[0-9.]+ [0-9.]+`).FindString(dom); m == "" {
		t.Error("throughput line has no drawn geometry")
	}
}

// dumpDOM runs headless Chromium on url and returns the DOM it prints
// once the page has loaded. It stops Chromium and every process it started
// as soon as the whole document is out (Chromium's headless mode now and
// then hangs after printing it), or after limit; the error then carries
// what Chromium wrote to stderr.
func dumpDOM(bin, profile, url string, limit time.Duration) (string, error) {
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+profile, "--dump-dom", url)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stdout, stderr syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(limit)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			if err != nil {
				return stdout.String(), fmt.Errorf("%v\nstderr:\n%s", err, stderr.String())
			}
			return stdout.String(), nil
		case <-tick.C:
			if dom := stdout.String(); strings.Contains(dom, "</html>") {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
				return dom, nil
			}
		case <-deadline:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			return stdout.String(), fmt.Errorf("no whole document within %v\nstderr:\n%s", limit, stderr.String())
		}
	}
}

// findChromium returns the path of a Chromium binary, installing Debian's
// package through scripts/install-chromium.sh if there is none, or skips.
func findChromium(t *testing.T) string {
	t.Helper()
	look := func() string {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
		return ""
	}
	if p := look(); p != "" {
		return p
	}
	script, err := filepath.Abs(filepath.Join("..", "scripts", "install-chromium.sh"))
	if err != nil {
		t.Skipf("skipped: no chromium and cannot locate scripts/install-chromium.sh: %v", err)
	}
	t.Logf("no chromium on PATH; running %s", script)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sh", script).CombinedOutput()
	if err != nil {
		t.Skipf("skipped: chromium is not installed and could not be: %v\n%s", err, out)
	}
	if p := look(); p != "" {
		return p
	}
	t.Skipf("skipped: install-chromium.sh succeeded but no chromium is on PATH:\n%s", out)
	return ""
}
