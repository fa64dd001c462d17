// Command cleave-loadgen drives a cleave deployment (or, with --target etcd,
// an etcd cluster, for comparison) with file workloads and reports latency distributions (HDR histograms), throughput over time and
// errors by code, as a table, as JSON (-o json) and as a self-contained HTML
// report (--report). `cleave-loadgen compare A.json B.json` prints the
// ratios of two runs, per operation too, and with thresholds fails on a
// regression; `cleave-loadgen merge A.json B.json` combines runs made from
// several hosts; `cleave-loadgen summary FILE.json...` tabulates many;
// `cleave-loadgen report -o OUT.html FILE.json...` draws them on one page.
// It is a thin shell: the engine is package loadgen.
//
// Exit status: 0 when the run completed (operation errors are reported, not
// fatal), 1 when it could not run (unreachable router, failed preload), 2
// for a usage error, 3 when compare found a regression past a threshold.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/loadgen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, isTerminal(os.Stderr)))
}

// usageError marks a bad flag or argument (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// run executes the command line and returns the exit status. tty says
// whether stderr is a terminal (progress bars are drawn only then).
func run(args []string, stdout, stderr io.Writer, tty bool) int {
	root := newRoot(tty)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "cleave-loadgen: %v\n", err)
	var re regressionError
	if errors.As(err, &re) {
		return 3
	}
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		if cmd == nil {
			cmd = root
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return 2
	}
	return 1
}

// regressionError is compare's verdict that B regressed (exit 3).
type regressionError struct{ n int }

func (e regressionError) Error() string {
	if e.n == 1 {
		return "1 regression past its threshold"
	}
	return fmt.Sprintf("%d regressions past their thresholds", e.n)
}

// opts are the flags of the load run.
type opts struct {
	router, workload, size, dist, rate, output, report, token, prefix string
	target, endpoints, label                                          string
	roots, files, ops, preload                                        int64
	clients, clkTck, conns                                            int
	duration, timeout, warmup                                         time.Duration
	readRatio, theta                                                  float64
	stale, quiet, baseline, pin, direct                               bool
	cpuprofile                                                        string
	cpuPIDs, cpuTree                                                  []int
	seed                                                              uint64
}

func newRoot(tty bool) *cobra.Command {
	var o opts
	root := &cobra.Command{
		Use:   "cleave-loadgen [flags]",
		Short: "Drive a cleave deployment with a file workload and report latency and throughput",
		Long: `cleave-loadgen runs a workload against a cleave deployment and reports
throughput, latency percentiles (HDR histograms, per operation) and errors
by code.

Closed loop (default): each of --clients workers sends its next operation as
soon as the previous returns. Open loop (--rate R/s): operations are due at
fixed times and latency counts from the due time, so a stall shows as
latency instead of being hidden (coordinated omission, as wrk2 corrects it).

Workloads: put, get, mixed (--read-ratio gets, the rest puts), append, list
(lists the --roots directories, --files/--roots entries each), stat, stream.
Read workloads first create --preload files (default: --files), unmeasured.

YCSB core workloads, over files (a record is a file of --size):
  ycsb-a  50% read, 50% update                 zipfian
  ycsb-b  95% read, 5% update                  zipfian
  ycsb-c  100% read                            zipfian
  ycsb-d  95% read, 5% insert                  latest (newest files hottest)
  ycsb-e  95% scan, 5% insert                  zipfian; a scan lists the first
          1-100 entries (uniform) of the record's root directory
  ycsb-f  50% read, 50% read-modify-write      zipfian
Their load phase first creates --records files (YCSB's recordcount; the
same as --files) over --roots root directories, so over the clusters.
zipfian is YCSB's scrambled zipfian with skew --zipf-theta (default 0.99);
--dist overrides the workload's distribution.

--warmup D runs the workload for D before measuring; nothing in it is
recorded. Failed operations are counted by error code and their latency is
kept apart, per operation (error_latency_ms). The JSON result carries the raw
HDR histograms, so 'cleave-loadgen merge' combines the results of runs made
at the same time from several hosts exactly, and the version, commit, host,
GOMAXPROCS and every flag of the run.

--pin-clusters pins clients to clusters: with N clusters in the routing
table, client i writes only root directories owned by the (i mod N)-th, about
--roots/N of them, so each cluster has --clients/N requests in flight however
the others fare (put, append and stream, without preload; cleave only). The
JSON names the clusters in pinned_clusters.

--router and --token can also be set as CLEAVE_ROUTER and CLEAVE_TOKEN.

--target etcd drives an etcd cluster at --endpoints instead, with the same
keys (a file's path is its key), values, histograms and JSON: put is etcd's
durable put, get its linearizable get (serializable with --stale), stat a
count-only get, list a count of the keys under the root; append and stream
are cleave's only.

Server CPU: --cpu-pids and --cpu-tree name the server processes (a tree is
a process and all its descendants, e.g. the pid of 'cleave up'); their user
+ system time from /proc/PID/stat before and after the measured window is
reported as server CPU µs per operation (ops + errors), in total and per
process, in the table, the JSON (server_cpu) and the HTML report.`,
		Example: `  cleave-loadgen --workload put --size 1KiB --clients 64 --duration 10s
  cleave-loadgen --workload get --clients 64 --files 10000 --dist zipf -o json > get.json
  cleave-loadgen --workload mixed --read-ratio 0.9 --rate 5000/s --report mixed.html
  cleave-loadgen --workload put --clients 64 --cpu-tree $(pgrep -o -f 'cleave up')
  cleave-loadgen --target etcd --endpoints 127.0.0.1:2379 --workload get --clients 64 --cpu-pids 101,102,103
  cleave-loadgen --workload ycsb-a --records 100000 --warmup 10s --duration 60s -o json > a.json
  cleave-loadgen --workload ycsb-e --size lognormal:4KiB,1.5 --zipf-theta 0.8
  cleave-loadgen compare before.json after.json
  cleave-loadgen compare --max-regression 10% before.json after.json
  cleave-loadgen merge host1.json host2.json > all.json
  cleave-loadgen summary bench/results/latest/*.json`,
		Args:          usageArgs(cobra.NoArgs),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config(cmd)
			if err != nil {
				return usageError{err}
			}
			return runLoad(cmd, &o, cfg, tty, flagValues(cmd))
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	f := root.Flags()
	d := loadgen.DefaultConfig()
	f.StringVar(&o.router, "router", "127.0.0.1:7400", "router addresses, HOST:PORT[,HOST:PORT...] (env CLEAVE_ROUTER)")
	f.StringVar(&o.token, "token", "", "auth token (env CLEAVE_TOKEN)")
	f.StringVar(&o.workload, "workload", string(d.Workload), "put, get, mixed, append, list, stat, stream, or YCSB's ycsb-a ... ycsb-f")
	f.StringVar(&o.size, "size", d.Size.String(), "file size for writes: fixed (1KiB), uniform range (1KiB-64KiB), lognormal:MEDIAN,SIGMA[,MAX] (lognormal:4KiB,1.5) or hist:FILE (lines of SIZE WEIGHT or MIN-MAX WEIGHT); KB, MB, GB are powers of 1000, KiB, MiB, GiB (or K, M, G) powers of 1024")
	f.Int64Var(&o.roots, "roots", d.Roots, "root directories the files spread over (roots decide the cluster)")
	f.Int64Var(&o.files, "files", d.Files, "distinct files over all roots; YCSB's record count, also spelled --records")
	f.StringVar(&o.dist, "dist", string(d.Dist), "how files are chosen: uniform, zipf or latest (default: uniform; the YCSB workload's own)")
	f.Float64Var(&o.theta, "zipf-theta", d.Theta, "skew of zipf and latest, in (0, 1): YCSB's zipfian constant")
	f.DurationVar(&o.warmup, "warmup", 0, "run the workload this long before measuring, recording nothing")
	f.IntVar(&o.clients, "clients", d.Clients, "concurrent workers")
	f.DurationVar(&o.duration, "duration", d.Duration, "how long to measure (ignored if only --ops is given)")
	f.Int64Var(&o.ops, "ops", 0, "stop after this many operations instead of after --duration")
	f.StringVar(&o.rate, "rate", "0", "open loop at this rate over all clients, e.g. 5000/s; 0 = closed loop")
	f.Float64Var(&o.readRatio, "read-ratio", d.ReadRatio, "mixed: fraction of operations that are gets")
	f.BoolVar(&o.stale, "stale", false, "reads may be served stale by any replica")
	f.BoolVar(&o.direct, "direct", false, "send file operations straight to the owning cluster's leader, as the routing table says (the router still answers the rest; nodes accept only the deployment's token)")
	f.Uint64Var(&o.seed, "seed", d.Seed, "seed of sizes, keys and data")
	f.Int64Var(&o.preload, "preload", d.Preload, "files created before measuring (-1: --files for read workloads, else 0)")
	f.BoolVar(&o.pin, "pin-clusters", false, "client i writes only roots of cluster i mod N of the N in the routing table (put, append, stream)")
	f.StringVar(&o.prefix, "prefix", d.Prefix, "root directories are named PREFIX-000, PREFIX-001, ...")
	f.DurationVar(&o.timeout, "timeout", d.Timeout, "deadline of one operation")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no progress bar")
	f.StringVar(&o.report, "report", "", "also write a self-contained HTML report to this file")
	f.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the load generator itself to this file")
	f.StringVar(&o.target, "target", "cleave", "what to drive: cleave (through --router) or etcd (through --endpoints)")
	f.StringVar(&o.endpoints, "endpoints", "127.0.0.1:2379", "etcd: client endpoints, HOST:PORT[,HOST:PORT...]")
	f.IntVar(&o.conns, "conns", 1, "etcd: client connections the workers take turns over")
	f.StringVar(&o.label, "label", "", "what summaries call the system measured (default: the target)")
	f.BoolVar(&o.baseline, "baseline", false, "mark the run as a baseline build's, compared to in summaries as current / baseline")
	f.IntSliceVar(&o.cpuPIDs, "cpu-pids", nil, "server processes whose CPU (user+system, /proc) is measured over the run, PID[,PID...]")
	f.IntSliceVar(&o.cpuTree, "cpu-tree", nil, "like --cpu-pids, each with all its descendants")
	f.IntVar(&o.clkTck, "clk-tck", 100, "clock ticks per second of /proc/PID/stat (getconf CLK_TCK)")
	f.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "records" {
			name = "files"
		}
		return pflag.NormalizedName(name)
	})
	ver, rev, _ := loadgen.BuildInfo()
	root.Version = ver + " (commit " + rev + ")"
	root.AddCommand(newCompareCmd(), newMergeCmd(), newSummaryCmd(), newReportCmd())
	return root
}

// flagValues returns every flag of cmd with its value as the run used it,
// defaults included; the token is redacted.
func flagValues(cmd *cobra.Command) map[string]string {
	out := map[string]string{}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" || f.Name == "version" {
			return
		}
		out[f.Name] = f.Value.String()
	})
	if out["token"] != "" || os.Getenv("CLEAVE_TOKEN") != "" {
		out["token"] = "(set)"
	}
	return out
}

// config turns the flags into a validated loadgen.Config.
func (o *opts) config(cmd *cobra.Command) (loadgen.Config, error) {
	f := cmd.Flags()
	if !f.Changed("router") {
		if v := os.Getenv("CLEAVE_ROUTER"); v != "" {
			o.router = v
		}
	}
	if !f.Changed("token") {
		o.token = os.Getenv("CLEAVE_TOKEN")
	}
	if o.output != "table" && o.output != "json" {
		return loadgen.Config{}, fmt.Errorf("-o %q: want table or json", o.output)
	}
	cfg := loadgen.DefaultConfig()
	cfg.Workload = loadgen.Workload(strings.ToLower(o.workload))
	var err error
	if cfg.Size, err = loadgen.ParseSize(o.size); err != nil {
		return cfg, fmt.Errorf("--size: %w", err)
	}
	if cfg.Dist, err = loadgen.ParseDist(o.dist); err != nil {
		return cfg, fmt.Errorf("--dist: %w", err)
	}
	if cfg.Rate, err = loadgen.ParseRate(o.rate); err != nil {
		return cfg, fmt.Errorf("--rate: %w", err)
	}
	cfg.Roots, cfg.Files, cfg.Clients = o.roots, o.files, o.clients
	cfg.Duration, cfg.Ops = o.duration, o.ops
	if o.ops > 0 && !f.Changed("duration") {
		cfg.Duration = 0
	}
	cfg.ReadRatio, cfg.Stale, cfg.Seed, cfg.Preload = o.readRatio, o.stale, o.seed, o.preload
	cfg.Direct = o.direct
	cfg.Theta, cfg.Warmup, cfg.PinClusters = o.theta, o.warmup, o.pin
	cfg.Prefix, cfg.Timeout, cfg.Router = o.prefix, o.timeout, o.router
	switch o.target {
	case "cleave":
	case "etcd":
		cfg.Router = o.endpoints
		if o.direct {
			return cfg, fmt.Errorf("--direct: cleave's client mode; etcd's client always talks to its members")
		}
	default:
		return cfg, fmt.Errorf("--target %q: want cleave or etcd", o.target)
	}
	if o.conns < 1 {
		return cfg, fmt.Errorf("--conns %d: want at least 1", o.conns)
	}
	cfg.Target, cfg.Label, cfg.Baseline, cfg.ClockTicks = o.target, o.label, o.baseline, o.clkTck
	cfg.CPUPIDs = append(cfg.CPUPIDs, o.cpuPIDs...)
	for _, p := range o.cpuTree {
		tree, err := loadgen.ProcTree(p)
		if err != nil {
			return cfg, fmt.Errorf("--cpu-tree: %w", err)
		}
		cfg.CPUPIDs = append(cfg.CPUPIDs, tree...)
	}
	return cfg, cfg.Validate()
}

// dialTimeout bounds connecting to the system under test.
const dialTimeout = 10 * time.Second

// dial connects to the target and returns its Store and how to close it.
func dial(ctx context.Context, o *opts, cfg loadgen.Config) (loadgen.Store, func() error, error) {
	if cfg.Target == "etcd" {
		s, err := loadgen.NewEtcdStore(ctx, strings.Split(o.endpoints, ","), o.conns, min(dialTimeout, cfg.Timeout), cfg.Stale)
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	copts := []client.Option{client.WithClientName("cleave-loadgen"), client.WithTimeout(cfg.Timeout)}
	if o.token != "" {
		copts = append(copts, client.WithToken(o.token))
	}
	if cfg.Stale {
		copts = append(copts, client.WithStaleReads())
	}
	if cfg.Direct {
		copts = append(copts, client.WithDirect())
	}
	c, err := client.Dial(dctx, strings.Split(o.router, ","), copts...)
	if err != nil {
		return nil, nil, err
	}
	return loadgen.NewCleaveStore(c), c.Close, nil
}

// runLoad dials the target, runs the workload and writes the outputs.
func runLoad(cmd *cobra.Command, o *opts, cfg loadgen.Config, tty bool, flags map[string]string) error {
	ctx := cmd.Context()
	store, closeStore, err := dial(ctx, o, cfg)
	if err != nil {
		return err
	}
	defer closeStore()

	var progress func(loadgen.Snapshot)
	var bar *loadgen.Progress
	if tty && !o.quiet && o.output != "json" {
		bar = loadgen.NewProgress(cmd.ErrOrStderr(), cfg)
		progress = bar.Update
	}
	if o.cpuprofile != "" {
		pf, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := loadgen.Run(ctx, cfg, store, progress)
	if bar != nil {
		bar.Done()
	}
	if err != nil {
		return err
	}
	res.Flags = flags
	if o.report != "" {
		if err := writeFile(o.report, func(w io.Writer) error { return loadgen.WriteReport(w, "", res) }); err != nil {
			return err
		}
	}
	if o.output == "json" {
		return res.WriteJSON(cmd.OutOrStdout())
	}
	if err := res.WriteTable(cmd.OutOrStdout()); err != nil {
		return err
	}
	if o.report != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "report: %s\n", o.report)
	}
	return nil
}

func newCompareCmd() *cobra.Command {
	var all, thr, p50, p99, errRate string
	cmd := &cobra.Command{
		Use:   "compare A.json B.json",
		Short: "Print the figures of run B relative to run A (B/A); with thresholds, exit 3 on a regression",
		Long: `compare prints the totals of run B relative to run A, then each operation's
throughput, p50, p99 and error rate. With --max-regression (or the
per-figure flags, which override it) every operation of A is checked: a
throughput drop, a p50 or p99 rise or an error-rate rise (errors / all
operations; from 0, any error) larger than the threshold is printed to
stderr, naming the operation and figure, and compare exits with status 3.`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			th, err := thresholds(cmd, all, thr, p50, p99, errRate)
			if err != nil {
				return usageError{err}
			}
			a, err := readResult(args[0])
			if err != nil {
				return err
			}
			b, err := readResult(args[1])
			if err != nil {
				return err
			}
			if err := loadgen.WriteCompare(cmd.OutOrStdout(), a, b, args[0], args[1]); err != nil {
				return err
			}
			regs := loadgen.CheckRegressions(a, b, th)
			for _, r := range regs {
				fmt.Fprintf(cmd.ErrOrStderr(), "regression: %s\n", r)
			}
			if len(regs) > 0 {
				return regressionError{len(regs)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&all, "max-regression", "", "largest tolerated regression of every figure below, e.g. 10%")
	f.StringVar(&thr, "max-throughput-drop", "", "largest tolerated drop of an operation's ops/s, e.g. 5%")
	f.StringVar(&p50, "max-p50-rise", "", "largest tolerated rise of an operation's p50 latency")
	f.StringVar(&p99, "max-p99-rise", "", "largest tolerated rise of an operation's p99 latency")
	f.StringVar(&errRate, "max-error-rate-rise", "", "largest tolerated rise of an operation's error rate")
	return cmd
}

// thresholds turns compare's flags into loadgen.Thresholds: each
// per-figure flag, else --max-regression, else not checked.
func thresholds(cmd *cobra.Command, all string, per ...string) (loadgen.Thresholds, error) {
	names := []string{"max-throughput-drop", "max-p50-rise", "max-p99-rise", "max-error-rate-rise"}
	vals := make([]float64, len(per))
	for i, v := range per {
		name := names[i]
		if v == "" {
			v, name = all, "max-regression"
		}
		vals[i] = -1
		if v == "" {
			continue
		}
		p, err := loadgen.ParsePercent(v)
		if err != nil {
			return loadgen.Thresholds{}, fmt.Errorf("--%s: %w", name, err)
		}
		vals[i] = p
	}
	return loadgen.Thresholds{Throughput: vals[0], P50: vals[1], P99: vals[2], ErrorRate: vals[3]}, nil
}

func newMergeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "merge A.json B.json...",
		Short: "Combine the JSON results of runs made at the same time from several hosts into one (JSON on stdout)",
		Long: `merge combines results of one workload run at the same time from several
hosts against one deployment into the result of one run over all their
operations: counts summed, latency percentiles computed from the merged raw
HDR histograms (exactly as one run recording every sample would), throughput
as all operations over the longest run's duration.`,
		Args: usageArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			rs, err := readResults(args)
			if err != nil {
				return err
			}
			m, err := loadgen.Merge(rs...)
			if err != nil {
				return err
			}
			return m.WriteJSON(cmd.OutOrStdout())
		},
	}
}

func newSummaryCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "summary FILE.json...",
		Short: "Print one line per run of the given JSON results",
		Args:  usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rs []*loadgen.Result
			var names []string
			for _, a := range args {
				r, err := readResult(a)
				if err != nil {
					return err
				}
				rs = append(rs, r)
				names = append(names, strings.TrimSuffix(filepath.Base(a), ".json"))
			}
			return loadgen.WriteSummary(cmd.OutOrStdout(), names, rs)
		},
	}
}

func newReportCmd() *cobra.Command {
	var out, title string
	cmd := &cobra.Command{
		Use:   "report -o OUT.html FILE.json...",
		Short: "Draw the given JSON results on one self-contained HTML page",
		Args:  usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError{fmt.Errorf("-o OUT.html is required")}
			}
			rs, err := readResults(args)
			if err != nil {
				return err
			}
			return writeFile(out, func(w io.Writer) error { return loadgen.WriteReport(w, title, rs...) })
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "HTML file to write")
	cmd.Flags().StringVar(&title, "title", "", "page title")
	return cmd
}

// readResults reads the results at paths, in order.
func readResults(paths []string) ([]*loadgen.Result, error) {
	var rs []*loadgen.Result
	for _, p := range paths {
		r, err := readResult(p)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func readResult(path string) (*loadgen.Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := loadgen.ReadResult(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// writeFile writes path through fn, atomically (temp file and rename).
func writeFile(path string, fn func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".loadgen-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := fn(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	os.Chmod(tmp.Name(), 0o644)
	return os.Rename(tmp.Name(), path)
}

// usageArgs makes an argument check's failure a usage error (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
