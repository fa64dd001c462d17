package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cleavefs/cleave/loadgen"
)

// round is one measured run of the put workload.
type round struct {
	Kind      string      `json:"kind"` // "weak" or "strong"
	Clients   int         `json:"clients"`
	Pinned    bool        `json:"pinned"` // clients pinned to clusters (cleave-loadgen --pin-clusters)
	OpsPerSec float64     `json:"ops_per_sec"`
	P50       float64     `json:"p50_ms"`
	P99       float64     `json:"p99_ms"`
	Errors    int64       `json:"errors"`
	Load      [2]float64  `json:"load1"` // the machine's 1-minute load average before and after
	CPU       cpuUse      `json:"cpu"`
	Throttle  throttleUse `json:"throttle"`
	Probe     probeUse    `json:"probe"` // the measuring probe over the round
	File      string      `json:"file"`  // the loadgen result, in the output directory
	result    *loadgen.Result
}

// cpuUse says where the machine's CPU went during a round's measured
// window, in cores (CPU seconds per second): the whole machine (sampled
// from /proc/stat every 250 ms), each kind of process of the deployment
// and the load generator. Other is what the rest of the machine used.
type cpuUse struct {
	Machine float64 `json:"machine_cores"` // every core busy = the machine's core count
	Nodes   float64 `json:"node_cores"`
	Routers float64 `json:"router_cores"`
	Up      float64 `json:"up_cores"` // the `cleave up` supervisor
	Loadgen float64 `json:"loadgen_cores"`
	Other   float64 `json:"other_cores"`
	// NodeMaxOfQuota is the busiest node's CPU over its quota (1: it used
	// all of it).
	NodeMaxOfQuota float64 `json:"node_max_of_quota"`
	// CPU per put on the leaders (each put is applied by one) and on the
	// followers (by two each), in µs.
	LeaderUsPerPut   float64 `json:"leader_us_per_put"`
	FollowerUsPerPut float64 `json:"follower_us_per_put"`
}

// throttleUse is the nodes' CFS throttling over a round, summed.
type throttleUse struct {
	throttle
	// Share is the part of the periods in which a node ran out of quota.
	Share float64 `json:"throttled_share"`
}

// measure runs the put workload with clients clients and returns the
// round, its loadgen result written to name.json in the output directory.
func (d *deployment) measure(ctx context.Context, cfg config, cg *cgroup, ps *probes, kind string, clients int, name string) (*round, error) {
	routers, err := d.routers()
	if err != nil {
		return nil, err
	}
	rd := &round{Kind: kind, Clients: clients, Pinned: cfg.pinFor(kind), File: name + ".json"}
	rd.Load[0] = loadAvg()
	thr0 := cg.throttles()
	pr0, t0 := ps.measure.count(), time.Now()
	stopSampling := sampleMachine()
	cmd := exec.CommandContext(ctx, cfg.loadgen, loadgenArgs(cfg, routers, d.cmd.Process.Pid, clients, rd.Pinned)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	samples := stopSampling()
	rd.Probe = probeSince(pr0, ps.measure.count(), time.Since(t0).Seconds(), len(ps.ballast))
	if err != nil {
		return nil, fmt.Errorf("%s: cleave-loadgen: %w", name, err)
	}
	rd.Throttle = throttleSince(thr0, cg.throttles())
	rd.Load[1] = loadAvg()
	var r loadgen.Result
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("%s: cleave-loadgen's JSON: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(cfg.out, rd.File), out, 0o644); err != nil {
		return nil, err
	}
	rd.CPU.Machine = samples.cores(r.Started, r.Started.Add(time.Duration(r.DurationS*float64(time.Second))))
	rd.result, rd.OpsPerSec, rd.P50, rd.P99, rd.Errors = &r, r.OpsPerSec, r.Latency.P50, r.Latency.P99, r.Errors
	rd.CPU.attribute(&r, d.roles, cfg.quota)
	fmt.Printf("  %-12s %4d clients%s  %6.0f puts/s  p50 %6.1f ms  p99 %7.1f ms  errors %d  machine %.2f cores (nodes %.2f, routers %.2f, loadgen %.2f, other %.2f)  throttled %.0f%%  probe %.0f ns/op  load %.1f\n",
		name, clients, map[bool]string{true: " pinned", false: ""}[rd.Pinned], r.OpsPerSec, r.Latency.P50, r.Latency.P99, r.Errors, rd.CPU.Machine, rd.CPU.Nodes, rd.CPU.Routers, rd.CPU.Loadgen, rd.CPU.Other, 100*rd.Throttle.Share, rd.Probe.NsPerOp, rd.Load[1])
	return rd, nil
}

// loadgenArgs are cleave-loadgen's arguments for a round of 1 KiB puts
// by clients against routers, measuring the CPU of the tree of upPID; with
// pin, client i writes only roots of cluster i mod N.
func loadgenArgs(cfg config, routers string, upPID, clients int, pin bool) []string {
	args := []string{"--router", routers, "--workload", "put", "--size", "1KiB",
		"--clients", fmt.Sprint(clients), "--duration", cfg.duration.String(), "--warmup", cfg.warmup.String(),
		"--roots", "4096", "--files", "65536", "--timeout", "30s", "--cpu-tree", fmt.Sprint(upPID), "-o", "json"}
	if pin {
		args = append(args, "--pin-clusters")
	}
	return args
}

// attribute sums the loadgen's per-process CPU by kind of process; roles
// maps node pids to their raft role.
func (c *cpuUse) attribute(r *loadgen.Result, roles map[int]string, quota float64) {
	sc := r.ServerCPU
	if sc == nil || r.DurationS <= 0 {
		return
	}
	window, ops := r.DurationS, float64(max(r.Ops+r.Errors, 1))
	var leader, follower float64
	for _, p := range sc.Procs {
		s := p.UserS + p.SysS
		switch f := strings.Fields(p.Label); {
		case len(f) > 1 && f[1] == "node":
			c.Nodes += s / window
			c.NodeMaxOfQuota = max(c.NodeMaxOfQuota, s/window/quota)
			if roles[p.PID] == "leader" {
				leader += s
			} else {
				follower += s
			}
		case len(f) > 1 && f[1] == "router":
			c.Routers += s / window
		default:
			c.Up += s / window
		}
	}
	c.Loadgen = sc.LoadgenUsPerOp * ops / 1e6 / window
	c.Other = max(c.Machine-c.Nodes-c.Routers-c.Up-c.Loadgen, 0)
	c.LeaderUsPerPut, c.FollowerUsPerPut = leader*1e6/ops, follower*1e6/ops/2
}

// throttleSince sums the nodes' counters gained from before to after.
func throttleSince(before, after map[int]throttle) throttleUse {
	var u throttleUse
	for pid, a := range after {
		b := before[pid]
		u.Periods += a.Periods - b.Periods
		u.Throttled += a.Throttled - b.Throttled
		u.WaitNs += a.WaitNs - b.WaitNs
	}
	if u.Periods > 0 {
		u.Share = float64(u.Throttled) / float64(u.Periods)
	}
	return u
}

// median returns the round of median throughput (of an even count, the
// upper middle one), and the lowest and highest throughput.
func median(rs []*round) (med *round, lo, hi float64) {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b *round) int { return cmp.Compare(a.OpsPerSec, b.OpsPerSec) })
	return s[len(s)/2], s[0].OpsPerSec, s[len(s)-1].OpsPerSec
}

// busySample is the machine's busy ticks at a time.
type busySample struct {
	at   time.Time
	busy float64
}

// busySamples are samples in time order.
type busySamples []busySample

// sampleInterval is how often sampleMachine reads /proc/stat.
const sampleInterval = 250 * time.Millisecond

// sampleMachine reads the machine's busy time every sampleInterval until
// the returned function is called, which returns the samples.
func sampleMachine() func() busySamples {
	var out busySamples
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(sampleInterval)
		defer t.Stop()
		for {
			out = append(out, busySample{time.Now(), machineBusy()})
			select {
			case <-stop:
				out = append(out, busySample{time.Now(), machineBusy()})
				return
			case <-t.C:
			}
		}
	}()
	return func() busySamples { close(stop); <-done; return out }
}

// cores is the machine's busy cores between the last sample at or before
// from and the first at or after to (the whole span if none bracket it).
func (s busySamples) cores(from, to time.Time) float64 {
	if len(s) < 2 {
		return 0
	}
	a, b := 0, len(s)-1
	for i, x := range s {
		if !x.at.After(from) {
			a = i
		}
	}
	for i := len(s) - 1; i >= 0; i-- {
		if !s[i].at.Before(to) {
			b = i
		}
	}
	if b <= a {
		a, b = 0, len(s)-1
	}
	return (s[b].busy - s[a].busy) / clkTck / s[b].at.Sub(s[a].at).Seconds()
}

// machineBusy is the whole machine's busy CPU time in clock ticks, from
// /proc/stat (everything but idle and iowait); 0 if unreadable.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0
	}
	var busy float64
	for i, v := range f[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		busy += n
	}
	return busy
}

// loadAvg is the machine's 1-minute load average, 0 if unreadable.
func loadAvg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
