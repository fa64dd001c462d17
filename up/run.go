package up

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cleavefs/cleave/internal/gossip"
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
	if cfg.Token, err = ensureToken(cfg); err != nil {
		return err
	}

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
	if err := gossip.EnsureKeyFile(filepath.Join(cfg.DataDir, GossipKeyFile)); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	if err := ensureCA(cfg); err != nil {
		return err
	}
	if cfg.clientTLS, err = clientTLS(cfg); err != nil {
		return fmt.Errorf("up: %w", err)
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	sup := newSupervisor(runCtx, cfg, topo, log)
	sup.procs.flapped = sup.flapped
	for _, ch := range planChildren(cfg, topo) {
		sup.procs.start(ch)
	}
	stopAll := func() {
		stop()
		sup.procs.wait()
	}
	log.Info("starting", "routers", strings.Join(topo.RouterAddrs(), ","), "clusters", len(topo.Clusters), "replicas", topo.Replicas(),
		"data", cfg.DataDir, "logs", logDir)

	if err := waitReady(ctx, topo, cfg.Token, cfg.clientTLS, cfg.ReadyTimeout); err != nil {
		stopAll()
		if ctx.Err() != nil {
			return nil // interrupted while starting
		}
		return fmt.Errorf("up: %w (see the logs in %s)", err, logDir)
	}
	closeAdmin, err := sup.serveAdmin()
	if err != nil {
		log.Warn("no admin socket: `cleave split` cannot reach this supervisor", "err", err)
		closeAdmin = func() {}
	}
	var loops sync.WaitGroup
	loops.Go(func() { sup.reconcileLoop(runCtx) })
	if cfg.AutoSplit.enabled() {
		loops.Go(func() { sup.autoSplitLoop(runCtx) })
	}
	printBanner(cfg.Stdout, cfg, topo, logDir)
	<-ctx.Done()
	log.Info("stopping")
	closeAdmin()
	stopAll()
	loops.Wait()
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
		assigned, err := topo.assignPorts()
		if err != nil {
			return nil, fmt.Errorf("up: %w", err)
		}
		moved, err := topo.moveBusySidePorts()
		if err != nil {
			return nil, fmt.Errorf("up: %w", err)
		}
		if assigned || moved {
			if err := SaveTopology(cfg.DataDir, topo); err != nil {
				return nil, fmt.Errorf("up: %w", err)
			}
		}
		if cfg.Listen != "" && cfg.Listen != topo.Listen() {
			if len(topo.Routers) > 1 {
				return nil, fmt.Errorf("up: --listen %s differs from the saved %s: the routers' meta group knows its members by address, so a replicated router tier keeps its addresses (start with an empty --data directory to choose new ones)", cfg.Listen, topo.Listen())
			}
			topo.Routers[0].Listen = cfg.Listen
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
		topo, err = NewTopology(orDefault(cfg.Clusters, DefaultClusters), orDefault(cfg.Replicas, DefaultReplicas), orDefault(cfg.Routers, DefaultRouters), listen)
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
	for i, r := range t.Routers {
		if err := portFree(r.Listen); err != nil {
			hint := "choose another with --listen"
			if i > 0 {
				hint = "saved in " + TopologyFile
			}
			return fmt.Errorf("up: router %s address %s is not available (is another cleave running? %s): %w", r.ID, r.Listen, hint, err)
		}
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

// GossipKeyFile is the name of the file, inside the data directory, that
// holds the deployment's gossip key, made on the first start and given to
// every child with --gossip-key-file.
const GossipKeyFile = "gossip.key"

// child is one process under supervision.
type child struct {
	name string   // "router", "c1-n1"
	args []string // arguments after the binary
	env  []string // environment; nil means this process's
	bin  string
	log  string // log file, appended to
	// prepare, if set, runs before each start: it issues the child's
	// certificate if it has none yet.
	prepare func() error
}

func planChildren(cfg Config, t *Topology) []child {
	var out []child
	for _, c := range t.Clusters {
		out = append(out, nodeChildren(cfg, t, c)...)
	}
	return append(out, routerChildren(cfg, t)...)
}

// childEnv is the environment of every child of t: this process's, plus
// CLEAVE_TOKEN if the deployment has one, plus GOMAXPROCS (childProcs)
// unless this process's environment sets it.
func childEnv(cfg Config, t *Topology) []string {
	env := os.Environ()
	if cfg.Token != "" {
		env = append(env, "CLEAVE_TOKEN="+cfg.Token)
	}
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(childProcs(runtime.GOMAXPROCS(0), t.processes())))
	}
	return env
}

// childProcs is the GOMAXPROCS of each of n processes sharing cpus CPUs:
// cpus/n rounded up, at least 1, so that together they have about one P
// per CPU. Every child left at Go's default would get a P per CPU, and on
// a small machine their idle Ps spin looking for work whenever one of
// their goroutines wakes (docs/benchmarks.md measures what that cost).
func childProcs(cpus, n int) int {
	if n <= 0 {
		return max(cpus, 1)
	}
	return max((cpus+n-1)/n, 1)
}

// nodeName is a node's child name and log file stem, "c1-n1".
func nodeName(c ClusterSpec, n NodeSpec) string { return c.ID + "-n" + strconv.FormatUint(n.ID, 10) }

// nodeChildren returns the processes of c's nodes. A bootstrap cluster's
// nodes get its range; a cluster born of a split joins its parent: --join,
// and --peers lists its own nodes and the parent's (docs/split.md). Both
// are ignored once a node's data directory holds its state.
func nodeChildren(cfg Config, t *Topology, c ClusterSpec) []child {
	logDir := filepath.Join(cfg.DataDir, "logs")
	peers := c.Peers()
	if c.Parent != "" {
		if p, ok := t.Cluster(c.Parent); ok {
			for id, addr := range p.Peers() {
				peers[id] = addr
			}
		}
	}
	var out []child
	for _, n := range c.Nodes {
		name := nodeName(c, n)
		args := []string{"node",
			"--id", strconv.FormatUint(n.ID, 10),
			"--cluster", c.ID,
			"--listen", n.Addr,
			"--peer-listen", n.Peer,
			"--peers", FormatPeers(peers),
			"--data", nodeDir(cfg.DataDir, c, n),
		}
		if c.Parent == "" && !n.Join {
			args = append(args, "--range", wire.FormatRange(c.Range))
		} else {
			args = append(args, "--join")
		}
		args = append(args,
			"--report-pid",
			"--gossip", n.Gossip,
			"--gossip-seeds", strings.Join(t.GossipSeeds(), ","),
			"--gossip-key-file", filepath.Join(cfg.DataDir, GossipKeyFile),
			"--log-level", cfg.LogLevel,
			"--log-format", cfg.LogFormat,
			"--http", n.HTTP,
		)
		cn := nodeCertName(n)
		args = append(args, tlsArgs(cfg, cn, false)...)
		out = append(out, child{name: name, bin: cfg.Binary, env: childEnv(cfg, t), log: filepath.Join(logDir, name+".log"), args: args,
			prepare: func() error { return ensureCert(cfg.DataDir, cn, []string{n.Addr, n.Peer}) }})
	}
	return out
}

// nodeDir is a node's data directory, DIR/c1/n1.
func nodeDir(dataDir string, c ClusterSpec, n NodeSpec) string {
	return filepath.Join(dataDir, c.ID, "n"+strconv.FormatUint(n.ID, 10))
}

// routerChildren returns the router processes. Their --cluster flags name
// only the bootstrap clusters, the same on every start: a router with a
// table in its data directory ignores them, and clusters born of splits
// reach the table through the meta group.
func routerChildren(cfg Config, t *Topology) []child {
	logDir := filepath.Join(cfg.DataDir, "logs")
	meta := t.MetaPeers()
	var out []child
	for _, r := range t.Routers {
		args := []string{"router",
			"--id", r.ID,
			"--listen", r.Listen,
			"--data", routerDir(cfg.DataDir, t, r),
			"--report-pid",
			"--gossip", r.Gossip,
			"--gossip-seeds", strings.Join(t.GossipSeeds(), ","),
			"--gossip-key-file", filepath.Join(cfg.DataDir, GossipKeyFile),
			"--anonymous", cfg.Anonymous,
			"--log-level", cfg.LogLevel,
			"--log-format", cfg.LogFormat,
			"--http", r.HTTP,
		}
		if meta != nil {
			args = append(args, "--raft-id", strconv.FormatUint(r.RaftID, 10), "--peer-listen", r.Peer, "--peers", FormatPeers(meta))
		}
		for _, c := range t.Bootstrap() {
			args = append(args, "--cluster", FormatCluster(c.Info()))
		}
		cn := routerCertName(r)
		args = append(args, tlsArgs(cfg, cn, true)...)
		name := "router-" + r.ID
		out = append(out, child{name: name, bin: cfg.Binary, env: childEnv(cfg, t), log: filepath.Join(logDir, name+".log"), args: args,
			prepare: func() error { return ensureCert(cfg.DataDir, cn, []string{r.Listen, r.Peer}) }})
	}
	return out
}

// routerDir is a router's data directory: DIR/router for a single router
// (as format 1 had it), DIR/routers/<id> for each member of a meta group.
func routerDir(dataDir string, t *Topology, r RouterSpec) string {
	if len(t.Routers) == 1 {
		return filepath.Join(dataDir, "router")
	}
	return filepath.Join(dataDir, "routers", r.ID)
}

// waitReady polls the router's STATUS until it answers and every cluster of
// t has a leader, or timeout passes. The error says what was still missing.
func waitReady(ctx context.Context, t *Topology, token string, tc *tls.Config, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	addr := t.Listen()
	missing := "the router " + addr + " did not answer"
	var conn *rpc.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		if conn == nil || conn.Err() != nil {
			dctx, dcancel := context.WithTimeout(ctx, time.Second)
			c, err := rpc.Dial(dctx, addr, rpc.DialConfig{Client: "cleave-up", Token: token, TLS: tc})
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
				missing = "the router " + addr + " did not answer STATUS: " + err.Error()
			case resp.Err() != nil:
				missing = "the router " + addr + " answered STATUS with " + resp.Err().Error()
			case resp.Status == nil:
				missing = "the router " + addr + " sent no status"
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

// leaderless returns "" if every cluster of t (and the routers' meta
// group, if any) has a leader in st, else a message naming what has not.
func leaderless(t *Topology, st *wire.Status) string {
	if len(t.Routers) > 1 {
		led := false
		for _, r := range st.Routers {
			led = led || r.Leader
		}
		if !led {
			return "no leader yet in the routers' meta group"
		}
	}
	leaders := map[string]string{}
	for _, c := range st.Clusters {
		leaders[c.ID] = c.Leader
	}
	var without []string
	for _, c := range t.Clusters {
		if leaders[c.ID] == "" && !c.Pending { // a pending cluster is not in the table yet
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
	if t.Listen() != DefaultListen {
		router = " --router " + t.Listen()
	}
	fmt.Fprintf(w, "cleave is up: router %s, %d clusters x %d nodes, data in %s\n", t.Listen(), len(t.Clusters), t.Replicas(), cfg.DataDir)
	if len(t.Routers) > 1 {
		fmt.Fprintf(w, "routers %s (any of them serves; list them all for failover: --router %s)\n",
			strings.Join(t.RouterAddrs(), ", "), strings.Join(t.RouterAddrs(), ","))
	}
	fmt.Fprintf(w, "logs in %s; stop with Ctrl-C\n", logDir)
	printSidePorts(w, cfg, t)
	fmt.Fprintf(w, "root token in %s (clients without one may %s; split, node and user commands need it):\n  export CLEAVE_TOKEN=$(cat %s)\n",
		filepath.Join(cfg.DataDir, TokenFile), cfg.Anonymous, filepath.Join(cfg.DataDir, TokenFile))
	if cfg.TLS {
		dir := filepath.Join(cfg.DataDir, CertsDir)
		fmt.Fprintf(w, "clients must speak TLS, trusting the CA in %s:\n  export CLEAVE_CACERT=%s\n", dir, filepath.Join(dir, "ca.crt"))
		fmt.Fprintf(w, "  (or --cacert %s; a client certificate: --cert %s --key %s)\n",
			filepath.Join(dir, "ca.crt"), filepath.Join(dir, AdminCert+".crt"), filepath.Join(dir, AdminCert+".key"))
	}
	fmt.Fprintf(w, "try:\n")
	fmt.Fprintf(w, "  %s mkdir%s -p /photos/2024\n", cmd, router)
	fmt.Fprintf(w, "  echo hello | %s put%s /photos/2024/hello.txt\n", cmd, router)
	fmt.Fprintf(w, "  %s get%s /photos/2024/hello.txt\n", cmd, router)
	fmt.Fprintf(w, "  %s ls%s /photos\n", cmd, router)
	fmt.Fprintf(w, "  %s status%s\n", cmd, router)
}

// printSidePorts prints the status page's address and every process's
// HTTP side port (also in DIR/up.json, as "http").
func printSidePorts(w io.Writer, cfg Config, t *Topology) {
	if len(t.Routers) == 0 || t.Routers[0].HTTP == "" {
		return
	}
	fmt.Fprintf(w, "status page: http://%s/\n", t.Routers[0].HTTP)
	fmt.Fprintf(w, "side ports (/metrics, /healthz, /readyz; \"http\" in %s):\n", filepath.Join(cfg.DataDir, TopologyFile))
	var line []string
	for _, r := range t.Routers {
		line = append(line, r.ID+" "+r.HTTP)
	}
	fmt.Fprintf(w, "  %s\n", strings.Join(line, ", "))
	for _, c := range t.Clusters {
		line = line[:0]
		for _, n := range c.Nodes {
			line = append(line, nodeName(c, n)+" "+n.HTTP)
		}
		fmt.Fprintf(w, "  %s\n", strings.Join(line, ", "))
	}
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
