package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cgroup caps node processes' CPU: one child group per node process under
// a parent of the benchmark's own, in cgroup v1's cpu controller or v2's
// unified hierarchy, whichever is writable.
type cgroup struct {
	kind   string // "v1" or "v2"
	parent string // the benchmark's group
	quota  float64
	period int // CFS period in microseconds
	capped map[int]bool
}

// minQuotaUs is the smallest CFS quota the kernel accepts, in microseconds.
const minQuotaUs = 1000

// checkQuota says whether quota cores per period can be set: the kernel
// takes periods of 1 ms to 1 s and quotas of at least 1 ms.
func checkQuota(quota float64, period time.Duration) error {
	if quota <= 0 || quota > 64 {
		return fmt.Errorf("-quota %v: want a CPU share in cores, above 0", quota)
	}
	if period < time.Millisecond || period > time.Second {
		return fmt.Errorf("-cfs-period %v: the kernel takes 1ms to 1s", period)
	}
	if us := quota * float64(period.Microseconds()); us < minQuotaUs {
		return fmt.Errorf("-cfs-period %v with -quota %v is a quota of %.0f µs a period, below the kernel's 1 ms minimum: use a period of at least %v",
			period, quota, us, time.Duration(float64(minQuotaUs)/quota)*time.Microsecond)
	}
	return nil
}

// newCgroup makes the benchmark's parent group; the error says why no
// controller could be used.
func newCgroup(quota float64, period time.Duration) (*cgroup, error) {
	if err := checkQuota(quota, period); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("cleave-scale-%d", os.Getpid())
	var why []string
	for _, c := range []struct{ kind, root, probe string }{
		{"v1", "/sys/fs/cgroup/cpu", "cpu.cfs_quota_us"},
		{"v2", "/sys/fs/cgroup", "cgroup.subtree_control"},
	} {
		if _, err := os.Stat(filepath.Join(c.root, c.probe)); err != nil {
			why = append(why, fmt.Sprintf("%s: %s not found", c.kind, filepath.Join(c.root, c.probe)))
			continue
		}
		if c.kind == "v2" {
			ctl, _ := os.ReadFile(filepath.Join(c.root, "cgroup.controllers"))
			if !slices.Contains(strings.Fields(string(ctl)), "cpu") {
				why = append(why, "v2: the cpu controller is not available at "+c.root)
				continue
			}
			if err := os.WriteFile(filepath.Join(c.root, "cgroup.subtree_control"), []byte("+cpu"), 0o644); err != nil {
				why = append(why, fmt.Sprintf("v2: enable cpu: %v", err))
				continue
			}
		}
		p := filepath.Join(c.root, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			why = append(why, fmt.Sprintf("%s: %v", c.kind, err))
			continue
		}
		if c.kind == "v2" {
			if err := os.WriteFile(filepath.Join(p, "cgroup.subtree_control"), []byte("+cpu"), 0o644); err != nil {
				os.Remove(p)
				why = append(why, fmt.Sprintf("v2: enable cpu below %s: %v", p, err))
				continue
			}
		}
		return &cgroup{kind: c.kind, parent: p, quota: quota, period: int(period.Microseconds()), capped: map[int]bool{}}, nil
	}
	return nil, fmt.Errorf("%w (run as root on a machine with cgroup v1's cpu controller or v2's cpu.max): %s", errNoCgroup, strings.Join(why, "; "))
}

// capNodes puts every node process among the children of pid that is not
// capped yet into a group of its own limited to quota cores.
func (g *cgroup) capNodes(pid int) error {
	kids, err := children(pid)
	if err != nil {
		return err
	}
	n := 0
	for _, k := range kids {
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", k))
		if err != nil || g.capped[k] {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		if len(args) < 2 || args[1] != "node" {
			continue
		}
		if err := g.limit(k); err != nil {
			return err
		}
		g.capped[k] = true
		n++
	}
	fmt.Printf("capped %d new node process(es) at %.2f core each, period %v (cgroup %s)\n", n, g.quota, time.Duration(g.period)*time.Microsecond, g.kind)
	return nil
}

// group is the directory of pid's group.
func (g *cgroup) group(pid int) string { return filepath.Join(g.parent, fmt.Sprintf("n%d", pid)) }

// limit makes pid's group and moves pid into it.
func (g *cgroup) limit(pid int) error {
	p := g.group(pid)
	if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	quota := int(g.quota * float64(g.period))
	var err error
	if g.kind == "v1" {
		err = errors.Join(
			os.WriteFile(filepath.Join(p, "cpu.cfs_period_us"), []byte(strconv.Itoa(g.period)), 0o644),
			os.WriteFile(filepath.Join(p, "cpu.cfs_quota_us"), []byte(strconv.Itoa(quota)), 0o644))
	} else {
		err = os.WriteFile(filepath.Join(p, "cpu.max"), []byte(fmt.Sprintf("%d %d", quota, g.period)), 0o644)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(p, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
	}
	if err != nil {
		return fmt.Errorf("cap node process %d: %w", pid, err)
	}
	return nil
}

// throttle is a group's CFS counters (cpu.stat): periods with runnable
// work, those of them in which the quota ran out, and the time spent
// waiting for the next period.
type throttle struct {
	Periods   uint64 `json:"nr_periods"`
	Throttled uint64 `json:"nr_throttled"`
	WaitNs    uint64 `json:"throttled_ns"`
}

// parseCPUStat reads the throttling counters of a cpu.stat file: v1
// counts nanoseconds (throttled_time), v2 microseconds (throttled_usec).
func parseCPUStat(b []byte) throttle {
	var t throttle
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, " ")
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "nr_periods":
			t.Periods = n
		case "nr_throttled":
			t.Throttled = n
		case "throttled_time":
			t.WaitNs = n
		case "throttled_usec":
			t.WaitNs = n * 1000
		}
	}
	return t
}

// throttles reads every capped process's counters, by pid.
func (g *cgroup) throttles() map[int]throttle {
	out := map[int]throttle{}
	for pid := range g.capped {
		if b, err := os.ReadFile(filepath.Join(g.group(pid), "cpu.stat")); err == nil {
			out[pid] = parseCPUStat(b)
		}
	}
	return out
}

// remove moves what is left in the groups back to the root and removes
// them; best effort.
func (g *cgroup) remove() {
	root := filepath.Dir(g.parent)
	entries, _ := os.ReadDir(g.parent)
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		p := filepath.Join(g.parent, e.Name())
		if b, err := os.ReadFile(filepath.Join(p, "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(b)) {
				os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(pid), 0o644)
			}
		}
		os.Remove(p)
	}
	os.Remove(g.parent)
}

// children returns the pids whose parent is pid.
func children(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		k, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", k))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := string(st[strings.LastIndexByte(string(st), ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, k)
		}
	}
	return out, nil
}
