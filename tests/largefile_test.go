package tests

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLargeFileCLI round-trips a 64 MiB file through `cleave put` and
// `cleave get` against `cleave up` and compares SHA-256. The 2 GiB version
// with memory figures is TestLargeFile2GiB (build tag long).
func TestLargeFileCLI(t *testing.T) {
	d := sharedDeployment(t)
	res := largeRoundTrip(t, d, 64<<20)
	t.Logf("64 MiB: put %s, get %s; peak RSS client put %d MiB, get %d MiB", res.putTook, res.getTook, res.putRSS>>20, res.getRSS>>20)
}

type roundTrip struct {
	putTook, getTook string
	putRSS, getRSS   int64 // bytes, peak resident set of the cleave client process
}

// largeRoundTrip writes size pseudo-random bytes to a local file, puts it
// with the CLI, gets it back to another file and checks both SHA-256 sums
// and the stored checksum's presence. Memory stays small in the test
// process too: data is streamed from a seeded generator.
func largeRoundTrip(t *testing.T, d *deployment, size int64) roundTrip {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	rng := mrand.NewChaCha8([32]byte{1, 2, 3})
	if _, err := io.CopyN(w, rng, size); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want := hex.EncodeToString(h.Sum(nil))

	remote := "/large-" + strconv.FormatInt(size>>20, 10) + "m/" + t.Name() + ".bin"
	var res roundTrip
	out, rss, took, err := d.cliRSS(t, "put", "-p", "--quiet", remote, src)
	if err != nil {
		t.Fatalf("cleave put: %v\n%s", err, out)
	}
	res.putRSS, res.putTook = rss, took
	os.Remove(src) // keep the disk footprint at one copy

	out, err = d.cli(t, nil, "stat", "-o", "json", remote)
	if err != nil {
		t.Fatalf("cleave stat: %v\n%s", err, out)
	}
	var st struct {
		Size int64  `json:"size"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal(out, &st); err != nil || st.Size != size || st.Type != "file" {
		t.Fatalf("stat after put: %s (%v)", out, err)
	}

	dst := filepath.Join(dir, "dst.bin")
	out, rss, took, err = d.cliRSS(t, "get", "--quiet", remote, dst)
	if err != nil {
		t.Fatalf("cleave get: %v\n%s", err, out)
	}
	res.getRSS, res.getTook = rss, took
	g, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	h2 := sha256.New()
	n, err := io.Copy(h2, g)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h2.Sum(nil)); got != want || n != size {
		t.Fatalf("round trip: %d bytes sha256 %s, want %d bytes %s", n, got, size, want)
	}
	if _, err := d.cli(t, nil, "rm", remote); err != nil {
		t.Errorf("rm: %v", err)
	}
	return res
}

// cliRSS runs the CLI like cli and also returns the peak resident set
// (VmHWM, from rusage) of the cleave process and the wall time.
func (d *deployment) cliRSS(t testing.TB, args ...string) ([]byte, int64, string, error) {
	t.Helper()
	cmd := exec.Command(cleaveBin, args...)
	cmd.Env = append(os.Environ(), "CLEAVE_ROUTER="+d.router, "CLEAVE_TIMEOUT=30m")
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := nowFunc()
	err := cmd.Run()
	took := sinceFunc(start)
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss << 10 // KiB on Linux
	}
	return []byte(buf.String()), rss, took, err
}

// vmHWM returns the peak resident set of a live process from
// /proc/PID/status, in bytes.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

var (
	nowFunc   = time.Now
	sinceFunc = func(t time.Time) string { return time.Since(t).Round(time.Millisecond).String() }
)
