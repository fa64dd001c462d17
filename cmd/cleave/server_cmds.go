package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cleavefs/cleave/cluster"
	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/internal/bytesize"
	"github.com/cleavefs/cleave/internal/certs"
	"github.com/cleavefs/cleave/internal/gossip"
	"github.com/cleavefs/cleave/internal/ops"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/operator"
	"github.com/cleavefs/cleave/router"
	"github.com/cleavefs/cleave/up"
	"github.com/cleavefs/cleave/wire"
)

// addServerCommands adds the process commands: node, router, up and
// operator.
func addServerCommands(root *cobra.Command) {
	node := newNodeCmd(runNode)
	addNodeAdminCommands(node) // node_cmds.go: add, promote, remove, replace
	rt := newRouterCmd(runRouter)
	addRouterAdminCommands(rt) // router_admin_cmds.go: add, promote, remove
	root.AddCommand(node, rt, newUpCmd(up.Run), newOperatorCmd(operator.Run))
}

// nodeOpts are the flags of `cleave node`.
type nodeOpts struct {
	id           uint64
	cluster      string
	listen       string
	advertise    string
	peerListen   string
	peerAdvert   string
	peers        string
	data         string
	rng          string
	reportPID    bool
	join         bool
	rejoinWiped  bool
	rejoinCA     string
	gossip       string
	gossipSeeds  string
	gossipAdvert string
	gossipKeys   string
	logRetention uint64
	logLevel     string
	logFormat    string
	http         string
	pprof        bool
	memoryLimit  string
	minFree      string
	checkEvery   time.Duration
	tls          tlsOpts
}

// newNodeCmd returns `cleave node`, which hands its configuration to run.
func newNodeCmd(run func(context.Context, cluster.Config) error) *cobra.Command {
	var o nodeOpts
	cmd := &cobra.Command{
		Use:   "node --id N --cluster ID --listen HOST:PORT --peer-listen HOST:PORT --peers 1=HOST:PORT/PEER_HOST:PORT,... --data DIR --range START-END",
		Short: "Run one storage node of a cluster",
		Long: `Run one storage node: a member of one cluster's Raft group, with its log and
state in a Pebble directory. It serves until SIGINT or SIGTERM.

Clients (routers, the CLI) reach it on --listen; the other members of its
cluster and the split driver on --peer-listen (raft, snapshots, membership,
split). The two must be different ports. --peers lists every initial
member's peer address, each as ID=CLIENT/PEER (or ID=PEER alone, but then
a follower names the leader by its peer address, which clients cannot use).

--range is two decimal numbers START-END; END 18446744073709551616 is the top
of the ring. It is used only to bootstrap an empty --data directory.
Every flag can also be set as CLEAVE_<FLAG> (e.g. CLEAVE_DATA); flags win.`,
		Args: cobra.NoArgs,
		RunE: serve(o.config, run),
	}
	f := cmd.Flags()
	f.Uint64Var(&o.id, "id", 0, "raft id of this node, unique across the deployment (required)")
	f.StringVar(&o.cluster, "cluster", "", "id of the cluster this node belongs to, e.g. c1 (required)")
	f.StringVar(&o.listen, "listen", "", "HOST:PORT of the client listener: data ops and STATUS (required)")
	f.StringVar(&o.advertise, "advertise", "", "client address told to others (status, gossip); default: the bound --listen address")
	f.StringVar(&o.peerListen, "peer-listen", "", "HOST:PORT of the peer listener: raft, snapshots, membership, split, STATUS; default: this node's peer address in --peers")
	f.StringVar(&o.peerAdvert, "peer-advertise", "", "peer address told to others; default: the bound --peer-listen address")
	f.StringVar(&o.peers, "peers", "", "every initial member as ID=CLIENT_HOST:PORT/PEER_HOST:PORT,..., this node included; raft uses the peer addresses (required)")
	f.StringVar(&o.data, "data", "", "data directory of this node (required)")
	f.StringVar(&o.rng, "range", "", "owned range START-END, used to bootstrap an empty data directory (required)")
	f.BoolVar(&o.reportPID, "report-pid", false, "report this process id in status (set by cleave up)")
	f.BoolVar(&o.join, "join", false, "join an existing cluster with an empty --data (the leader adds this node and sends a snapshot); --peers then lists this node and the current members")
	f.StringVar(&o.rejoinCA, "rejoin-ca", "", "CA directory (ca.crt, ca.key) from which a node that took a new id under --rejoin-wiped issues its peer certificate for that id, over --peer-cert and --peer-key; without it such a node with a peer certificate refuses to start")
	f.BoolVar(&o.rejoinWiped, "rejoin-wiped", false, "if --data is empty but the cluster's leader has replicated its log to this --id (the disk was lost), take a new id and wait to be added as its replacement instead of refusing to start; for deployments whose manager (the operator) then runs `cleave node replace`")
	f.Uint64Var(&o.logRetention, "log-retention", 0, "applied raft entries kept in the log (0: the default, 10000)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "text", "text (key=value) or json (one object per line)")
	f.StringVar(&o.gossip, "gossip", "", "HOST:PORT (UDP and TCP) to join the gossip pool on; empty: no gossip")
	f.StringVar(&o.gossipSeeds, "gossip-seeds", "", "gossip addresses to join through, comma separated (the routers')")
	f.StringVar(&o.gossipAdvert, "gossip-advertise", "", "gossip address told to others (HOST:PORT); default: --gossip, which must then not be 0.0.0.0")
	gossipKeyFlag(f, &o.gossipKeys)
	tokenFlag(f)
	f.StringVar(&o.http, "http", "", "HOST:PORT of the HTTP side port: /metrics, /healthz, /readyz (port 0: any free port, logged); empty: off")
	f.BoolVar(&o.pprof, "pprof", false, "also serve the Go profiles under /debug/pprof/ on the --http side port (unauthenticated: loopback or a private network only)")
	f.DurationVar(&o.checkEvery, "check-interval", cluster.DefaultCheckInterval, "how often the leader starts a cross-replica consistency check (every replica hashes its state at the same index and compares)")
	f.StringVar(&o.memoryLimit, "memory-limit", "224MiB", "memory budget of this process (e.g. 224MiB, 1GiB; 0: none; 1GB is 10^9 bytes, 1GiB 2^30): sets the Go runtime's soft limit to what the Pebble cache and memtables leave, unless GOMEMLIMIT is set, and makes malloc return large blocks")
	f.StringVar(&o.minFree, "min-free-space", "auto", "free-space watermark of the --data volume (e.g. 1GiB): below it the leader refuses writes that add data with NO_SPACE, reads and removes keep working; auto: max(256MiB, 2% of the volume); 0: none")
	o.tls.addFlags(f, false)
	return cmd
}

// config turns the flags into a validated cluster.Config.
func (o *nodeOpts) config(cmd *cobra.Command) (cluster.Config, error) {
	required := []string{"id", "cluster", "listen", "peers", "data", "range"}
	if o.join {
		required = required[:5] // a joining node's range comes with its snapshot
	}
	if err := requireFlags(cmd.Flags(), required...); err != nil {
		return cluster.Config{}, err
	}
	peers, err := parsePeers(o.peers)
	if err != nil {
		return cluster.Config{}, fmt.Errorf("--peers: %w", err)
	}
	if _, ok := peers[o.id]; !ok {
		return cluster.Config{}, fmt.Errorf("--peers: does not list this node (--id %d)", o.id)
	}
	var rng wire.Range
	if o.rng != "" {
		if rng, err = wire.ParseRange(o.rng); err != nil {
			return cluster.Config{}, fmt.Errorf("--range: %w", err)
		}
	}
	logger, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return cluster.Config{}, err
	}
	cfg := cluster.DefaultConfig()
	cfg.NodeID = o.id
	cfg.ClusterID = o.cluster
	cfg.Listen, cfg.Advertise = o.listen, o.advertise
	cfg.PeerListen, cfg.PeerAdvertise = o.peerListen, o.peerAdvert
	cfg.Peers, cfg.Clients = splitPeers(peers)
	if cfg.PeerListen == "" {
		cfg.PeerListen = cfg.Peers[o.id]
	}
	cfg.DataDir = o.data
	cfg.Range = rng
	if o.reportPID {
		cfg.PID = os.Getpid()
	}
	cfg.Token = token(cmd)
	cfg.Logger = logger
	cfg.Join = o.join
	cfg.RejoinWiped, cfg.RejoinCA = o.rejoinWiped, o.rejoinCA
	cfg.LogRetention = o.logRetention
	cfg.HTTP, cfg.Pprof = o.http, o.pprof
	if cfg.MemoryLimit, err = bytesize.Parse(o.memoryLimit); err != nil {
		return cluster.Config{}, fmt.Errorf("--memory-limit: %w", err)
	}
	if cfg.MinFreeBytes, err = parseMinFree(o.minFree); err != nil {
		return cluster.Config{}, fmt.Errorf("--min-free-space: %w", err)
	}
	cfg.Gossip = o.gossip
	cfg.GossipSeeds = splitList(o.gossipSeeds)
	cfg.GossipAdvertise = o.gossipAdvert
	if cfg.GossipKeys, err = readGossipKeys(o.gossipKeys); err != nil {
		return cluster.Config{}, err
	}
	cfg.CheckInterval = o.checkEvery
	// A test-only fault switch, deliberately not a flag: see the field's doc.
	cfg.UnsafeAckBeforeCommit = os.Getenv("CLEAVE_UNSAFE_ACK_BEFORE_COMMIT") == "1"
	if cfg.UnsafeAckBeforeCommit {
		logger.Warn("CLEAVE_UNSAFE_ACK_BEFORE_COMMIT=1: acknowledging writes before they commit; this node is broken on purpose")
	}
	// Another test-only fault, also deliberately not a flag: ID:PATH makes
	// node ID rewrite PATH's stored entry outside the log, once.
	if v := os.Getenv("CLEAVE_UNSAFE_DIVERGE"); v != "" {
		id, p, ok := strings.Cut(v, ":")
		if !ok {
			return cluster.Config{}, fmt.Errorf("CLEAVE_UNSAFE_DIVERGE=%q: want ID:PATH", v)
		}
		if id == strconv.FormatUint(o.id, 10) {
			cfg.UnsafeDivergePath = p
			logger.Warn("CLEAVE_UNSAFE_DIVERGE: this node will rewrite an entry outside the log; it is broken on purpose", "path", p)
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, o.tls.apply(&cfg.PeerTLS, &cfg.TLS)
}

// failCloseWait is how long a failed node may take to close before the
// process exits anyway.
const failCloseWait = 10 * time.Second

// runNode runs a storage node until ctx is done.
func runNode(ctx context.Context, cfg cluster.Config) error {
	n, err := cluster.Start(cfg)
	if err != nil {
		return err
	}
	cfg.Logger.Info("node up", "id", cfg.NodeID, "cluster", cfg.ClusterID, "addr", n.Addr(), "peer_addr", n.PeerAddr(), "data", cfg.DataDir, "pid", os.Getpid())
	select {
	case <-ctx.Done():
	case <-n.Failed():
		// Fail-stop: exit non-zero so the supervisor restarts the node,
		// which replays what was not applied. Closing may hang on a
		// stuck disk; the log makes exiting without it safe.
		closed := make(chan struct{})
		go func() { n.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(failCloseWait):
			cfg.Logger.Error("node did not close after failing; exiting without it", "waited", failCloseWait)
		}
		return fmt.Errorf("node %d stopped: %w", cfg.NodeID, n.FailErr())
	}
	cfg.Logger.Info("node stopping", "id", cfg.NodeID)
	return n.Close()
}

// routerOpts are the flags of `cleave router`.
type routerOpts struct {
	id            string
	listen        string
	advertise     string
	peerListen    string
	peerAdvert    string
	data          string
	clusters      []string
	raftID        uint64
	peers         string
	join          bool
	reportPID     bool
	logLevel      string
	logFormat     string
	http          string
	pprof         bool
	gossip        string
	gossipSeeds   string
	gossipAdvert  string
	gossipKeys    string
	followerReads bool
	anonymous     string
	tls           tlsOpts
}

// newRouterCmd returns `cleave router`, which hands its configuration to run.
func newRouterCmd(run func(context.Context, router.Config) error) *cobra.Command {
	var o routerOpts
	cmd := &cobra.Command{
		Use:   "router --id ID --listen HOST:PORT --data DIR --cluster c1=1@HOST:PORT,2@HOST:PORT,... [--cluster ...]",
		Short: "Run a router in front of the clusters",
		Long: `Run a router: it hashes each path's root directory to a range of the ring and
forwards the request to the leader of the cluster owning that range. It serves
until SIGINT or SIGTERM.

The routing table lives in --data. If there is none yet, one is made from the
--cluster flags: the i-th cluster given owns the i-th of N even ranges.
With --peers, the routers replicate the table among themselves in a Raft
group (the meta group) over their peer listeners (--peer-listen, a port
other than --listen); every router must then get the same --cluster flags.
--peers lists each router as RAFTID=CLIENT_HOST:PORT/PEER_HOST:PORT (or
RAFTID=PEER_HOST:PORT); --cluster lists each node as ID@CLIENT/PEER too.
Every flag can also be set as CLEAVE_<FLAG> (e.g. CLEAVE_DATA); flags win.`,
		Args: cobra.NoArgs,
		RunE: serve(o.config, run),
	}
	f := cmd.Flags()
	f.StringVar(&o.id, "id", "router", "router id, shown in status and logs")
	f.StringVar(&o.listen, "listen", up.DefaultListen, "HOST:PORT to serve clients on: data ops, STATUS, TABLE, admin verbs")
	f.StringVar(&o.advertise, "advertise", "", "client address told to others (status, gossip); default: the bound --listen address")
	f.StringVar(&o.peerListen, "peer-listen", "", "HOST:PORT of the peer listener (with --peers): the meta group's raft, ROUTER_INFO; default: this router's peer address in --peers")
	f.StringVar(&o.peerAdvert, "peer-advertise", "", "peer address told to others; default: the bound --peer-listen address")
	f.StringVar(&o.data, "data", "", "data directory holding the routing table (required)")
	f.StringArrayVar(&o.clusters, "cluster", nil, "a cluster as ID=NODE@CLIENT_HOST:PORT/PEER_HOST:PORT,...; repeat for each, in ring order (used only if --data has no table)")
	f.BoolVar(&o.followerReads, "follower-reads", false, "send linearizable reads to the member hashed from the path (it answers after a ReadIndex round) instead of the leader")
	f.Uint64Var(&o.raftID, "raft-id", 0, "this router's member id in the meta group (with --peers)")
	f.StringVar(&o.peers, "peers", "", "every router of the meta group as RAFTID=CLIENT_HOST:PORT/PEER_HOST:PORT,..., this one included; the meta group uses the peer addresses; empty: a single router with a table file")
	f.BoolVar(&o.join, "join", false, "join a running meta group with an empty --data: 'cleave router add' on a member adds this router, whose table then arrives from the meta leader; --peers lists this router and the current members")
	f.BoolVar(&o.reportPID, "report-pid", false, "report this process id in status (set by cleave up)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "text", "text (key=value) or json (one object per line)")
	f.StringVar(&o.gossip, "gossip", "", "HOST:PORT (UDP and TCP) to join the gossip pool on; empty: no gossip")
	f.StringVar(&o.gossipSeeds, "gossip-seeds", "", "gossip addresses to join through, comma separated (the routers')")
	f.StringVar(&o.gossipAdvert, "gossip-advertise", "", "gossip address told to others (HOST:PORT); default: --gossip, which must then not be 0.0.0.0")
	gossipKeyFlag(f, &o.gossipKeys)
	tokenFlag(f)
	f.StringVar(&o.http, "http", "", "HOST:PORT of the HTTP side port: /metrics, /healthz, /readyz (port 0: any free port, logged); empty: off")
	f.BoolVar(&o.pprof, "pprof", false, "also serve the Go profiles under /debug/pprof/ on the --http side port (unauthenticated: loopback or a private network only)")
	f.StringVar(&o.anonymous, "anonymous", "none", "what a client without a token may do when --token is set: none, read or write (never admin)")
	o.tls.addFlags(f, true)
	return cmd
}

func (o *routerOpts) config(cmd *cobra.Command) (router.Config, error) {
	if err := requireFlags(cmd.Flags(), "data"); err != nil {
		return router.Config{}, err
	}
	logger, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return router.Config{}, err
	}
	cfg := router.DefaultConfig()
	cfg.ID = o.id
	cfg.Listen, cfg.Advertise = o.listen, o.advertise
	cfg.PeerListen, cfg.PeerAdvertise = o.peerListen, o.peerAdvert
	cfg.DataDir = o.data
	cfg.Token = token(cmd)
	if cfg.Anonymous, err = control.ParsePerm(o.anonymous); err != nil || cfg.Anonymous > control.PermWrite {
		return router.Config{}, usagef("--anonymous %q: want none, read or write", o.anonymous)
	}
	if cfg.Token == "" {
		logger.Warn("no --token (or CLEAVE_TOKEN): every client may do everything, admin commands included; set a token on any network you do not fully trust")
	}
	cfg.Logger = logger
	cfg.HTTP, cfg.Pprof = o.http, o.pprof
	cfg.Gossip = o.gossip
	cfg.GossipSeeds = splitList(o.gossipSeeds)
	cfg.GossipAdvertise = o.gossipAdvert
	if cfg.GossipKeys, err = readGossipKeys(o.gossipKeys); err != nil {
		return router.Config{}, err
	}
	if len(o.clusters) > 0 {
		infos, err := parseClusters(o.clusters)
		if err != nil {
			return router.Config{}, fmt.Errorf("--cluster: %w", err)
		}
		cfg.Bootstrap = control.BootstrapTable(infos)
	}
	cfg.FollowerReads = o.followerReads
	// A test-only switch, deliberately not a flag: see the field's doc.
	if phase := os.Getenv("CLEAVE_TEST_SPLIT_HOLD"); phase != "" {
		cfg.TestHoldSplitAt, cfg.TestHoldSplitDuration = wire.SplitPhase(phase), 3*time.Second
		logger.Warn("CLEAVE_TEST_SPLIT_HOLD set: splits pause at a phase; for tests only", "phase", phase)
	}
	if o.peers != "" {
		peers, err := parsePeers(o.peers)
		if err != nil {
			return router.Config{}, fmt.Errorf("--peers: %w", err)
		}
		if _, ok := peers[o.raftID]; !ok {
			return router.Config{}, fmt.Errorf("--peers does not list this router's --raft-id %d", o.raftID)
		}
		cfg.Meta = &control.MetaConfig{RaftID: o.raftID, Peers: peers, Join: o.join}
		if cfg.PeerListen == "" {
			_, cfg.PeerListen = wire.SplitAddrs(peers[o.raftID])
		}
	}
	if o.join && o.peers == "" {
		return router.Config{}, usagef("--join needs --peers: the meta group to join (this router and its current members)")
	}
	if o.reportPID {
		cfg.PID = os.Getpid()
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	if err := o.tls.apply(&cfg.PeerTLS, &cfg.TLS); err != nil {
		return router.Config{}, err
	}
	if o.tls.nodeTLS {
		if cfg.NodeTLS, err = certs.ClientTLS(o.tls.ca, "", ""); err != nil {
			return router.Config{}, fmt.Errorf("--node-tls: %w", err)
		}
	}
	return cfg, nil
}

// runRouter runs a router until ctx is done.
func runRouter(ctx context.Context, cfg router.Config) error {
	r, err := router.New(cfg)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- r.ListenAndServe() }()
	select {
	case err := <-served:
		r.Close()
		return err
	case <-r.Failed():
		if err := r.FailErr(); err != nil {
			r.Close()
			return fmt.Errorf("router %s stopped: %w", cfg.ID, err)
		}
		<-ctx.Done() // closed without a fault: only Close does that
	case <-ctx.Done():
	}
	cfg.Logger.Info("router stopping", "id", cfg.ID)
	r.Close()
	if err := <-served; err != nil && !errors.Is(err, rpc.ErrServerClosed) {
		return err
	}
	return nil
}

// upOpts are the flags of `cleave up`.
type upOpts struct {
	data      string
	listen    string
	clusters  int
	replicas  int
	routers   int
	logLevel  string
	logFormat string

	autoSplitBytes  string
	autoSplitOps    float64
	autoSplitWindow time.Duration
	anonymous       string
	tls             bool
}

// newUpCmd returns `cleave up`, which hands its configuration to run (up.Run).
func newUpCmd(run func(context.Context, up.Config) error) *cobra.Command {
	var o upOpts
	cmd := &cobra.Command{
		Use:   "up [--data DIR] [--listen HOST:PORT] [--clusters N] [--replicas N] [--routers N] [--auto-split-bytes SIZE] [--auto-split-ops N]",
		Short: "Start a whole local deployment: a router and clusters of nodes",
		Long: `Start a local deployment on loopback: a router and --clusters clusters of
--replicas nodes, each node and the router its own process, with data under
--data. It prints the router address and example commands once every cluster
has a leader, restarts processes that die, and stops them all on Ctrl-C.

The first start in a data directory chooses the shape and the ports and saves
them in DIR/up.json; later starts reuse them and find the data again.
'cleave split CLUSTER' run next to it (same --data) has it start a new
cluster's nodes and split CLUSTER; with --auto-split-bytes or
--auto-split-ops it splits a cluster over the threshold by itself, one split
at a time. Clusters born of splits are kept in DIR/up.json.
Every flag can also be set as CLEAVE_<FLAG> (e.g. CLEAVE_DATA); flags win.`,
		Args: cobra.NoArgs,
		RunE: serve(o.config, run),
	}
	f := cmd.Flags()
	f.StringVar(&o.data, "data", "./data", "data directory of the whole deployment")
	tokenFlag(f)
	f.StringVar(&o.listen, "listen", "", "router HOST:PORT (default: the saved address, else "+up.DefaultListen+")")
	f.IntVar(&o.clusters, "clusters", 0, fmt.Sprintf("number of clusters of a new deployment (default %d)", up.DefaultClusters))
	f.IntVar(&o.replicas, "replicas", 0, fmt.Sprintf("nodes per cluster of a new deployment (default %d)", up.DefaultReplicas))
	f.IntVar(&o.routers, "routers", 0, fmt.Sprintf("routers of a new deployment; more than one replicate the routing table (default %d)", up.DefaultRouters))
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error (also passed to every process)")
	f.StringVar(&o.logFormat, "log-format", "text", "text (key=value) or json (one object per line); also passed to every process")
	f.StringVar(&o.autoSplitBytes, "auto-split-bytes", "", "split a cluster holding more file bytes than this, e.g. 64MiB (64MB is 64*10^6 bytes, 64MiB 64*2^20; default: off)")
	f.Float64Var(&o.autoSplitOps, "auto-split-ops", 0, "split a cluster serving more requests per second than this, averaged over --auto-split-window, the busiest first; one whose load a single root carries is reported, not split (default: off)")
	f.DurationVar(&o.autoSplitWindow, "auto-split-window", 30*time.Second, "window of --auto-split-ops, and how long a cluster is left alone after a split")
	f.StringVar(&o.anonymous, "anonymous", "write", "what a client without a token may do: none, read or write (admin commands always need the root token in DATA/token)")
	f.BoolVar(&o.tls, "tls", false, "also put the client listeners of routers and nodes on TLS, with certificates of the development CA in DATA/certs (the peer plane always uses mutual TLS); the banner says how clients connect")
	return cmd
}

func (o *upOpts) config(cmd *cobra.Command) (up.Config, error) {
	logger, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return up.Config{}, err
	}
	if cmd.Flags().Changed("clusters") && o.clusters < 1 {
		return up.Config{}, fmt.Errorf("--clusters %d: want at least 1", o.clusters)
	}
	if cmd.Flags().Changed("routers") && o.routers < 1 {
		return up.Config{}, fmt.Errorf("--routers %d: want at least 1", o.routers)
	}
	if cmd.Flags().Changed("replicas") && o.replicas < 1 {
		return up.Config{}, fmt.Errorf("--replicas %d: want at least 1", o.replicas)
	}
	cfg := up.DefaultConfig()
	cfg.DataDir = o.data
	cfg.Listen = o.listen
	cfg.Clusters = o.clusters
	cfg.Replicas = o.replicas
	cfg.Routers = o.routers
	cfg.LogLevel, cfg.LogFormat = o.logLevel, o.logFormat
	if o.autoSplitBytes != "" {
		n, err := bytesize.Parse(o.autoSplitBytes)
		if err != nil {
			return up.Config{}, fmt.Errorf("--auto-split-bytes: %w", err)
		}
		cfg.AutoSplit.Bytes = uint64(n)
	}
	if o.autoSplitOps < 0 || o.autoSplitWindow <= 0 {
		return up.Config{}, fmt.Errorf("--auto-split-ops %v, --auto-split-window %v: want a rate of at least 0 and a positive window", o.autoSplitOps, o.autoSplitWindow)
	}
	cfg.AutoSplit.Ops = o.autoSplitOps
	cfg.AutoSplit.Window = o.autoSplitWindow
	cfg.Token = token(cmd)
	cfg.Anonymous = o.anonymous
	cfg.TLS = o.tls
	cfg.Stdout = cmd.OutOrStdout()
	cfg.Logger = logger
	return cfg, cfg.Validate()
}

// newLogger returns a logger on stderr at the named level, in the named
// format (text or json).
func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	lg, err := ops.NewLogger(os.Stderr, format, l)
	if err != nil {
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
	return lg, nil
}

// envName is the environment variable of a flag: --report-pid is
// CLEAVE_REPORT_PID.
func envName(flag string) string {
	return "CLEAVE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// tokenFlag adds --token to a server command, which takes none of the
// client commands' flags.
func tokenFlag(f *pflag.FlagSet) {
	f.String("token", "", "auth token of the deployment: clients must present it, and the servers present it to each other (env CLEAVE_TOKEN)")
}

// token is the command's --token flag if given, else CLEAVE_TOKEN.
func token(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("token"); f != nil && f.Changed {
		return f.Value.String()
	}
	return os.Getenv("CLEAVE_TOKEN")
}

// applyEnv sets every flag cmd takes (its own and those it inherits, or only
// its own if it is marked ownFlagsOnly) not
// given on the command line from its CLEAVE_* variable, if that is set, so
// that flags beat the environment beats defaults; an empty variable counts
// as unset. A repeatable flag takes
// space-separated values. The root's PersistentPreRunE calls it for every
// command; --help and --version are not read from the environment.
func applyEnv(cmd *cobra.Command) error {
	fs, taken := cmd.Flags(), cmd.Flags()
	if cmd.Annotations[ownFlagsOnly] != "" {
		taken = cmd.LocalFlags()
	}
	var errs []error
	taken.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" || f.Name == "version" {
			return
		}
		v := os.Getenv(envName(f.Name))
		if v == "" { // unset and empty alike leave the default
			return
		}
		values := []string{v}
		if f.Value.Type() == "stringArray" || f.Value.Type() == "stringSlice" {
			values = strings.Fields(v)
		}
		for _, v := range values {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", envName(f.Name), v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// requireFlags fails naming the first of names given neither as a flag nor
// through its CLEAVE_* variable (call after applyEnv).
func requireFlags(fs *pflag.FlagSet, names ...string) error {
	for _, n := range names {
		if !fs.Changed(n) {
			return fmt.Errorf("--%s is required (or set %s)", n, envName(n))
		}
	}
	return nil
}

// serve returns the RunE of a server command: build the configuration
// (errors are usage errors), then run until SIGINT/SIGTERM.
func serve[C any](config func(*cobra.Command) (C, error), run func(context.Context, C) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		cfg, err := config(cmd)
		if err != nil {
			return usageError{err}
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return run(ctx, cfg)
	}
}

// gossipKeyFlag adds --gossip-key-file to a server command.
func gossipKeyFlag(f *pflag.FlagSet, v *string) {
	f.StringVar(v, "gossip-key-file", "", "file of base64 gossip encryption keys, one a line, the first used to send (cleave up writes DATA/gossip.key); empty: plaintext gossip")
}

// readGossipKeys reads the --gossip-key-file; none for "".
func readGossipKeys(path string) ([][]byte, error) {
	if path == "" {
		return nil, nil
	}
	keys, err := gossip.ReadKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("--gossip-key-file: %w", err)
	}
	return keys, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseMinFree reads --min-free-space as cluster.Config.MinFreeBytes:
// "auto" is 0 (the default rule), "0" is -1 (no watermark).
func parseMinFree(s string) (int64, error) {
	if s == "auto" {
		return 0, nil
	}
	n, err := bytesize.Parse(s)
	if n == 0 && err == nil {
		n = -1
	}
	return n, err
}
