package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cleavefs/cleave/fsm"
	"github.com/cleavefs/cleave/internal/certs"
	"github.com/cleavefs/cleave/internal/durable"
	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/internal/gossip"
	"github.com/cleavefs/cleave/internal/ops"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/replica"
	"github.com/cleavefs/cleave/wire"
)

// Config configures a storage node.
type Config struct {
	NodeID    uint64            // raft id, unique across the deployment, nonzero
	ClusterID string            // cluster this node was started in, e.g. "c1"
	Listen    string            // host:port of the client listener (data ops from routers and clients, STATUS)
	Peers     map[uint64]string // raft id -> peer address of every initial member, including this node
	DataDir   string            // Pebble directory of this node
	Range     wire.Range        // owned range; used only to bootstrap an empty DataDir
	PID       int               // reported in status: os.Getpid() under `cleave up`, else 0
	Token     string            // if set, clients and peers must present it in HELLO
	MaxFrame  int               // largest frame accepted; default wire.DefaultMaxFrame
	Logger    *slog.Logger      // default slog.Default()

	// Advertise is the client address this node tells others (status,
	// gossip); default: the address the client listener is bound to.
	Advertise string
	// PeerListen is the host:port of the peer listener (raft, snapshots,
	// chunk fetches, membership, split fork and cleanup, STATUS); default:
	// this node's address in Peers. It must differ from Listen.
	PeerListen string
	// PeerAdvertise is the peer address this node tells others; default:
	// the address the peer listener is bound to.
	PeerAdvertise string
	// Clients gives the client address of members in Peers, for the
	// NOT_LEADER answers that name the leader to routers and clients
	// before replicated state records it; a member missing here is named
	// by its peer address. Default none.
	Clients map[uint64]string

	TickInterval  time.Duration // raft tick; default 100ms
	ElectionTicks int           // election timeout in ticks; default 5 (0.5–1 s)
	// IdleTickInterval is the raft tick once the cluster has been quiet
	// for a few election timeouts (replica.Config.IdleTickInterval), so an
	// idle node wakes ten times less often; a client request, a peer's
	// message or gossip reporting a member dead brings TickInterval back.
	// Default replica.IdleTickFactor (10) × TickInterval; negative:
	// never idle.
	IdleTickInterval time.Duration

	// ChunkSize is the block size of files this node creates as leader and
	// the largest CHUNK it accepts; default 1 MiB, between 4 KiB and 4 MiB,
	// and at most MaxFrame minus 64 KiB. Files keep the block size they
	// were created with, so it can change between restarts.
	ChunkSize int64
	// SessionTTL is how long an idle client session is remembered for
	// exactly-once retries, in the leader's entry time; default 10 minutes.
	SessionTTL time.Duration
	// ChunkTTL is how long an uploaded chunk waits for the COMMIT that
	// references it before it is collected; default 1 hour.
	ChunkTTL time.Duration
	// InlineSize is the largest file a PUT through this node as leader
	// keeps in its entry rather than in a chunk (fsm.Command.InlineSize);
	// default 2 KiB, at most 4 KiB; negative: none.
	InlineSize int64
	// ScrubRate is the speed, in bytes per second, at which the background
	// scrubber re-reads and verifies stored chunks, each counted as its
	// bytes plus 64 KiB (a chunk's fixed cost); 0 disables it.
	// DefaultConfig sets 8 MiB/s.
	ScrubRate int64

	// Join starts a node with an empty DataDir that joins an existing
	// cluster instead of bootstrapping one: it writes no initial range and
	// no membership, and waits for the leader (which added it with
	// AddLearner) to send it a snapshot. Peers lists this node and the
	// cluster's current members: only their addresses are used, to answer
	// the leader before the snapshot brings the replicated member list.
	// Ignored once the DataDir holds raft state. See membership.go.
	Join bool
	// RejoinWiped makes a node that finds its data directory empty under a
	// raft id its cluster still counts on (a lost volume) take a new id and
	// join as a replacement instead of refusing to start (identity.go).
	// For deployments whose manager runs the replacement (the operator).
	RejoinWiped bool
	// RejoinCA is a CA directory (ca.crt, ca.key) from which a node with
	// PeerTLS that runs under a new id (RejoinWiped) issues itself a peer
	// certificate naming that id, into PeerTLS's files: peers take RAFT
	// frames only from the id a certificate names. Without it such a node
	// refuses to start.
	RejoinCA string
	// replaces is the id this node took over from (identity.go); 0 if none.
	replaces uint64
	// LogRetention is how many applied raft entries the log keeps; a
	// follower further behind is brought back by snapshot. 0 means the
	// replica default (10000).
	LogRetention uint64

	// UnsafeAckBeforeCommit is a test-only fault: the leader answers a write
	// OK as soon as it is proposed, before it is committed or applied. It
	// breaks linearizability on purpose, so tests can show the history
	// checker catches a store that acknowledges too early. Never set it
	// anywhere else.
	UnsafeAckBeforeCommit bool

	// CheckInterval is how often the leader proposes a consistency check
	// entry, at whose index every replica hashes its state and compares
	// with its peers (consistency.go); it is also how often a node asks its
	// peers for their results. Default DefaultCheckInterval (1 minute).
	CheckInterval time.Duration
	// UnsafeDivergePath is a test-only fault: once the file or directory at
	// this path exists, the node rewrites its stored entry locally, outside
	// the log, so that its state differs from its peers' and the
	// consistency check must catch it. Never set it anywhere else.
	UnsafeDivergePath string

	// CacheSize is the Pebble block cache, in bytes; 0: the 64 MiB of
	// fsm.PebbleOptions. MemTableSize is one Pebble memtable; 0: 4 MiB (Pebble's
	// default; two may be full at once). Both live outside the Go heap
	// (Pebble allocates them with C malloc in cgo builds).
	CacheSize    int64
	MemTableSize uint64
	// MemoryLimit is the memory budget of the whole process, in bytes; 0
	// (the default) leaves the Go runtime and malloc as they are. Set, the
	// node (memory.go) gives the Go runtime a soft limit of MemoryLimit
	// minus the Pebble cache, two memtables and 32 MiB for code and C
	// allocations, unless GOMEMLIMIT is set, and makes glibc malloc return
	// large blocks to the OS. Both are process-wide, so only the process
	// that runs one node sets it: `cleave node` does (--memory-limit,
	// default 224 MiB), in-process test deployments do not.
	MemoryLimit int64

	// MinFreeBytes is the free-space watermark of the volume holding
	// DataDir: below it the leader refuses writes that add data with
	// NO_SPACE, while reads and removes keep working (space.go). 0: the
	// default, max(256 MiB, 2% of the volume); negative: no watermark.
	MinFreeBytes int64

	// HTTP is the HOST:PORT of the HTTP side port (/metrics, /healthz,
	// /readyz; package internal/ops); port 0 picks a free one. It has no
	// auth: bind it to loopback or a private network. Default "" (off).
	HTTP string
	// Pprof adds the Go profiles (/debug/pprof/) to the side port.
	// Default false.
	Pprof bool

	// Gossip is the HOST:PORT (UDP and TCP) this node joins the gossip pool
	// on; "" leaves gossip off. GossipSeeds are members to join through
	// (the routers' gossip addresses); none starts a new pool.
	Gossip      string
	GossipSeeds []string
	// GossipAdvertise is the HOST:PORT other members reach this node's
	// gossip at; default Gossip (which must then not be a wildcard).
	GossipAdvertise string
	// GossipKeys encrypt and authenticate gossip (internal/gossip
	// Config.Keys; the first is primary). Default none: plaintext gossip.
	GossipKeys [][]byte

	// PeerTLS, if set, puts the peer plane on mutual TLS 1.3: the peer
	// listener requires a client certificate signed by its CA and lets
	// each certificate's identity send only what peerRule allows, and
	// every dial to a peer presents this node's certificate. Default nil:
	// a plaintext peer plane, for in-process tests and trusted networks.
	PeerTLS *certs.Reloader
	// TLS, if set, serves the client listener over TLS 1.3 with its
	// certificate; a client certificate, if presented, must be signed by
	// its CA. Default nil: a plaintext client listener.
	TLS *certs.Reloader
}

// DefaultConfig returns a Config with every default filled in; the caller
// still sets identity (NodeID, ClusterID), addresses (Listen, Peers) and
// the data directory. Fields not named here default to zero: off or none.
func DefaultConfig() Config {
	rc := replica.DefaultConfig()
	return Config{
		MaxFrame:      wire.DefaultMaxFrame,                 // 8 MiB frames
		TickInterval:  rc.TickInterval,                      // 100 ms raft ticks
		ElectionTicks: rc.ElectionTicks,                     // elections after 0.5–1 s
		ChunkSize:     fsm.DefaultChunkSize,                 // 1 MiB blocks
		SessionTTL:    time.Duration(fsm.DefaultSessionTTL), // sessions idle for 10 minutes expire
		ChunkTTL:      time.Duration(fsm.DefaultChunkTTL),   // an uncommitted upload waits 1 hour
		InlineSize:    fsm.DefaultInlineSize,                // files up to 2 KiB live in their entry
		ScrubRate:     8 << 20,                              // chunks re-verified at 8 MiB/s
		CheckInterval: DefaultCheckInterval,                 // a consistency check every minute
	}
}

// withDefaults returns c with its zero optional fields set from
// DefaultConfig — MaxFrame, TickInterval, ElectionTicks, ChunkSize,
// SessionTTL and ChunkTTL (also when negative), InlineSize, and
// CheckInterval — Logger
// set to slog.Default() and PeerListen to this node's address in Peers. ScrubRate
// keeps what the caller set: zero turns the scrubber off. This is Start's
// first step.
func (c Config) withDefaults() Config {
	def := DefaultConfig()
	if c.MaxFrame <= 0 {
		c.MaxFrame = def.MaxFrame
	}
	if c.TickInterval <= 0 {
		c.TickInterval = def.TickInterval
	}
	if c.ElectionTicks <= 0 {
		c.ElectionTicks = def.ElectionTicks
	}
	if c.IdleTickInterval == 0 {
		c.IdleTickInterval = replica.IdleTickFactor * c.TickInterval
	}
	if c.ChunkSize <= 0 {
		c.ChunkSize = def.ChunkSize
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = def.SessionTTL
	}
	if c.ChunkTTL <= 0 {
		c.ChunkTTL = def.ChunkTTL
	}
	if c.InlineSize == 0 {
		c.InlineSize = def.InlineSize
	}
	if c.CheckInterval == 0 { // negative: Validate says so
		c.CheckInterval = def.CheckInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.PeerListen == "" {
		c.PeerListen = c.Peers[c.NodeID]
	}
	return c
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	switch {
	case c.NodeID == 0:
		return errors.New("cluster: node id must be nonzero")
	case c.ClusterID == "":
		return errors.New("cluster: cluster id is empty")
	case c.Listen == "":
		return errors.New("cluster: listen address is empty")
	case c.PeerListen == "":
		return errors.New("cluster: peer listen address is empty (and Peers has none for this node)")
	case c.PeerListen == wire.FixedPort(c.Listen):
		return fmt.Errorf("cluster: peer listen address %s is the client listen address; the two planes need separate ports", c.Listen)
	case c.DataDir == "":
		return errors.New("cluster: data directory is empty")
	case len(c.Peers) == 0:
		return errors.New("cluster: no peers (list every member, including this node)")
	}
	if c.ChunkSize != 0 && (c.ChunkSize < fsm.MinChunkSize || c.ChunkSize > fsm.MaxChunkSize) {
		return fmt.Errorf("cluster: chunk size %d is outside [%d, %d]", c.ChunkSize, fsm.MinChunkSize, fsm.MaxChunkSize)
	}
	if c.MaxFrame > 0 && c.ChunkSize > int64(c.MaxFrame)-frameSlack {
		return fmt.Errorf("cluster: chunk size %d does not fit a frame of %d bytes (with %d to spare)", c.ChunkSize, c.MaxFrame, frameSlack)
	}
	if c.InlineSize > fsm.MaxInlineSize {
		return fmt.Errorf("cluster: inline size %d is above %d", c.InlineSize, fsm.MaxInlineSize)
	}
	if c.CheckInterval < 0 {
		return fmt.Errorf("cluster: check interval %v must not be negative", c.CheckInterval)
	}
	if c.UnsafeDivergePath != "" {
		if err := fspath.Validate(c.UnsafeDivergePath); err != nil || c.UnsafeDivergePath == "/" {
			return fmt.Errorf("cluster: diverge path %q is not a file or directory path", c.UnsafeDivergePath)
		}
	}
	if c.CacheSize < 0 || c.MemoryLimit < 0 {
		return fmt.Errorf("cluster: cache size %d and memory limit %d must not be negative", c.CacheSize, c.MemoryLimit)
	}
	if c.SessionTTL < 0 || c.ChunkTTL < 0 || c.ScrubRate < 0 {
		return fmt.Errorf("cluster: session TTL %v, chunk TTL %v and scrub rate %d must not be negative", c.SessionTTL, c.ChunkTTL, c.ScrubRate)
	}
	if _, ok := c.Peers[c.NodeID]; !ok {
		return fmt.Errorf("cluster: peers do not include this node's id %d", c.NodeID)
	}
	for id, addr := range c.Peers {
		if id == 0 {
			return errors.New("cluster: peer id 0 is not allowed")
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("cluster: peer %d address %q: %v", id, addr, err)
		}
	}
	for id, addr := range c.Clients {
		if _, ok := c.Peers[id]; !ok {
			return fmt.Errorf("cluster: client address %s of node %d, which is not in peers", addr, id)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("cluster: client address %q of node %d: %v", addr, id, err)
		}
	}
	return nil
}

// frameSlack is the room a response frame keeps besides file data (the
// stat, message and msgpack framing).
const frameSlack = 64 << 10

// Node is a running storage node. Safe for concurrent use.
type Node struct {
	cfg Config
	log *slog.Logger
	db  *pebble.DB
	fsm *fsm.FSM
	rep *replicaRef // replaced once if the node leaves at a split (split_node.go)

	closeOnce sync.Once
	closeErr  error
	split     *splitState
	tr        *replica.WireTransport
	pool      *rpc.Pool
	srv       *rpc.Server   // the client plane
	peerSrv   *rpc.Server   // the peer plane
	ops       *ops.Server   // the HTTP side port, nil when Config.HTTP is ""
	gossip    *gossip.Pool  // nil when Config.Gossip is ""
	ln        net.Listener  // client listener
	peerLn    net.Listener  // peer listener
	addr      string        // advertised client address
	peerAddr  string        // advertised peer address
	dropped   atomic.Uint64 // one-way frames on the wrong plane
	// peerRefused counts one-way frames a peer certificate may not send
	peerRefused atomic.Uint64

	serveErr chan error
	clock    *entryClock   // stamps the entries this node proposes (clock.go)
	failc    chan struct{} // closed when the replica stops on a fatal error
	failErr  error         // set before failc is closed
	failOnce sync.Once
	scrub    *scrubber
	compact  *compactor  // compacts the state after a split's cleanup (compact.go)
	usage    usageCache  // Files, Bytes and Ops of the status (usage.go)
	repairs  repairStats // chunks rewritten from another member (repair.go)
	paths    pathLocks   // WRITE and APPEND of one path, one at a time
	check    *checker    // the cross-replica consistency check (consistency.go)
	space    *spaceGuard // the free-space watermark (space.go)
	health   *fsm.StorageHealth
}

// Start opens the node's database (bootstrapping it if empty), starts its
// Raft replica and serves the wire protocol on cfg.Listen. Zero optional
// fields of cfg take their defaults (Config.withDefaults); then cfg must
// Validate. Start runs in named steps: defaults, open, replicate, serve.
func Start(cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	cfg, err := cfg.withIdentity()
	if err != nil {
		return nil, err
	}
	if err := cfg.peerCertForID(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n, err := open(cfg)
	if err != nil {
		return nil, err
	}
	if err := n.replicate(); err != nil {
		n.closeParts()
		return nil, err
	}
	if err := n.serve(); err != nil {
		n.closeParts()
		return nil, err
	}
	n.log.Info("node serving", "addr", n.Addr(), "peer_addr", n.PeerAddr(), "peers", len(cfg.Peers))
	return n, nil
}

// open opens the node's local resources: its database, with the state
// machine over it (bootstrapped with cfg.Range if this is a new node), and
// its listener. On error it leaves nothing open.
func open(cfg Config) (*Node, error) {
	log := cfg.Logger.With("component", "node", "node", cfg.NodeID, "cluster", cfg.ClusterID)
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: data dir: %w", err)
	}
	po := fsm.PebbleOptions(replica.PebbleLogger(log))
	if cfg.CacheSize > 0 {
		po.CacheSize = cfg.CacheSize
	}
	if cfg.MemTableSize > 0 {
		po.MemTableSize = cfg.MemTableSize
	}
	setMemoryLimit(cfg, po, log)
	health := fsm.NewStorageHealth(log)
	health.Listen(po)
	db, err := pebble.Open(filepath.Join(cfg.DataDir, "db"), po)
	if err != nil {
		return nil, fmt.Errorf("cluster: open %s: %w", cfg.DataDir, err)
	}
	f, err := fsm.NewFSM(db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n := &Node{cfg: cfg, log: log, db: db, fsm: f, serveErr: make(chan error, 2), failc: make(chan struct{})}
	n.clock = newEntryClock(f.Clock, cfg.SessionTTL)
	n.compact = newCompactor(f, func() uint64 {
		if n.rep == nil {
			return 0
		}
		return n.rep.Applied()
	}, log)
	n.space, n.health = newSpaceGuard(cfg.DataDir, cfg.MinFreeBytes, log), health
	if err := n.bootstrap(); err != nil {
		n.closeParts()
		return nil, err
	}
	if n.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		n.closeParts()
		return nil, fmt.Errorf("cluster: listen %s: %w", cfg.Listen, err)
	}
	if n.peerLn, err = net.Listen("tcp", cfg.PeerListen); err != nil {
		n.closeParts()
		return nil, fmt.Errorf("cluster: peer listen %s: %w", cfg.PeerListen, err)
	}
	n.addr, n.peerAddr = rpc.Advertise(cfg.Advertise, n.ln), rpc.Advertise(cfg.PeerAdvertise, n.peerLn)
	return n, nil
}

// bootstrap writes the initial owned range of a new node: every member of
// a new cluster writes the same initial state. A node that owns a range
// already, or joins an existing cluster, writes nothing. An empty node
// (bootstrapping or joining) whose id a leader has replicated entries to
// lost its disk: bootstrap refuses it before writing anything (wiped.go).
func (n *Node) bootstrap() error {
	if _, err := n.fsm.Range(); err == nil {
		return nil
	}
	if err := n.checkNotWiped(); err != nil {
		var wiped *WipedMemberError
		if !n.cfg.RejoinWiped || !errors.As(err, &wiped) {
			return err
		}
		if n.cfg.PeerTLS != nil && n.cfg.RejoinCA == "" {
			// Peers take RAFT frames only from the id its certificate names.
			return fmt.Errorf("%w; it does not rejoin under a new id by itself, because its peer certificate names raft id %d and no CA to issue another was given", err, n.cfg.NodeID)
		}
		if err := n.takeNewIdentity(wiped); err != nil {
			return err
		}
	}
	if n.cfg.Join {
		return nil
	}
	b := n.db.NewIndexedBatch()
	if err := n.fsm.Bootstrap(b, n.cfg.Range); err != nil {
		return fmt.Errorf("cluster: bootstrap: %w", err)
	}
	if err := durable.Commit(n.db, b); err != nil {
		return fmt.Errorf("cluster: bootstrap: %w", err)
	}
	n.log.Info("bootstrapped new node", "range", n.cfg.Range.String())
	return nil
}

// replicate opens the node's Raft replica over the database, first
// finishing a split's fork if the node left its group at one before it
// restarted.
func (n *Node) replicate() error {
	cfg := n.cfg
	n.pool = rpc.NewPool(n.peerDialConfig()) // the peer plane only: raft, snapshots, chunk fetches, checks
	n.tr = replica.NewWireTransport(cfg.NodeID, n.memberRecords(), n.pool, n.log)
	n.split = newSplitState(n)
	n.split.rc = n.replicaConfig()
	if fork, err := n.split.load(); err != nil {
		return fmt.Errorf("cluster: %w", err)
	} else if fork { // left the source at a split before restarting as the new cluster
		if err := n.split.rewrite(); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	n.check = newChecker(n)
	rep, err := replica.Open(n.split.rc, n.db, splitGate{n.split}, n.tr)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	n.rep = newReplicaRef(rep)
	n.split.start()
	go n.watchReplica()
	go n.watchStorage(n.split.stopc)
	n.tr.SetReplica(rep)
	return nil
}

// replicaConfig is the configuration of the node's replica.
func (n *Node) replicaConfig() replica.Config {
	cfg := n.cfg
	ids := make([]uint64, 0, len(cfg.Peers))
	for id := range cfg.Peers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	rc := replica.DefaultConfig()
	rc.ID = cfg.NodeID
	rc.Group = cfg.ClusterID
	rc.Peers = ids
	rc.TickInterval = cfg.TickInterval
	rc.ElectionTicks = cfg.ElectionTicks
	rc.IdleTickInterval = max(cfg.IdleTickInterval, 0)
	rc.Logger = n.log
	rc.PeerAddrs = n.memberRecords()
	rc.Join = cfg.Join
	rc.LogRetention = cfg.LogRetention
	rc.SnapshotDir = filepath.Join(cfg.DataDir, "snap")
	rc.LogDir = filepath.Join(cfg.DataDir, "raftlog")
	return rc
}

// serve starts what answers the outside: the HTTP side port with the
// metrics, the consistency check, the wire protocol server on the
// listener, the scrubber and gossip.
func (n *Node) serve() error {
	cfg := n.cfg
	scfg := rpc.ServerConfig{
		Name: "node", ID: strconv.FormatUint(cfg.NodeID, 10), Token: cfg.Token,
		MaxFrame: cfg.MaxFrame, Logger: n.log,
	}
	if cfg.HTTP != "" {
		reg := prometheus.NewRegistry()
		scfg.Observe = ops.NewRequestMetrics(reg, "node").Observe
		registerNodeMetrics(reg, n.rep.get())
		registerCheckMetrics(reg, n.check)
		registerStorageMetrics(reg, n.space, n.health)
		registerStatusMetrics(reg, n)
		var err error
		if n.ops, err = ops.Start(ops.Config{Addr: cfg.HTTP, Registry: reg, Ready: n.ready, Logger: n.log, Pprof: cfg.Pprof}); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	n.check.start()
	ccfg := scfg
	if cfg.TLS != nil {
		ccfg.TLS = cfg.TLS.ServerConfig(tls.VerifyClientCertIfGiven)
	}
	n.srv = rpc.NewServer(ccfg, rpc.PlaneHandler(wire.ClientPlane, wire.NodePlane, &n.dropped, n.split))
	go func() { n.serveErr <- n.srv.Serve(n.ln) }()
	n.servePeers(scfg)
	if cfg.ScrubRate > 0 {
		n.scrub = startScrubber(n.fsm, cfg.ScrubRate, n.repairChunk, n.log)
	}
	if err := n.startGossip(); err != nil {
		n.srv.Close()
		n.peerSrv.Close()
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// servePeers serves the peer plane on the peer listener, with the client
// server's settings: the one place the peer server is built. With
// PeerTLS, it requires a peer certificate and checks what its identity
// sends (peerauth.go).
func (n *Node) servePeers(scfg rpc.ServerConfig) {
	var h rpc.Handler = rpc.HandlerFunc(n.split.handle)
	if n.cfg.PeerTLS != nil {
		scfg.TLS = n.cfg.PeerTLS.ServerConfig(tls.RequireAndVerifyClientCert)
		h = rpc.CheckPeers(certs.Verified, peerRule, &n.peerRefused, h)
	}
	n.peerSrv = rpc.NewServer(scfg, rpc.PlaneHandler(wire.PeerPlane, wire.NodePlane, nil, h))
	go func() { n.serveErr <- n.peerSrv.Serve(n.peerLn) }()
}

// Failed is closed when the node can no longer serve correctly: its
// replica stopped on a fatal error (a storage write failed, or an entry
// could not be applied here as on its peers). FailErr then says why. The
// process should exit non-zero so that its supervisor restarts it: a
// restart replays the unapplied entries from the log.
func (n *Node) Failed() <-chan struct{} { return n.failc }

// FailErr returns the error that closed Failed, or nil.
func (n *Node) FailErr() error {
	select {
	case <-n.failc:
		return n.failErr
	default:
		return nil
	}
}

// watchReplica closes failc when the node's replica stops on a fatal
// error. A replica closed without one (at a split's fork, or by Close) is
// followed by the one that replaces it, if any.
func (n *Node) watchReplica() {
	for {
		rep := n.rep.get()
		<-rep.Done()
		if err := rep.Err(); err != nil {
			n.fail(fmt.Errorf("replica failed: %w", err))
			return
		}
		select {
		case <-n.split.swapped(rep):
		case <-n.split.stopc:
			return
		}
	}
}

// fail closes Failed with err, once: the first fatal error wins.
func (n *Node) fail(err error) {
	n.failOnce.Do(func() {
		n.log.Error("the node stops serving", "err", err)
		n.failErr = err
		close(n.failc)
	})
}

// Addr returns the node's advertised client address.
func (n *Node) Addr() string { return n.addr }

// PeerAddr returns the node's advertised peer address.
func (n *Node) PeerAddr() string { return n.peerAddr }

// Close stops serving, stops the replica and closes the database.
// Later calls do nothing and return the first call's result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		if n.srv != nil {
			n.srv.Close()
		}
		if n.peerSrv != nil {
			n.peerSrv.Close()
		}
		n.closeErr = n.closeParts()
	})
	return n.closeErr
}

func (n *Node) closeParts() error {
	if n.split != nil {
		n.split.stop()
	}
	if n.gossip != nil {
		n.gossip.Close()
	}
	if n.ops != nil {
		n.ops.Close()
	}
	if n.scrub != nil {
		n.scrub.stop()
	}
	if n.rep != nil {
		n.rep.Close()
	}
	if n.check != nil {
		n.check.stop() // after the replica: no Apply takes a snapshot any more
	}
	if n.compact != nil {
		n.compact.stop() // after the replica: no Apply requests one any more
	}
	if n.tr != nil {
		n.tr.Close()
	}
	if n.pool != nil {
		n.pool.Close()
	}
	if n.ln != nil {
		n.ln.Close()
	}
	if n.peerLn != nil {
		n.peerLn.Close()
	}
	n.usage.close()
	if n.db != nil {
		return n.db.Close()
	}
	return nil
}

// HTTPAddr returns the address of the HTTP side port, "" when it is off.
func (n *Node) HTTPAddr() string {
	if n.ops == nil {
		return ""
	}
	return n.ops.Addr()
}

// ready is /readyz: the node can serve once its replica runs and knows a
// leader.
func (n *Node) ready() error {
	select {
	case <-n.rep.Done():
		return errors.New("replica stopped")
	default:
	}
	if n.rep.Leader() == 0 {
		return errors.New("no leader known")
	}
	return nil
}

// Status reports the node's view of itself.
func (n *Node) Status() wire.NodeStatus {
	st := n.rep.Status()
	rng, _ := n.fsm.Range()
	ns := wire.NodeStatus{
		ID: n.cfg.NodeID, Cluster: n.cfg.ClusterID, Addr: n.Addr(), PeerAddr: n.PeerAddr(), Role: st.Role,
		Term: st.Term, Leader: st.Leader, LeaderAddr: n.addrOf(st.Leader),
		Commit: st.Commit, Applied: st.Applied, PID: n.cfg.PID, Range: rng,
		Members: memberStatus(st.Members), LogFirst: st.FirstIndex,
	}
	ns.Replaces = n.replacing(ns.Members)
	if n.scrub != nil {
		n.scrub.report(&ns)
	}
	n.repairs.report(&ns)
	n.check.report(&ns)
	n.usage.report(n.fsm, &ns)
	reportStorage(&ns, n.space, n.health)
	rs := n.rep.get().Stats()
	ns.ForeignFrames, ns.BadCommitFrames, ns.InvalidFrames = rs.Foreign, rs.BadCommit, rs.Invalid+n.peerRefused.Load()
	ns.WrongPlaneFrames = n.dropped.Load()
	return ns
}

func (n *Node) handle(ctx context.Context, req *wire.Request) *wire.Response {
	if resp, ok := n.rep.ServeWireFrom(ctx, req, rpc.VerifiedSender(ctx)); ok {
		return resp
	}
	if req.Op != wire.OpStatus {
		n.countServed(req)
	}
	switch {
	case req.Op == wire.OpStatus:
		st := n.Status()
		st.Checksum, st.ChecksumIndex = n.statusChecksum(req.Flags)
		return &wire.Response{Node: &st}
	case req.Op == wire.OpAddLearner, req.Op == wire.OpPromote, req.Op == wire.OpRemoveMember:
		return n.changeMembership(ctx, req)
	case req.Op == wire.OpChunkFetch:
		return n.serveChunkFetch(req)
	case req.Op.Mutating():
		return n.write(ctx, req)
	}
	return n.read(ctx, req)
}

// notLeader answers a client request this node cannot serve. It also
// wakes an idle replica (replica.Replica.Wake): a request arriving here
// may mean the leader is gone, and an idle group would otherwise notice
// only after its slow election timeout.
func (n *Node) notLeader(leader uint64) *wire.Response {
	n.rep.Wake()
	addr := n.addrOf(leader)
	msg := "not the leader; leader unknown"
	if addr != "" {
		msg = fmt.Sprintf("not the leader; node %d at %s is", leader, addr)
	}
	return &wire.Response{Code: wire.NotLeader, Message: msg, Leader: addr}
}

// maxWriteAttempts bounds how often the leader proposes one WRITE or
// APPEND whose file keeps changing between its read and the apply.
const maxWriteAttempts = 8

func (n *Node) write(ctx context.Context, req *wire.Request) *wire.Response {
	if resp := n.refuseWrite(req); resp != nil {
		return resp
	}
	prepare := needsPrepare(req.Op)
	if prepare {
		// One WRITE or APPEND of a path at a time on this leader: each
		// reads the file after the previous one applied, so they do not
		// refuse each other (fsm.Result.Retry).
		defer n.paths.lock(req.Path)()
	}
	for attempt := 1; ; attempt++ {
		c := n.command(req, time.Now())
		if prepare {
			if err := n.prepareWrite(ctx, c); err != nil {
				n.log.Error("prepare write failed", "op", req.Op.String(), "path", req.Path, "err", err)
				return errResponse(err)
			}
			if size := entrySize(c); size > int64(n.cfg.MaxFrame)-frameSlack {
				// The entry must fit a raft frame to reach the followers.
				return &wire.Response{Code: wire.TooLarge, Message: fmt.Sprintf("%v of %d bytes to %q: with the bytes it keeps of the partial blocks it rewrites, its log entry would carry %d bytes, over the %d a frame allows; write fewer bytes, or at block boundaries", req.Op, len(req.Data), req.Path, size, int64(n.cfg.MaxFrame)-frameSlack)}
			}
		}
		r, resp := n.propose(ctx, req, c)
		if r == nil || !r.Retry {
			return resp
		}
		if attempt == maxWriteAttempts {
			return &wire.Response{Code: wire.Unavailable, Message: fmt.Sprintf("%q kept changing while this %v was prepared (%d attempts); not applied, retry", req.Path, req.Op, attempt)}
		}
	}
}

// needsPrepare reports whether a write of op is prepared on the leader
// first (fsm.FSM.PrepareWrite): a WRITE or an APPEND, which rewrite part
// of a file.
func needsPrepare(op wire.Op) bool { return op == wire.OpWrite || op == wire.OpAppend }

// refuseWrite is the answer to a write this node must not propose (an
// invalid path, not the leader, no space left), or nil.
func (n *Node) refuseWrite(req *wire.Request) *wire.Response {
	if err := fspath.Validate(req.Path); err != nil {
		return &wire.Response{Code: wire.Invalid, Message: err.Error()}
	}
	if l := n.rep.Leader(); l != n.cfg.NodeID {
		return n.notLeader(l)
	}
	return n.space.refuse(req.Op, len(req.Data), n.cfg.NodeID)
}

// command is the command the leader proposes for req, stamped now.
func (n *Node) command(req *wire.Request, now time.Time) *fsm.Command {
	return &fsm.Command{
		Op: req.Op, Path: req.Path, Data: req.Data, Flags: req.Flags,
		Time: now.UnixNano(), Clock: n.clock.stamp(now), Session: req.Session, Seq: req.Seq,
		To: req.To, Offset: req.Offset, IfVersion: req.IfVersion, Chunks: req.Chunks, Size: req.Size,
		ChunkSize: n.cfg.ChunkSize, SessionTTL: int64(n.cfg.SessionTTL), ChunkTTL: int64(n.cfg.ChunkTTL), InlineSize: max(n.cfg.InlineSize, 0),
	}
}

// writeAsync is write for a write that needs no preparing, with no
// goroutine waiting for it (rpc.AsyncHandler): the replica's loop answers
// through reply when the entry applies, and ctx's end answers in its
// place if that comes first. False, with nothing done, for any other
// request, or when the replica's proposal queue is full: write serves it
// then.
func (n *Node) writeAsync(ctx context.Context, req *wire.Request, reply func(*wire.Response)) bool {
	if !req.Op.Mutating() || needsPrepare(req.Op) || n.cfg.UnsafeAckBeforeCommit {
		return false
	}
	answer := func(resp *wire.Response) bool {
		n.countServed(req)
		reply(resp)
		return true
	}
	if resp := n.refuseWrite(req); resp != nil {
		return answer(resp)
	}
	cmd, err := fsm.EncodeCommand(n.command(req, time.Now()))
	if err != nil {
		return answer(&wire.Response{Code: wire.Invalid, Message: err.Error()})
	}
	stop := rpc.AfterFunc(ctx, func() { reply(n.replicaError(ctx.Err())) })
	if !n.rep.ProposeFunc(cmd, func(res any, _ uint64, err error) {
		stop()
		reply(n.proposed(req, res, err))
	}) {
		stop()
		return false
	}
	n.countServed(req)
	return true
}

// countServed counts req in the node's usage figures.
func (n *Node) countServed(req *wire.Request) {
	n.usage.served.Add(1)
	n.usage.perRoot.add(req.Path)
}

// entrySize is the block bytes a prepared write's entry carries.
func entrySize(c *fsm.Command) int64 {
	var n int64
	for _, b := range c.Blocks {
		n += int64(len(b.Data))
	}
	return n
}

// propose proposes c and waits for its result: the fsm.Result (nil if none
// came back) and the response for the client.
func (n *Node) propose(ctx context.Context, req *wire.Request, c *fsm.Command) (*fsm.Result, *wire.Response) {
	cmd, err := fsm.EncodeCommand(c)
	if err != nil {
		return nil, &wire.Response{Code: wire.Invalid, Message: err.Error()}
	}
	if n.cfg.UnsafeAckBeforeCommit {
		go n.rep.Propose(context.WithoutCancel(ctx), cmd)
		// An OK the SDK takes as success (a write's answer carries a
		// stat): without one every write would count as an unknown
		// outcome, which hides the fault from the history checker.
		return nil, &wire.Response{Stat: &wire.Stat{Name: req.Path, Type: wire.TypeFile, Size: int64(len(req.Data))}}
	}
	r, resp := n.proposeEntry(ctx, cmd)
	if resp != nil {
		return nil, resp
	}
	return r, n.writeResponse(req, r)
}

// proposed is the response to req once the replica answered its
// proposal with res or err.
func (n *Node) proposed(req *wire.Request, res any, err error) *wire.Response {
	r, resp := n.applied(res, err)
	if resp != nil {
		return resp
	}
	return n.writeResponse(req, r)
}

// writeResponse is the response to the write req that applied with r.
func (n *Node) writeResponse(req *wire.Request, r *fsm.Result) *wire.Response {
	if r.Code == wire.Internal {
		n.log.Error("apply failed", "op", req.Op.String(), "path", req.Path, "err", r.Message)
	}
	return &wire.Response{Code: r.Code, Message: r.Message, Stat: r.Stat, Chunk: r.Chunk}
}

// proposeEntry proposes cmd and waits until it is applied: the state
// machine's Result, or the response for a proposal that failed.
func (n *Node) proposeEntry(ctx context.Context, cmd []byte) (*fsm.Result, *wire.Response) {
	res, _, err := n.rep.Propose(ctx, cmd)
	return n.applied(res, err)
}

// applied converts what the replica answered a proposal into the state
// machine's Result, or the response for a proposal that failed. The
// replica hands back what its state machine (splitGate) returned, always
// a *fsm.Result; this is the one place that converts it.
func (n *Node) applied(res any, err error) (*fsm.Result, *wire.Response) {
	if err != nil {
		return nil, n.replicaError(err)
	}
	r, ok := res.(*fsm.Result)
	if !ok {
		return nil, &wire.Response{Code: wire.Internal, Message: fmt.Sprintf("apply returned %T", res)}
	}
	return r, nil
}

// prepareWrite is fsm.FSM.PrepareWrite that repairs each corrupt or missing
// chunk it meets from another member and prepares again; a chunk that
// cannot be repaired fails the write INTERNAL, naming the chunk, before
// anything is proposed.
func (n *Node) prepareWrite(ctx context.Context, c *fsm.Command) error {
	data := c.Data
	for range maxRepairsPerRead {
		c.Data = data
		err := n.fsm.PrepareWrite(c)
		var ce *fsm.CorruptError
		if !errors.As(err, &ce) {
			return err
		}
		if rerr := n.repairChunk(ctx, ce.Chunk); rerr != nil {
			return &wire.Error{Code: wire.Internal, Message: ce.Err.Message + "; no healthy copy found: " + rerr.Error()}
		}
	}
	c.Data = data
	return n.fsm.PrepareWrite(c)
}

// pathLocks serializes the prepared writes of one path.
type pathLocks struct {
	mu sync.Mutex
	m  map[string]*pathLock
}

type pathLock struct {
	mu      sync.Mutex
	waiters int
}

// lock locks path p and returns its unlock.
func (l *pathLocks) lock(p string) func() {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*pathLock{}
	}
	pl := l.m[p]
	if pl == nil {
		pl = &pathLock{}
		l.m[p] = pl
	}
	pl.waiters++
	l.mu.Unlock()
	pl.mu.Lock()
	return func() {
		pl.mu.Unlock()
		l.mu.Lock()
		if pl.waiters--; pl.waiters == 0 {
			delete(l.m, p)
		}
		l.mu.Unlock()
	}
}

// replicaError maps a replica error to a response the router knows how to
// retry: NOT_LEADER and UNAVAILABLE mean not applied, safe to retry
// elsewhere; TIMEOUT means the outcome is unknown.
func (n *Node) replicaError(err error) *wire.Response {
	return replicaErrorResponse(err, n.notLeader, n.rep.Leader)
}

func replicaErrorResponse(err error, notLeader func(uint64) *wire.Response, leader func() uint64) *wire.Response {
	var nl *replica.NotLeaderError
	switch {
	case errors.As(err, &nl):
		return notLeader(nl.Leader)
	case errors.Is(err, replica.ErrNotLeader):
		return notLeader(leader())
	case errors.Is(err, replica.ErrProposalDropped):
		return &wire.Response{Code: wire.Unavailable, Message: "the cluster is busy (too many uncommitted writes) or changing leader; not applied, retry"}
	case errors.Is(err, replica.ErrProposalLost):
		return &wire.Response{Code: wire.Unavailable, Message: "leadership changed before the write committed; not applied"}
	case errors.Is(err, replica.ErrStopped):
		return &wire.Response{Code: wire.Unavailable, Message: "node is shutting down; not applied"}
	case errors.Is(err, replica.ErrOutcomeUnknown):
		return &wire.Response{Code: wire.Timeout, Message: "the node stopped following the cluster while the write was in flight; outcome unknown"}
	case errors.Is(err, context.DeadlineExceeded):
		return &wire.Response{Code: wire.Timeout, Message: "deadline passed before the cluster answered; outcome unknown"}
	case errors.Is(err, context.Canceled):
		return &wire.Response{Code: wire.Timeout, Message: "request cancelled; outcome unknown"}
	}
	return &wire.Response{Code: wire.Internal, Message: err.Error()}
}

// read serves a read: refused (refuseRead), else after the ReadIndex
// barrier unless the request is stale, read from the applied state
// (readApplied).
func (n *Node) read(ctx context.Context, req *wire.Request) *wire.Response {
	if resp := n.refuseRead(req); resp != nil {
		return resp
	}
	if req.Flags&wire.FlagStale == 0 {
		if err := n.rep.ReadIndex(ctx); err != nil {
			return n.replicaError(err)
		}
	}
	v := n.fsm.NewView()
	defer v.Close()
	return n.readApplied(ctx, req, v)
}

// readAsync is read for a linearizable GET, STAT, LIST or EXISTS without a
// goroutine of its own (rpc.AsyncHandler): the read is served when its
// ReadIndex round returns (replica.Replica.ReadIndexFunc), and the
// request's deadline answers TIMEOUT if that comes first. False if it did
// not take req.
func (n *Node) readAsync(ctx context.Context, req *wire.Request, reply func(*wire.Response)) bool {
	switch req.Op {
	case wire.OpGet, wire.OpStat, wire.OpList, wire.OpExists:
	default:
		return false
	}
	if req.Flags&wire.FlagStale != 0 {
		return false
	}
	if resp := n.refuseRead(req); resp != nil {
		n.countServed(req)
		reply(resp)
		return true
	}
	stop := rpc.AfterFunc(ctx, func() { reply(n.replicaError(ctx.Err())) })
	if !n.rep.ReadIndexFunc(func(scope *replica.ReadScope, err error) {
		if !stop() {
			return // the deadline answered
		}
		if err != nil {
			reply(n.replicaError(err))
			return
		}
		reply(n.readApplied(ctx, req, sharedView(scope, n.fsm)))
	}) {
		stop()
		return false
	}
	n.countServed(req)
	return true
}

// refuseRead answers a read this node will not serve: an invalid path, or
// a node quarantined after an integrity failure. Nil if it may.
func (n *Node) refuseRead(req *wire.Request) *wire.Response {
	if err := fspath.Validate(req.Path); err != nil {
		return &wire.Response{Code: wire.Invalid, Message: err.Error()}
	}
	if msg := n.check.quarantine(); msg != "" {
		return &wire.Response{Code: wire.Unavailable, Message: msg}
	}
	return nil
}

// sharedView is the view of f that the reads of scope share, opened by
// the first of them: once their round's read index is applied, so it
// serves each of them linearizably.
func sharedView(scope *replica.ReadScope, f *fsm.FSM) *fsm.View {
	return scope.Shared(func() (any, func()) {
		v := f.NewView()
		return v, func() { v.Close() }
	}).(*fsm.View)
}

// readApplied serves req from v, a view of the state this node has
// applied.
func (n *Node) readApplied(ctx context.Context, req *wire.Request, v *fsm.View) *wire.Response {
	if n.split.fenced.Load() {
		// Left the group at a split and not yet reformed as the new
		// cluster: its applied index moves on but its state is frozen at
		// the split, so a read (even after ReadIndex) would miss writes.
		return &wire.Response{Code: wire.Unavailable, Message: "this node left its cluster at a split and has not joined the new cluster yet"}
	}
	var err error
	resp := &wire.Response{}
	switch req.Op {
	case wire.OpGet:
		resp.Data, resp.Stat, err = n.readRepairing(ctx, v, req.Path, req.Offset, req.Length, int64(n.cfg.MaxFrame)-frameSlack)
	case wire.OpStat:
		resp.Stat, err = v.Stat(req.Path)
	case wire.OpList:
		resp.Entries, resp.Next, err = v.ListPage(req.Path, req.After, int(req.Limit), req.Flags&wire.FlagRecursive != 0)
	case wire.OpExists:
		resp.Exists, err = v.Exists(req.Path)
	default:
		return &wire.Response{Code: wire.Invalid, Message: fmt.Sprintf("a node does not serve %v", req.Op)}
	}
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			if we.Code == wire.Internal {
				n.log.Error("read failed", "op", req.Op.String(), "path", req.Path, "err", we.Message)
			}
			return &wire.Response{Code: we.Code, Message: we.Message}
		}
		return &wire.Response{Code: wire.Internal, Message: err.Error()}
	}
	return resp
}
