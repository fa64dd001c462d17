package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/replica"
	"github.com/cleavefs/cleave/wire"
)

// Config configures a storage node.
type Config struct {
	NodeID    uint64            // raft id, unique across the deployment, nonzero
	ClusterID string            // cluster this node was started in, e.g. "c1"
	Listen    string            // host:port to listen on (and advertise)
	Peers     map[uint64]string // raft id -> address of every initial member, including this node
	DataDir   string            // Pebble directory of this node
	Range     wire.Range        // owned range; used only to bootstrap an empty DataDir
	PID       int               // reported in status: os.Getpid() under `cleave up`, else 0
	Token     string            // if set, clients and peers must present it in HELLO
	MaxFrame  int               // largest frame accepted; default wire.DefaultMaxFrame
	Logger    *slog.Logger      // default slog.Default()

	TickInterval  time.Duration // raft tick; default 50ms
	ElectionTicks int           // election timeout in ticks; default 10 (0.5–1 s)
}

// DefaultConfig returns a Config with every default filled in; the caller
// still sets identity, addresses and the data directory.
func DefaultConfig() Config {
	rc := replica.DefaultConfig()
	return Config{
		MaxFrame:      wire.DefaultMaxFrame,
		TickInterval:  rc.TickInterval,
		ElectionTicks: rc.ElectionTicks,
	}
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
	case c.DataDir == "":
		return errors.New("cluster: data directory is empty")
	case len(c.Peers) == 0:
		return errors.New("cluster: no peers (list every member, including this node)")
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
	return nil
}

// Node is a running storage node. Safe for concurrent use.
type Node struct {
	cfg   Config
	log   *slog.Logger
	db    *pebble.DB
	fsm   *FSM
	rep   *replica.Replica
	tr    *transport
	pool  *rpc.Pool
	srv   *rpc.Server
	ln    net.Listener
	addrs map[uint64]string // raft id -> address

	serveErr chan error
}

// Start opens the node's database (bootstrapping it if empty), starts its
// Raft replica and serves the wire protocol on cfg.Listen.
func Start(cfg Config) (*Node, error) {
	def := DefaultConfig()
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = def.MaxFrame
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = def.TickInterval
	}
	if cfg.ElectionTicks <= 0 {
		cfg.ElectionTicks = def.ElectionTicks
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "node", "node", cfg.NodeID, "cluster", cfg.ClusterID)
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: data dir: %w", err)
	}
	db, err := pebble.Open(filepath.Join(cfg.DataDir, "db"), &pebble.Options{Logger: quietPebble{log}})
	if err != nil {
		return nil, fmt.Errorf("cluster: open %s: %w", cfg.DataDir, err)
	}
	n := &Node{cfg: cfg, log: log, db: db, fsm: NewFSM(db), addrs: map[uint64]string{}, serveErr: make(chan error, 1)}
	fail := func(err error) (*Node, error) {
		n.closeParts()
		return nil, err
	}
	if _, err := n.fsm.Range(); err != nil {
		// A new node: every member of a new cluster writes the same initial state.
		b := db.NewIndexedBatch()
		if err := n.fsm.Bootstrap(b, cfg.Range); err != nil {
			return fail(fmt.Errorf("cluster: bootstrap: %w", err))
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return fail(fmt.Errorf("cluster: bootstrap: %w", err))
		}
		log.Info("bootstrapped new node", "range", cfg.Range.String())
	}
	ids := make([]uint64, 0, len(cfg.Peers))
	for id, addr := range cfg.Peers {
		ids = append(ids, id)
		n.addrs[id] = addr
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })

	n.ln, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fail(fmt.Errorf("cluster: listen %s: %w", cfg.Listen, err))
	}
	n.pool = rpc.NewPool(rpc.DialConfig{Client: "node-" + strconv.FormatUint(cfg.NodeID, 10), Token: cfg.Token, MaxFrame: cfg.MaxFrame})
	var rep *replica.Replica
	n.tr = newTransport(cfg.NodeID, cfg.Peers, n.pool, log, func(id uint64) {
		if rep != nil {
			rep.ReportUnreachable(id)
		}
	})
	rc := replica.DefaultConfig()
	rc.ID = cfg.NodeID
	rc.Peers = ids
	rc.TickInterval = cfg.TickInterval
	rc.ElectionTicks = cfg.ElectionTicks
	rc.Logger = log
	rep, err = replica.Open(rc, db, n.fsm, n.tr)
	if err != nil {
		return fail(fmt.Errorf("cluster: %w", err))
	}
	n.rep = rep
	n.srv = rpc.NewServer(rpc.ServerConfig{
		Name: "node", ID: strconv.FormatUint(cfg.NodeID, 10), Token: cfg.Token,
		MaxFrame: cfg.MaxFrame, Logger: log,
	}, rpc.HandlerFunc(n.handle))
	go func() { n.serveErr <- n.srv.Serve(n.ln) }()
	log.Info("node serving", "addr", n.Addr(), "peers", len(cfg.Peers))
	return n, nil
}

// Addr returns the address the node listens on.
func (n *Node) Addr() string { return n.ln.Addr().String() }

// Close stops serving, stops the replica and closes the database.
func (n *Node) Close() error {
	if n.srv != nil {
		n.srv.Close()
	}
	return n.closeParts()
}

func (n *Node) closeParts() error {
	if n.rep != nil {
		n.rep.Close()
	}
	if n.tr != nil {
		n.tr.close()
	}
	if n.pool != nil {
		n.pool.Close()
	}
	if n.ln != nil {
		n.ln.Close()
	}
	if n.db != nil {
		return n.db.Close()
	}
	return nil
}

// Status reports the node's view of itself.
func (n *Node) Status() wire.NodeStatus {
	st := n.rep.Status()
	rng, _ := n.fsm.Range()
	return wire.NodeStatus{
		ID: n.cfg.NodeID, Cluster: n.cfg.ClusterID, Addr: n.Addr(), Role: st.Role,
		Term: st.Term, Leader: st.Leader, LeaderAddr: n.addrs[st.Leader],
		Commit: st.Commit, Applied: st.Applied, PID: n.cfg.PID, Range: rng,
	}
}

func (n *Node) handle(ctx context.Context, req *wire.Request) *wire.Response {
	switch {
	case req.Op == wire.OpRaft:
		m := new(raftpb.Message)
		if err := proto.Unmarshal(req.Data, m); err != nil {
			n.log.Warn("malformed raft message dropped", "err", err)
			return nil
		}
		if m.GetTo() != n.cfg.NodeID {
			n.log.Warn("raft message for another node dropped", "to", m.GetTo())
			return nil
		}
		n.rep.Step(m)
		return nil
	case req.Op == wire.OpStatus:
		st := n.Status()
		return &wire.Response{Node: &st}
	case req.Op.Mutating():
		return n.write(ctx, req)
	}
	return n.read(ctx, req)
}

func (n *Node) notLeader(leader uint64) *wire.Response {
	addr := n.addrs[leader]
	msg := "not the leader; leader unknown"
	if addr != "" {
		msg = fmt.Sprintf("not the leader; node %d at %s is", leader, addr)
	}
	return &wire.Response{Code: wire.NotLeader, Message: msg, Leader: addr}
}

func (n *Node) write(ctx context.Context, req *wire.Request) *wire.Response {
	if err := fspath.Validate(req.Path); err != nil {
		return &wire.Response{Code: wire.Invalid, Message: err.Error()}
	}
	if l := n.rep.Leader(); l != n.cfg.NodeID {
		return n.notLeader(l)
	}
	cmd, err := EncodeCommand(&Command{
		Op: req.Op, Path: req.Path, Data: req.Data, Flags: req.Flags,
		Time: time.Now().UnixNano(), Session: req.Session, Seq: req.Seq,
	})
	if err != nil {
		return &wire.Response{Code: wire.Invalid, Message: err.Error()}
	}
	res, _, err := n.rep.Propose(ctx, cmd)
	if err != nil {
		return n.replicaError(err)
	}
	r, ok := res.(*Result)
	if !ok {
		return &wire.Response{Code: wire.Internal, Message: fmt.Sprintf("apply returned %T", res)}
	}
	return &wire.Response{Code: r.Code, Message: r.Message, Stat: r.Stat}
}

// replicaError maps a replica error to a response the router knows how to
// retry: NOT_LEADER and UNAVAILABLE are safe to retry elsewhere; TIMEOUT
// means the outcome is unknown.
func (n *Node) replicaError(err error) *wire.Response {
	var nl *replica.NotLeaderError
	switch {
	case errors.As(err, &nl):
		return n.notLeader(nl.Leader)
	case errors.Is(err, replica.ErrNotLeader):
		return n.notLeader(n.rep.Leader())
	case errors.Is(err, replica.ErrProposalLost):
		return &wire.Response{Code: wire.Unavailable, Message: "leadership changed before the write committed; not applied"}
	case errors.Is(err, replica.ErrStopped):
		return &wire.Response{Code: wire.Unavailable, Message: "node is shutting down"}
	case errors.Is(err, context.DeadlineExceeded):
		return &wire.Response{Code: wire.Timeout, Message: "deadline passed before the cluster answered; outcome unknown"}
	case errors.Is(err, context.Canceled):
		return &wire.Response{Code: wire.Unavailable, Message: "request cancelled"}
	}
	return &wire.Response{Code: wire.Internal, Message: err.Error()}
}

func (n *Node) read(ctx context.Context, req *wire.Request) *wire.Response {
	if err := fspath.Validate(req.Path); err != nil {
		return &wire.Response{Code: wire.Invalid, Message: err.Error()}
	}
	if req.Flags&wire.FlagStale == 0 {
		if err := n.rep.ReadIndex(ctx); err != nil {
			return n.replicaError(err)
		}
	}
	var err error
	resp := &wire.Response{}
	switch req.Op {
	case wire.OpGet:
		resp.Data, resp.Stat, err = n.fsm.Get(req.Path)
	case wire.OpStat:
		resp.Stat, err = n.fsm.Stat(req.Path)
	case wire.OpList:
		resp.Entries, err = n.fsm.List(req.Path)
	case wire.OpExists:
		resp.Exists, err = n.fsm.Exists(req.Path)
	default:
		return &wire.Response{Code: wire.Invalid, Message: fmt.Sprintf("a node does not serve %v", req.Op)}
	}
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			return &wire.Response{Code: we.Code, Message: we.Message}
		}
		return &wire.Response{Code: wire.Internal, Message: err.Error()}
	}
	return resp
}

// quietPebble sends Pebble's informational chatter to debug level.
type quietPebble struct{ log *slog.Logger }

func (q quietPebble) Infof(format string, args ...any) {
	q.log.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}
func (q quietPebble) Errorf(format string, args ...any) {
	q.log.Error(fmt.Sprintf(format, args...), "component", "pebble")
}
func (q quietPebble) Fatalf(format string, args ...any) {
	q.log.Error(fmt.Sprintf(format, args...), "component", "pebble")
	os.Exit(1)
}
