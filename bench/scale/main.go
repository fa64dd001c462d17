// Command scale is the scale-out benchmark (make bench-scale): it starts
// `cleave up` with one cluster, caps every node process's CPU with a cgroup
// (so the machine's cores are not what limits), measures durable 1 KiB puts
// with a client count that grows with the clusters (weak scaling) and with a
// fixed one (strong scaling), then splits every cluster in two with
// `cleave split` and measures again: 1, 2, 4, 8 clusters by default. It
// writes scale.json and scale.html (throughput and p99 against clusters,
// with the linear line) into its output directory and prints a table.
//
// With -fresh it starts a new deployment of N clusters for each step
// instead of splitting, which separates what splitting costs from what
// more clusters cost.
//
// It needs root for the cgroups (v1's cpu controller or v2's cpu.max);
// where neither is writable it says so and exits 1.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cleavefs/cleave/internal/ports"
	"github.com/cleavefs/cleave/loadgen"
	"github.com/cleavefs/cleave/up"
)

// config is the benchmark's flags.
type config struct {
	cleave, loadgen string
	out             string
	steps           []int
	quota           float64 // CPU cores per node process
	perCluster      int     // weak scaling: clients per cluster
	strong          int     // strong scaling: clients in all
	duration        time.Duration
	warmup          time.Duration
	fresh           bool
}

// step is one measured size of the deployment.
type step struct {
	Clusters int             `json:"clusters"`
	Weak     *loadgen.Result `json:"weak"`
	Strong   *loadgen.Result `json:"strong"`
	SplitS   float64         `json:"split_s,omitempty"` // time the splits to this size took
}

// report is scale.json.
type report struct {
	Started  time.Time `json:"started"`
	Quota    float64   `json:"node_cpu_quota"`
	Cgroup   string    `json:"cgroup"`
	PerClust int       `json:"clients_per_cluster"`
	Strong   int       `json:"strong_clients"`
	Fresh    bool      `json:"fresh"`
	Steps    []step    `json:"steps"`
}

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
	flag.DurationVar(&cfg.duration, "duration", 15*time.Second, "measured time of each run")
	flag.DurationVar(&cfg.warmup, "warmup", 3*time.Second, "unrecorded warm-up before each run")
	flag.BoolVar(&cfg.fresh, "fresh", false, "start a new deployment for each size instead of splitting")
	flag.Parse()
	var err error
	if cfg.steps, err = parseSteps(steps, cfg.fresh); err == nil {
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
	cg, err := newCgroup(cfg.quota)
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
	rep := report{Started: time.Now().UTC(), Quota: cfg.quota, Cgroup: cg.kind, PerClust: cfg.perCluster, Strong: cfg.strong, Fresh: cfg.fresh}
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
		fmt.Printf("%d cluster(s): measuring\n", n)
		if st.Weak, err = d.measure(ctx, cfg, cfg.perCluster*n, fmt.Sprintf("weak-%d", n)); err != nil {
			return err
		}
		if st.Strong, err = d.measure(ctx, cfg, cfg.strong, fmt.Sprintf("strong-%d", n)); err != nil {
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

// deployment is one `cleave up` under test.
type deployment struct {
	cleave string
	dir    string
	router string
	cmd    *exec.Cmd
	done   chan error
}

// startDeployment runs `cleave up` with n clusters in a fresh directory
// under the output directory and waits until it says it is up.
func startDeployment(ctx context.Context, cfg config, n int) (*deployment, error) {
	addr, err := ports.Free(1)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "cleave-scale-")
	if err != nil {
		return nil, err
	}
	d := &deployment{cleave: cfg.cleave, dir: filepath.Join(dir, "data"), router: addr[0], done: make(chan error, 1)}
	d.cmd = exec.Command(cfg.cleave, "up", "--data", d.dir, "--listen", d.router, "--clusters", fmt.Sprint(n))
	log, err := os.Create(filepath.Join(cfg.out, fmt.Sprintf("up-%d.log", n)))
	if err != nil {
		return nil, err
	}
	d.cmd.Stderr = log
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s up: %w", cfg.cleave, err)
	}
	upc := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		said := false
		for sc.Scan() {
			if !said && strings.Contains(sc.Text(), "cleave is up") {
				said = true
				upc <- true
			}
		}
	}()
	go func() { d.done <- d.cmd.Wait(); log.Close() }()
	select {
	case <-upc:
		return d, nil
	case err := <-d.done:
		return nil, fmt.Errorf("cleave up exited before it was up: %v (log: %s)", err, log.Name())
	case <-time.After(2 * time.Minute):
		d.stop()
		return nil, fmt.Errorf("cleave up was not up after 2 minutes (log: %s)", log.Name())
	case <-ctx.Done():
		d.stop()
		return nil, ctx.Err()
	}
}

// stop ends the deployment (SIGTERM, then SIGKILL) and removes its data.
func (d *deployment) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
	os.RemoveAll(filepath.Dir(d.dir))
}

// routers returns every router's client address, from up.json.
func (d *deployment) routers() (string, error) {
	t, err := up.LoadTopology(d.dir)
	if err != nil {
		return "", err
	}
	return strings.Join(t.RouterAddrs(), ","), nil
}

// splitAll splits every cluster of the deployment once, one after the
// other, each with `cleave split` (which waits until the split is cleaned).
func (d *deployment) splitAll(ctx context.Context) error {
	t, err := up.LoadTopology(d.dir)
	if err != nil {
		return err
	}
	var ids []string
	for _, c := range t.Clusters {
		ids = append(ids, c.ID)
	}
	for _, id := range ids {
		fmt.Printf("splitting %s\n", id)
		cmd := exec.CommandContext(ctx, d.cleave, "split", id, "--data", d.dir, "--router", d.router, "--timeout", "10m")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("cleave split %s: %v\n%s", id, err, out)
		}
	}
	return nil
}

// measure runs the put workload with clients clients and returns its
// result, also written to name.json in the output directory.
func (d *deployment) measure(ctx context.Context, cfg config, clients int, name string) (*loadgen.Result, error) {
	routers, err := d.routers()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, cfg.loadgen, "--router", routers, "--workload", "put", "--size", "1KiB",
		"--clients", fmt.Sprint(clients), "--duration", cfg.duration.String(), "--warmup", cfg.warmup.String(),
		"--roots", "4096", "--files", "65536", "--cpu-tree", fmt.Sprint(d.cmd.Process.Pid), "-o", "json")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: cleave-loadgen: %w", name, err)
	}
	var r loadgen.Result
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("%s: cleave-loadgen's JSON: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(cfg.out, name+".json"), out, 0o644); err != nil {
		return nil, err
	}
	fmt.Printf("  %-10s %4d clients  %8.0f puts/s  p50 %6.2f ms  p99 %7.2f ms  errors %d\n", name, clients, r.OpsPerSec, r.Latency.P50, r.Latency.P99, r.Errors)
	return &r, nil
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
