// Command scale is the scale-out benchmark (make bench-scale): it starts
// `cleave up` with one cluster, caps every node process's CPU with a cgroup
// (so the machine's cores are not what limits), measures durable 1 KiB puts
// with a client count that grows with the clusters (weak scaling) and with a
// fixed one (strong scaling), then splits every cluster in two with
// `cleave split` and measures again: 1, 2, 4, 8 clusters by default. It
// writes scale.json and scale.html (throughput and p99 against clusters,
// with the linear line) into its output directory and prints a table.
//
// After each start and each split it waits until the deployment has
// settled (every split cleaned, every node reachable, no node busy on its
// own, so cleanup compactions are over) and runs an unrecorded load, then
// measures -rounds runs of each kind, alternated, and reports the median
// round with the lowest and highest. Each round records where the CPU
// went: the whole machine (/proc/stat), the nodes, routers, supervisor and
// load generator (/proc/PID/stat), the nodes' CPU per put as leader and
// as follower, and the nodes' CFS throttling (the cgroup's cpu.stat), so
// a reader sees whether the machine or the nodes' caps were the limit.
// -cfs-period sets the caps' period: the quota is -quota times it.
//
// With -fresh it starts a new deployment of N clusters for each step
// instead of splitting, which separates what splitting costs from what
// more clusters cost.
//
// One machine holds every node, so each step crowds its cores and caches
// more than the one before, and the same work costs more CPU. A probe
// (probe.go), capped like a node and doing a fixed storage workload, runs
// beside every round and records its CPU per operation, which shows that
// cost. With -ballast, probes also stand in for the nodes a step lacks
// against the last step, so every step runs on an equally crowded
// machine, as each node of a real deployment has a machine of its own.
//
// It needs root for the cgroups (v1's cpu controller or v2's cpu.max);
// where neither is writable it says so and exits 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/cleavefs/cleave/loadgen"
)

// config is the benchmark's flags.
type config struct {
	cleave, loadgen string
	out             string
	steps           []int
	quota           float64 // CPU cores per node process
	perCluster      int     // weak scaling: clients per cluster
	strong          int     // strong scaling: clients in all
	pinWeak         bool    // weak scaling: each cluster's clients write only its roots
	duration        time.Duration
	warmup          time.Duration
	fresh           bool
	period          time.Duration // CFS period of the node caps
	rounds          int           // measured runs of each kind per step
	settleMax       time.Duration // longest wait for a deployment to settle
	settleLoad      time.Duration // unrecorded load run after each start and split
	ballast         bool          // run probes so every step has as many capped processes as the last
}

// step is one measured size of the deployment. Weak and Strong are the
// rounds of median throughput; the spread is the lowest and highest.
type step struct {
	Clusters     int             `json:"clusters"`
	Weak         *loadgen.Result `json:"weak"`
	Strong       *loadgen.Result `json:"strong"`
	WeakSpread   [2]float64      `json:"weak_spread"` // lowest and highest puts/s of the rounds
	StrongSpread [2]float64      `json:"strong_spread"`
	WeakRounds   []*round        `json:"weak_rounds"`
	StrongRounds []*round        `json:"strong_rounds"`
	SplitS       float64         `json:"split_s,omitempty"` // time the splits to this size took
	SettleS      float64         `json:"settle_s"`          // wait until settled, after the start or the splits
	Unsettled    string          `json:"unsettled,omitempty"`
	Uptime       [2]string       `json:"uptime"` // /proc/loadavg before and after the step's rounds
}

// report is scale.json.
type report struct {
	Started  time.Time `json:"started"`
	Quota    float64   `json:"node_cpu_quota"`
	PeriodMs float64   `json:"cfs_period_ms"`
	Rounds   int       `json:"rounds"`
	Cores    int       `json:"machine_cores"`
	Cgroup   string    `json:"cgroup"`
	PerClust int       `json:"clients_per_cluster"`
	Strong   int       `json:"strong_clients"`
	// WeakPinned says the weak rounds pinned each cluster's clients to it
	// (cleave-loadgen --pin-clusters); strong rounds never are.
	WeakPinned bool `json:"weak_pinned"`
	Fresh      bool `json:"fresh"`
	// Ballast says every step ran probes in place of the nodes it lacked
	// against the last step (-ballast).
	Ballast bool   `json:"ballast"`
	Steps   []step `json:"steps"`
}

// defaultPeriod is the caps' CFS period: the shortest the kernel allows
// for 0.05 core (a 1 ms quota). With the kernel's 100 ms a capped node
// runs 5 ms and then waits up to 95 ms, so each hop of a put (leader,
// follower, leader) may wait most of a period, and a cluster moves at the
// pace of whichever of its nodes was throttled last; with 20 ms the waits
// are under 20 ms and the same share of a core is spread evenly.
const defaultPeriod = 20 * time.Millisecond

func main() {
	var cfg config
	var steps string
	flag.StringVar(&cfg.cleave, "cleave", "bin/cleave", "the cleave binary")
	flag.StringVar(&cfg.loadgen, "loadgen", "bin/cleave-loadgen", "the cleave-loadgen binary")
	flag.StringVar(&cfg.out, "out", "", "output directory (default bench/results/scale-<UTC time>)")
	flag.StringVar(&steps, "steps", "1,2,4,8", "cluster counts to measure, each the double of the one before unless -fresh")
	flag.Float64Var(&cfg.quota, "quota", 0.05, "CPU cores each node process may use")
	flag.IntVar(&cfg.perCluster, "clients-per-cluster", 64, "weak scaling: clients per cluster")
	flag.IntVar(&cfg.strong, "strong-clients", 64, "strong scaling: clients in all, at every size")
	flag.BoolVar(&cfg.pinWeak, "pin-weak", true, "weak scaling: pin each cluster's clients to it (cleave-loadgen --pin-clusters) instead of letting every client write every cluster's roots")
	flag.DurationVar(&cfg.duration, "duration", 15*time.Second, "measured time of each run")
	flag.DurationVar(&cfg.warmup, "warmup", 3*time.Second, "unrecorded warm-up before each run")
	flag.BoolVar(&cfg.fresh, "fresh", false, "start a new deployment for each size instead of splitting")
	flag.DurationVar(&cfg.period, "cfs-period", defaultPeriod, "CFS period of the node caps (the quota is -quota times it; the kernel's least quota is 1ms)")
	flag.IntVar(&cfg.rounds, "rounds", 3, "measured runs of each kind (weak, strong) per step, alternated; the median is reported")
	flag.DurationVar(&cfg.settleMax, "settle-max", 2*time.Minute, "longest wait after a start or a split for splits to be cleaned and nodes idle")
	flag.DurationVar(&cfg.settleLoad, "settle-load", 5*time.Second, "unrecorded load run after each start and split (0: none)")
	flag.BoolVar(&cfg.ballast, "ballast", false, "keep the machine as crowded at every step as at the last: run capped probe processes in place of the nodes a step lacks (three per missing cluster)")
	probeMode := flag.Bool("probe", false, "run as a probe process (used by the benchmark itself)")
	flag.Parse()
	if *probeMode {
		if err := runProbe(); err != nil {
			fmt.Fprintln(os.Stderr, "probe:", err)
			os.Exit(1)
		}
		return
	}
	var err error
	if cfg.steps, err = parseSteps(steps, cfg.fresh); err == nil && cfg.rounds < 1 {
		err = fmt.Errorf("-rounds %d: want at least 1", cfg.rounds)
	}
	if err == nil {
		err = run(cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-scale:", err)
		os.Exit(1)
	}
}

// parseSteps reads -steps: positive, increasing, and (when splitting) each
// the double of the one before.
func parseSteps(s string, fresh bool) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(f), "%d", &n); err != nil || n < 1 {
			return nil, fmt.Errorf("-steps %q: %q is not a positive cluster count", s, f)
		}
		if len(out) > 0 {
			prev := out[len(out)-1]
			if n <= prev || (!fresh && n != 2*prev) {
				return nil, fmt.Errorf("-steps %q: %d after %d: each step must double the one before (splitting halves every cluster), or use -fresh", s, n, prev)
			}
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-steps is empty")
	}
	return out, nil
}

func run(cfg config) error {
	cg, err := newCgroup(cfg.quota, cfg.period)
	if err != nil {
		return err
	}
	defer cg.remove()
	if cfg.out == "" {
		cfg.out = filepath.Join("bench", "results", "scale-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep := report{Started: time.Now().UTC(), Quota: cfg.quota, PeriodMs: float64(cfg.period) / 1e6, Rounds: cfg.rounds,
		Cores: runtime.NumCPU(), Cgroup: cg.kind, PerClust: cfg.perCluster, Strong: cfg.strong, WeakPinned: cfg.pinWeak, Fresh: cfg.fresh, Ballast: cfg.ballast}
	ps, err := startProbes(cg)
	if err != nil {
		return err
	}
	defer ps.stop()
	var d *deployment
	defer func() {
		if d != nil {
			d.stop()
		}
	}()
	for i, n := range cfg.steps {
		st := step{Clusters: n}
		switch {
		case i == 0 || cfg.fresh:
			if d != nil {
				d.stop()
			}
			if d, err = startDeployment(ctx, cfg, n); err != nil {
				return err
			}
		default:
			start := time.Now()
			if err := d.splitAll(ctx); err != nil {
				return err
			}
			st.SplitS = time.Since(start).Seconds()
		}
		if err := cg.capNodes(d.cmd.Process.Pid); err != nil {
			return err
		}
		if cfg.ballast {
			last := cfg.steps[len(cfg.steps)-1]
			if err := ps.setBallast(3 * (last - n)); err != nil {
				return err
			}
		}
		if err := measureStep(ctx, cfg, cg, ps, d, &st); err != nil {
			return err
		}
		rep.Steps = append(rep.Steps, st)
		if err := writeReport(cfg.out, &rep); err != nil {
			return err
		}
	}
	printTable(os.Stdout, &rep)
	fmt.Printf("results in %s (scale.json, scale.html)\n", cfg.out)
	return nil
}

// measureStep waits for the deployment to settle, warms it up with an
// unrecorded run, then measures cfg.rounds weak and strong rounds,
// alternated so that a change in the machine's load touches both alike.
func measureStep(ctx context.Context, cfg config, cg *cgroup, ps *probes, d *deployment, st *step) error {
	n := st.Clusters
	wait, why := d.settle(ctx, cfg.quota, cfg.settleMax)
	st.SettleS, st.Unsettled = wait.Seconds(), why
	if why != "" {
		fmt.Printf("%d cluster(s): not settled after %v: %s; measuring anyway\n", n, wait.Round(time.Second), why)
	}
	if cfg.settleLoad > 0 {
		warm := cfg
		warm.duration, warm.warmup = cfg.settleLoad, 0
		if _, err := d.measure(ctx, warm, cg, ps, "settle", cfg.perCluster*n, fmt.Sprintf("settle-%d", n)); err != nil {
			return err
		}
	}
	fmt.Printf("%d cluster(s): measuring, settled after %v\n", n, wait.Round(time.Second))
	st.Uptime[0] = uptime()
	for r := 1; r <= cfg.rounds; r++ {
		w, err := d.measure(ctx, cfg, cg, ps, "weak", cfg.perCluster*n, fmt.Sprintf("weak-%d-r%d", n, r))
		if err != nil {
			return err
		}
		s, err := d.measure(ctx, cfg, cg, ps, "strong", cfg.strong, fmt.Sprintf("strong-%d-r%d", n, r))
		if err != nil {
			return err
		}
		st.WeakRounds, st.StrongRounds = append(st.WeakRounds, w), append(st.StrongRounds, s)
	}
	st.Uptime[1] = uptime()
	w, lo, hi := median(st.WeakRounds)
	st.Weak, st.WeakSpread = w.result, [2]float64{lo, hi}
	s, lo, hi := median(st.StrongRounds)
	st.Strong, st.StrongSpread = s.result, [2]float64{lo, hi}
	return nil
}

// pinFor says whether a round of kind pins clients to clusters: weak
// rounds and the settling load (run with the weak client count) do when
// -pin-weak is set; strong rounds (a fixed client count over every
// cluster) never do.
func (c config) pinFor(kind string) bool {
	return c.pinWeak && kind != "strong"
}

// uptime is /proc/loadavg's load averages (1, 5, 15 minutes).
func uptime() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// writeReport writes scale.json and scale.html.
func writeReport(dir string, rep *report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "scale.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "scale.html"), []byte(renderHTML(rep)), 0o644)
}

var errNoCgroup = errors.New("no writable cgroup cpu controller")
