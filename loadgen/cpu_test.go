package loadgen

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
)

func TestParseProcStat(t *testing.T) {
	// Fields 3.. as the kernel writes them; utime (14) = 1234, stime (15) = 56.
	tail := " S 77 100 100 0 -1 4194560 900 0 0 0 1234 56 0 0 20 0 9 0 4200 1000000 500 18446744073709551615"
	tests := []struct {
		name, line, comm string
	}{
		{"plain", "4242 (cleave)" + tail, "cleave"},
		{"spaces", "4242 (my server)" + tail, "my server"},
		{"parentheses", "4242 (a) b (c))" + tail, "a) b (c)"},
		{"empty comm", "4242 ()" + tail, ""},
		{"newline", "4242 (x)" + tail + "\n", "x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := ParseProcStat([]byte(tc.line))
			if err != nil {
				t.Fatal(err)
			}
			want := ProcStat{PID: 4242, Comm: tc.comm, PPID: 77, UTime: 1234, STime: 56}
			if st != want {
				t.Fatalf("got %+v, want %+v", st, want)
			}
		})
	}
}

func TestParseProcStatRejects(t *testing.T) {
	tests := []struct{ name, line, want string }{
		{"no comm", "4242 cleave S 1 2 3", "no (comm)"},
		{"bad pid", "x (cleave) S 1 2 3 4 5 6 7 8 9 10 11 12 13", "pid"},
		{"short", "4242 (cleave) S 1 2 3", "fields after comm"},
		{"bad utime", "4242 (cleave) S 77 1 1 0 -1 0 0 0 0 0 12x 5 0 0 20", "field 14"},
		{"empty", "", "no (comm)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseProcStat([]byte(tc.line))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one naming %q", err, tc.want)
			}
		})
	}
}

// TestReadProcStatOfThisProcess reads the real /proc of the test itself.
func TestReadProcStatOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here:", err)
	}
	st, err := ReadProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != os.Getpid() || st.PPID != os.Getppid() {
		t.Fatalf("got pid %d ppid %d, want %d %d", st.PID, st.PPID, os.Getpid(), os.Getppid())
	}
	if _, err := ReadProcStat(1 << 30); err == nil || !strings.Contains(err.Error(), "no such process") {
		t.Fatalf("a missing pid: err %v, want no such process", err)
	}
}

// startTree starts a shell with two sleeping children, a process tree of
// three, and returns the shell and its children's pids once they run sleep.
func startTree(t *testing.T) (*exec.Cmd, []int) {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here:", err)
	}
	sh := exec.Command("sh", "-c", "sleep 60 & sleep 60 & wait")
	if err := sh.Start(); err != nil {
		t.Skip("no sh:", err)
	}
	t.Cleanup(func() {
		tree, _ := ProcTree(sh.Process.Pid)
		for _, p := range tree[1:] {
			if pr, err := os.FindProcess(p); err == nil {
				pr.Kill()
			}
		}
		sh.Process.Kill()
		sh.Wait()
	})
	var tree []int
	eventually.Holds(t, 10*time.Second, "the shell's two children exist", func() error {
		var err error
		tree, err = ProcTree(sh.Process.Pid)
		if err != nil {
			return err
		}
		if len(tree) != 3 {
			return fmt.Errorf("tree %v: want the shell and 2 children", tree)
		}
		for _, p := range tree[1:] { // a forked child is "sh" until it execs sleep
			if st, err := ReadProcStat(p); err != nil || st.Comm != "sleep" {
				return fmt.Errorf("child %d: %+v, %v: not sleep yet", p, st, err)
			}
		}
		return nil
	})
	return sh, tree
}

func TestProcTree(t *testing.T) {
	sh, tree := startTree(t)
	if tree[0] != sh.Process.Pid {
		t.Fatalf("tree %v: want the root %d first", tree, sh.Process.Pid)
	}
	for _, p := range tree[1:] {
		st, err := ReadProcStat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.PPID != sh.Process.Pid || st.Comm != "sleep" {
			t.Errorf("child %d: %+v, want a sleep whose parent is %d", p, st, sh.Process.Pid)
		}
	}
	if !slices.IsSorted(tree[1:]) {
		t.Errorf("children %v not sorted", tree[1:])
	}
	if _, err := ProcTree(1 << 30); err == nil {
		t.Error("the tree of a missing pid: no error")
	}
}

func TestProcLabel(t *testing.T) {
	dir := t.TempDir()
	procRoot = dir
	t.Cleanup(func() { procRoot = "/proc" })
	write := func(pid int, args ...string) {
		d := filepath.Join(dir, fmt.Sprint(pid))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "cmdline"), []byte(strings.Join(args, "\x00")+"\x00"), 0o644)
	}
	write(1, "/usr/bin/cleave", "node", "--id", "2", "--cluster", "c1", "--listen", "127.0.0.1:1")
	write(2, "/usr/bin/etcd", "--name=e3", "--data-dir", "/tmp/x")
	write(3, "bin/cleave", "up", "--data", "d")
	write(5, "/usr/bin/cleave", "router", "--id", "r1", "--cluster", "c1=1@127.0.0.1:1/127.0.0.1:2,2@127.0.0.1:3/127.0.0.1:4", "--cluster=c2=4@127.0.0.1:5/127.0.0.1:6")
	tests := map[int]string{
		5: "cleave router id=r1", // its --cluster flags describe the routing table, not the router
		1: "cleave node id=2 cluster=c1",
		2: "etcd name=e3",
		3: "cleave up",
		4: "kworker", // no cmdline: the comm
	}
	for pid, want := range tests {
		if got := procLabel(pid, "kworker"); got != want {
			t.Errorf("pid %d: label %q, want %q", pid, got, want)
		}
	}
}

// TestServerCPU measures a real process that burns CPU over a run and one
// that sleeps: the burner's time shows, the sleeper's share is small, the
// shares add up to one and µs/op is total time over operations.
func TestServerCPU(t *testing.T) {
	_, tree := startTree(t)
	burn := exec.Command("sh", "-c", "while :; do :; done")
	if err := burn.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { burn.Process.Kill(); burn.Wait() })

	cfg := testConfig()
	cfg.Workload, cfg.Ops, cfg.Duration, cfg.Clients = Put, 0, 500*time.Millisecond, 2
	cfg.CPUPIDs = []int{burn.Process.Pid, tree[1]}
	res, err := Run(context.Background(), cfg, newMemStore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := res.ServerCPU
	if c == nil || len(c.Procs) != 2 {
		t.Fatalf("server CPU %+v: want two processes", c)
	}
	b, s := c.Procs[0], c.Procs[1]
	if b.UserS+b.SysS <= 0 || b.Label != "sh" {
		t.Errorf("burner %+v: want CPU time and the label sh (its first argument is a flag)", b)
	}
	if s.Share > b.Share || s.Label != "sleep 60" {
		t.Errorf("sleeper %+v has a larger share than the burner %+v, or a wrong label", s, b)
	}
	if d := b.Share + s.Share - 1; d > 1e-9 || d < -1e-9 {
		t.Errorf("shares %g + %g: want 1", b.Share, s.Share)
	}
	want := c.Seconds * 1e6 / float64(res.Ops+res.Errors)
	if d := c.UsPerOp - want; d > 1e-6 || d < -1e-6 {
		t.Errorf("µs/op %g, want %g", c.UsPerOp, want)
	}
	if c.ClockTicks != 100 {
		t.Errorf("clk_tck %d: want the default 100", c.ClockTicks)
	}
}

// TestServerCPUProcessGone: a process that exits during the window is
// listed with why, and a pid that does not exist fails the run up front.
func TestServerCPUProcessGone(t *testing.T) {
	_, tree := startTree(t)
	cfg := testConfig()
	cfg.Workload, cfg.Ops = Put, 300
	cfg.CPUPIDs = []int{tree[1]}
	s := newMemStore()
	var once bool
	s.delay = func(n int64) {
		if n == 100 && !once {
			once = true
			p, _ := os.FindProcess(tree[1])
			p.Kill()
			// The shell reaps it; wait until /proc forgets it.
			eventually.Holds(t, 10*time.Second, "the killed child is gone", func() error {
				_, err := ReadProcStat(tree[1])
				return eventually.True(err != nil, "still there")
			})
		}
	}
	res, err := Run(context.Background(), cfg, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := res.ServerCPU.Procs[0]; !strings.Contains(p.Error, "no such process") || p.UserS+p.SysS != 0 {
		t.Errorf("exited process: %+v, want an error saying it is gone and no time", p)
	}
	cfg.CPUPIDs = []int{1 << 30}
	if _, err := Run(context.Background(), cfg, newMemStore(), nil); err == nil || !strings.Contains(err.Error(), "no such process") {
		t.Errorf("a missing pid: err %v, want no such process", err)
	}
}
