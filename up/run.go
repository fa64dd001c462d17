package up

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

// Run starts the deployment described by cfg (creating DIR/up.json on the
// first start, reusing it later), supervises its processes, prints the
// banner once the router answers and every cluster has a leader, and blocks
// until ctx is done. Then it stops every child (SIGTERM, SIGKILL after
// StopTimeout) and returns nil. It returns an error if the deployment cannot
// start or is not ready within ReadyTimeout; the children are stopped first.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	log := cfg.Logger.With("component", "up")

	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	unlock, err := lockDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()

	topo, err := prepareTopology(cfg, log.Warn)
	if err != nil {
		return err
	}
	if err := checkPortsFree(topo); err != nil {
		return err
	}
	logDir := filepath.Join(cfg.DataDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("up: %w", err)
	}

	children := planChildren(cfg, topo)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, ch := range children {
		wg.Go(func() { supervise(runCtx, ch, cfg.StopTimeout, log) })
	}
	stopAll := func() {
		stop()
		wg.Wait()
	}
	log.Info("starting", "router", topo.Router.Listen, "clusters", len(topo.Clusters), "replicas", topo.Replicas(),
		"data", cfg.DataDir, "logs", logDir)

	if err := waitReady(ctx, topo, cfg.Token, cfg.ReadyTimeout); err != nil {
		stopAll()
		if ctx.Err() != nil {
			return nil // interrupted while starting
		}
		return fmt.Errorf("up: %w (see the logs in %s)", err, logDir)
	}
	printBanner(cfg.Stdout, cfg, topo, logDir)
	<-ctx.Done()
	log.Info("stopping")
	stopAll()
	log.Info("stopped")
	return nil
}

// prepareTopology loads DIR/up.json or chooses and saves a new topology, and
// applies cfg.Listen. warn receives a message if the requested shape differs
// from the saved one.
func prepareTopology(cfg Config, warn func(msg string, args ...any)) (*Topology, error) {
	topo, err := LoadTopology(cfg.DataDir)
	switch {
	case err == nil:
		if msg := topo.Mismatch(cfg.Clusters, cfg.Replicas); msg != "" {
			warn(msg, "data", cfg.DataDir)
		}
		if cfg.Listen != "" && cfg.Listen != topo.Router.Listen {
			topo.Router.Listen = cfg.Listen
			if err := SaveTopology(cfg.DataDir, topo); err != nil {
				return nil, fmt.Errorf("up: %w", err)
			}
		}
		return topo, nil
	case isNotExist(err):
		listen := cfg.Listen
		if listen == "" {
			listen = DefaultListen
		}
		topo, err = NewTopology(orDefault(cfg.Clusters, DefaultClusters), orDefault(cfg.Replicas, DefaultReplicas), listen)
		if err != nil {
			return nil, fmt.Errorf("up: %w", err)
		}
		if err := SaveTopology(cfg.DataDir, topo); err != nil {
			return nil, fmt.Errorf("up: %w", err)
		}
		return topo, nil
	default:
		return nil, fmt.Errorf("up: %w", err)
	}
}

// checkPortsFree fails, naming the address, if the router's or any node's
// address is taken by another process.
func checkPortsFree(t *Topology) error {
	if err := portFree(t.Router.Listen); err != nil {
		return fmt.Errorf("up: router address %s is not available (is another cleave running? choose another with --listen): %w", t.Router.Listen, err)
	}
	for _, c := range t.Clusters {
		for _, n := range c.Nodes {
			if err := portFree(n.Addr); err != nil {
				return fmt.Errorf("up: node %d of cluster %s: address %s (saved in %s) is not available (is another cleave running?): %w",
					n.ID, c.ID, n.Addr, TopologyFile, err)
			}
		}
	}
	return nil
}

func portFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

// child is one process under supervision.
type child struct {
	name string   // "router", "c1-n1"
	args []string // arguments after the binary
	env  []string // environment; nil means this process's
	bin  string
	log  string // log file, appended to
}

func planChildren(cfg Config, t *Topology) []child {
	logDir := filepath.Join(cfg.DataDir, "logs")
	var env []string
	if cfg.Token != "" {
		env = append(os.Environ(), "CLEAVE_TOKEN="+cfg.Token)
	}
	var out []child
	for _, c := range t.Clusters {
		peers := FormatPeers(c.Peers())
		for _, n := range c.Nodes {
			name := c.ID + "-n" + strconv.FormatUint(n.ID, 10)
			out = append(out, child{
				name: name, bin: cfg.Binary, env: env, log: filepath.Join(logDir, name+".log"),
				args: []string{"node",
					"--id", strconv.FormatUint(n.ID, 10),
					"--cluster", c.ID,
					"--listen", n.Addr,
					"--peers", peers,
					"--data", filepath.Join(cfg.DataDir, c.ID, "n"+strconv.FormatUint(n.ID, 10)),
					"--range", FormatRange(c.Range),
					"--report-pid",
					"--log-level", cfg.LogLevel,
				},
			})
		}
	}
	args := []string{"router",
		"--id", t.Router.ID,
		"--listen", t.Router.Listen,
		"--data", filepath.Join(cfg.DataDir, "router"),
		"--log-level", cfg.LogLevel,
	}
	for _, c := range t.Clusters {
		args = append(args, "--cluster", FormatCluster(c.Info()))
	}
	out = append(out, child{name: "router", bin: cfg.Binary, env: env, log: filepath.Join(logDir, "router.log"), args: args})
	return out
}

// waitReady polls the router's STATUS until it answers and every cluster of
// t has a leader, or timeout passes. The error says what was still missing.
func waitReady(ctx context.Context, t *Topology, token string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	missing := "the router " + t.Router.Listen + " did not answer"
	var conn *rpc.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		if conn == nil || conn.Err() != nil {
			dctx, dcancel := context.WithTimeout(ctx, time.Second)
			c, err := rpc.Dial(dctx, t.Router.Listen, rpc.DialConfig{Client: "cleave-up", Token: token})
			dcancel()
			if err == nil {
				conn = c
			}
		}
		if conn != nil && conn.Err() == nil {
			cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err := conn.Call(cctx, &wire.Request{Op: wire.OpStatus})
			ccancel()
			switch {
			case err != nil:
				missing = "the router " + t.Router.Listen + " did not answer STATUS: " + err.Error()
			case resp.Err() != nil:
				missing = "the router " + t.Router.Listen + " answered STATUS with " + resp.Err().Error()
			case resp.Status == nil:
				missing = "the router " + t.Router.Listen + " sent no status"
			default:
				missing = leaderless(t, resp.Status)
				if missing == "" {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %v: %s", timeout, missing)
		case <-tick.C:
		}
	}
}

// leaderless returns "" if every cluster of t has a leader in st, else a
// message naming those that do not.
func leaderless(t *Topology, st *wire.Status) string {
	leaders := map[string]string{}
	for _, c := range st.Clusters {
		leaders[c.ID] = c.Leader
	}
	var without []string
	for _, c := range t.Clusters {
		if leaders[c.ID] == "" {
			without = append(without, c.ID)
		}
	}
	if len(without) == 0 {
		return ""
	}
	return "no leader yet in cluster " + strings.Join(without, ", ")
}

// printBanner tells the user where the deployment is and how to use it.
func printBanner(w io.Writer, cfg Config, t *Topology, logDir string) {
	cmd := cfg.Command
	router := ""
	if t.Router.Listen != DefaultListen {
		router = " --router " + t.Router.Listen
	}
	fmt.Fprintf(w, "cleave is up: router %s, %d clusters x %d nodes, data in %s\n", t.Router.Listen, len(t.Clusters), t.Replicas(), cfg.DataDir)
	fmt.Fprintf(w, "logs in %s; stop with Ctrl-C\n", logDir)
	fmt.Fprintf(w, "try:\n")
	fmt.Fprintf(w, "  %s mkdir%s -p /photos/2024\n", cmd, router)
	fmt.Fprintf(w, "  echo hello | %s put%s /photos/2024/hello.txt\n", cmd, router)
	fmt.Fprintf(w, "  %s get%s /photos/2024/hello.txt\n", cmd, router)
	fmt.Fprintf(w, "  %s ls%s /photos\n", cmd, router)
	fmt.Fprintf(w, "  %s status%s\n", cmd, router)
}

// guessCommand returns how a user in another terminal should spell the
// binary: "cleave" if that is bin on $PATH, else the path this process was
// started with (relative to the working directory if it was given so).
func guessCommand(bin string) string {
	same := func(a, b string) bool {
		fa, err1 := os.Stat(a)
		fb, err2 := os.Stat(b)
		return err1 == nil && err2 == nil && os.SameFile(fa, fb)
	}
	if p, err := exec.LookPath("cleave"); err == nil && same(p, bin) {
		return "cleave"
	}
	if len(os.Args) > 0 && strings.ContainsRune(os.Args[0], filepath.Separator) && same(os.Args[0], bin) {
		arg := os.Args[0]
		if !filepath.IsAbs(arg) && !strings.HasPrefix(arg, "."+string(filepath.Separator)) && !strings.HasPrefix(arg, "..") {
			arg = "." + string(filepath.Separator) + arg
		}
		return shellQuote(arg)
	}
	return shellQuote(bin)
}

// shellQuote quotes s for a POSIX shell if it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
