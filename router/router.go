package router

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/internal/certs"
	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/internal/gossip"
	"github.com/cleavefs/cleave/internal/ops"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/replica"
	"github.com/cleavefs/cleave/wire"
)

// TableFile is the name of the routing table file inside Config.DataDir.
const TableFile = "table.json"

// Router accepts client connections and forwards each request to the leader
// of the cluster owning the request's root. Safe for concurrent use.
type Router struct {
	cfg      Config
	log      *slog.Logger
	table    control.Table
	meta     *control.MetaTable     // set when the table is the meta group's
	metaTr   *replica.WireTransport // carries the meta group's raft traffic
	pool     *rpc.Pool              // to the nodes' client listeners
	peers    *rpc.Pool              // to the peer listeners of nodes and routers
	refused  atomic.Uint64          // one-way peer frames a certificate may not send
	srv      *rpc.Server            // the client plane
	peerSrv  *rpc.Server            // the peer plane; nil without a meta group
	peerLn   net.Listener           // the peer listener; nil without a meta group
	peerAddr string                 // advertised peer address
	dropped  atomic.Uint64
	ops      *ops.Server   // the HTTP side port, nil when Config.HTTP is ""
	gossip   *gossip.Pool  // nil when Config.Gossip is ""
	live     liveness      // what gossip says of node addresses
	replicas replicaRings  // read-replica choice per cluster
	hints    hintGuard     // leader hints refused (replicas.go)
	load     loadWindow    // request counters per cluster, for HotRoot (hotroot.go)
	done     chan struct{} // closed by Close; ends retry waits

	splits *control.Driver // nil without a meta group

	lmu     sync.Mutex
	leaders map[string]string // cluster id → leader address last seen

	mu        sync.Mutex
	addr      string // first listener's address
	closeOnce sync.Once
}

// New returns a router for cfg. Zero optional fields take their defaults
// (DefaultConfig) before cfg is validated. It opens (or bootstraps) the
// routing table and, with a meta group, serves the peer listener; for
// clients call Serve or ListenAndServe.
func New(cfg Config) (*Router, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Router{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "router", "router", cfg.ID),
		done:    make(chan struct{}),
		leaders: map[string]string{},
		pool: rpc.NewPool(rpc.DialConfig{
			Client: "router " + cfg.ID, Token: cfg.Token, MaxFrame: cfg.MaxFrame, TLS: cfg.NodeTLS,
		}),
		peers: rpc.NewPool(cfg.peerDial()),
	}
	r.table = cfg.Table
	if r.table == nil {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("router: data dir: %w", err)
		}
		if err := r.openTable(); err != nil {
			r.pool.Close()
			r.peers.Close()
			return nil, err
		}
	}
	scfg := rpc.ServerConfig{
		Name: "router", ID: cfg.ID, MaxFrame: cfg.MaxFrame,
		DefaultTimeout: cfg.DefaultTimeout, Logger: cfg.Logger,
		Authenticate: func(ctx context.Context, ci *rpc.ConnInfo) (any, error) {
			return r.authenticate(ctx, ci.Hello.Token) // auth.go
		},
	}
	var reg *prometheus.Registry
	if cfg.HTTP != "" {
		reg = prometheus.NewRegistry()
		scfg.Observe = ops.NewRequestMetrics(reg, "router").Observe
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cleave_router_table_version",
			Help: "Version of the routing table this router uses.",
		}, func() float64 { return float64(r.table.Current().Version) }))
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cleave_router_leader_hints_refused_total",
			Help: "Leader hints (gossip, NOT_LEADER) ignored because the routing table does not list the address for the cluster.",
		}, func() float64 { return float64(r.hints.refused.Load()) }))
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cleave_router_peer_frames_refused_total",
			Help: "RAFT frames dropped on the peer plane because the sender's certificate is not a router's (frames in another router's name count with the meta replica's invalid frames).",
		}, func() float64 { return float64(r.refused.Load()) }))
		registerStatusMetrics(reg, r)
	}
	ccfg := scfg
	ccfg.TLS = cfg.clientServerTLS()
	r.srv = rpc.NewServer(ccfg, rpc.PlaneHandler(wire.ClientPlane, wire.RouterPlane, &r.dropped, r))
	if r.meta != nil {
		if err := r.servePeers(scfg); err != nil {
			r.Close()
			return nil, err
		}
	}
	if reg != nil {
		var err error
		r.ops, err = ops.Start(ops.Config{Addr: cfg.HTTP, Registry: reg, Ready: r.ready, Logger: r.log, Pprof: cfg.Pprof, Handlers: r.pageHandlers()})
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("router: %w", err)
		}
	}
	if err := r.startGossip(); err != nil {
		r.Close()
		return nil, fmt.Errorf("router: %w", err)
	}
	if r.meta != nil {
		r.splits = control.NewDriver(control.DriverConfig{
			Meta: r.meta, Clusters: clusterCaller{r}, Logger: r.log,
			HoldAt: cfg.TestHoldSplitAt, HoldFor: cfg.TestHoldSplitDuration,
		})
		r.splits.Start()
	}
	return r, nil
}

// servePeers serves the peer plane on cfg.PeerListen, with the client
// server's settings: the one place the peer server is built. With
// PeerTLS, it requires a peer certificate and lets only routers in
// (peerauth.go).
func (r *Router) servePeers(scfg rpc.ServerConfig) error {
	var h rpc.Handler = r
	if r.cfg.PeerTLS != nil {
		scfg.TLS = r.cfg.PeerTLS.ServerConfig(tls.RequireAndVerifyClientCert)
		h = rpc.CheckPeers(certs.Verified, peerRule, &r.refused, h)
	}
	ln, err := net.Listen("tcp", r.cfg.PeerListen)
	if err != nil {
		return fmt.Errorf("router: peer listen %s: %w", r.cfg.PeerListen, err)
	}
	r.peerLn, r.peerAddr = ln, rpc.Advertise(r.cfg.PeerAdvertise, ln)
	r.peerSrv = rpc.NewServer(scfg, rpc.PlaneHandler(wire.PeerPlane, wire.RouterPlane, nil, h))
	go r.peerSrv.Serve(ln)
	r.log.Info("serving peers", "peer_addr", r.peerAddr)
	return nil
}

// PeerAddr returns the router's advertised peer address, "" without a
// meta group.
func (r *Router) PeerAddr() string { return r.peerAddr }

// ready is /readyz: the router can route once its table covers the ring.
func (r *Router) ready() error {
	if t := r.table.Current(); t == nil || len(t.Ranges) == 0 {
		return errors.New("no routing table yet")
	}
	return nil
}

// HTTPAddr returns the address of the HTTP side port, "" when it is off.
func (r *Router) HTTPAddr() string {
	if r.ops == nil {
		return ""
	}
	return r.ops.Addr()
}

// openTable opens the meta group member (with cfg.Meta) or the table file.
func (r *Router) openTable() error {
	cfg := r.cfg
	if cfg.Meta == nil {
		ft, err := control.OpenFileTable(filepath.Join(cfg.DataDir, TableFile), cfg.Bootstrap)
		if err != nil {
			return fmt.Errorf("router: %w", err)
		}
		r.table = ft
		return nil
	}
	mc := *cfg.Meta
	if mc.Dir == "" {
		mc.Dir = filepath.Join(cfg.DataDir, "meta")
	}
	if mc.Bootstrap == nil {
		mc.Bootstrap = cfg.Bootstrap
	}
	if mc.Logger == nil {
		mc.Logger = r.log
	}
	r.metaTr = replica.NewWireTransport(mc.RaftID, mc.Peers, r.peers, r.log.With("group", "meta"))
	mt, err := control.OpenMetaTable(mc, r.metaTr)
	if err != nil {
		r.metaTr.Close()
		return err
	}
	r.metaTr.SetReplica(mt.Replica())
	r.meta, r.table = mt, mt
	return nil
}

// Table returns the router's routing table store.
func (r *Router) Table() control.Table { return r.table }

// neverFailed is Failed's channel for a router without a meta group.
var neverFailed = make(chan struct{})

// Failed is closed when the router's member of the meta group stopped on a
// fatal error (FailErr says which): the router must not go on routing
// with a table it can no longer follow. The process should exit non-zero
// so its supervisor restarts it. A router without a meta group never
// fails this way.
func (r *Router) Failed() <-chan struct{} {
	if r.meta == nil {
		return neverFailed
	}
	return r.meta.Replica().Done()
}

// FailErr returns the error that closed Failed, or nil.
func (r *Router) FailErr() error {
	if r.meta == nil {
		return nil
	}
	return r.meta.Replica().Err()
}

// Serve accepts client connections on ln until Close; it always returns an
// error, rpc.ErrServerClosed after Close.
func (r *Router) Serve(ln net.Listener) error {
	r.mu.Lock()
	if r.addr == "" {
		r.addr = rpc.Advertise(r.cfg.Advertise, ln)
	}
	r.mu.Unlock()
	r.log.Info("serving", "addr", ln.Addr().String(), "table_version", r.table.Current().Version)
	return r.srv.Serve(ln)
}

// ListenAndServe listens on Config.Listen and serves until Close.
func (r *Router) ListenAndServe() error {
	ln, err := net.Listen("tcp", r.cfg.Listen)
	if err != nil {
		return fmt.Errorf("router: %w", err)
	}
	return r.Serve(ln)
}

// Addr returns the advertised client address: Config.Advertise, else the
// address of the first listener served; "" before Serve.
func (r *Router) Addr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addr
}

// Close stops serving, fails requests in flight with their contexts
// cancelled, waits for them and closes connections to nodes.
func (r *Router) Close() error {
	r.closeOnce.Do(func() {
		close(r.done)
		if r.gossip != nil {
			r.gossip.Close()
		}
		if r.ops != nil {
			r.ops.Close()
		}
		r.srv.Close()
		if r.peerSrv != nil {
			r.peerSrv.Close()
		}
		if r.peerLn != nil {
			r.peerLn.Close()
		}
		if r.splits != nil {
			r.splits.Close()
		}
		if r.meta != nil {
			r.meta.Close()
			r.metaTr.Close()
		}
		r.pool.Close()
		r.peers.Close()
	})
	return nil
}

// Handle serves one request (rpc.Handler): STATUS and TABLE are answered by
// the router, operations on "/" are answered or fanned out here, everything
// else is validated and forwarded to the owning cluster. The response's ID
// is left for the server to set.
func (r *Router) Handle(ctx context.Context, req *wire.Request) *wire.Response {
	if ci := rpc.ConnInfoFrom(ctx); ci != nil {
		p, _ := ci.Principal.(principal)
		if resp := r.authorize(ctx, p, req); resp != nil {
			return resp
		}
	}
	if r.meta != nil {
		if resp, ok := r.meta.Replica().ServeWireFrom(ctx, req, rpc.VerifiedSender(ctx)); ok {
			return resp // the meta group's raft traffic and snapshots
		}
	}
	switch req.Op {
	case wire.OpRouterInfo:
		self := r.self()
		return &wire.Response{Router: &self}
	case wire.OpStatus:
		return &wire.Response{Status: r.status(ctx)}
	case wire.OpSplit:
		return r.handleSplit(ctx, req)
	case wire.OpAddLearner, wire.OpPromote, wire.OpRemoveMember:
		return r.handleMember(ctx, req) // admin.go
	case wire.OpUser:
		return r.handleUser(ctx, req) // auth.go
	case wire.OpTable:
		return &wire.Response{Routes: r.table.Current()}
	case wire.OpHello:
		return wire.Errorf(req.ID, wire.Invalid, "HELLO may only open a connection")
	}
	if req.Op.OneWay() {
		return nil // raft traffic is for nodes, not routers: dropped
	}
	if err := fspath.Validate(req.Path); err != nil {
		var pe *fspath.Error
		if errors.As(err, &pe) {
			return wire.Errorf(req.ID, wire.Invalid, "%s", pe.Error())
		}
		return wire.Errorf(req.ID, wire.Invalid, "%v", err)
	}
	if req.Op == wire.OpRename || req.Op == wire.OpCopy {
		if resp := checkTwoPaths(req); resp != nil {
			return resp
		}
	}
	if req.Path == "/" {
		return r.handleTop(ctx, req)
	}
	// Every other operation, OpChunk and OpCommit included, goes to the
	// cluster owning the root of req.Path (for RENAME and COPY also To's).
	return r.forward(ctx, req, ownerOf(req.Path))
}

// ownerOf routes to the cluster owning the root of path.
func ownerOf(path string) route {
	p := ring.PathPoint(path)
	return func(t *wire.TableInfo) (string, bool) {
		o, ok := control.Owner(t, p)
		return o.Cluster, ok
	}
}

// checkTwoPaths checks the destination of a RENAME or COPY: To must be a
// valid path other than "/", and in the same root as Path, since one root
// lives in one cluster and a move across clusters would not be atomic.
// A copy across roots is done by the SDK, which streams the
// bytes; the router refuses it like a rename.
func checkTwoPaths(req *wire.Request) *wire.Response {
	verb := strings.ToLower(req.Op.String())
	if err := fspath.Validate(req.To); err != nil {
		return wire.Errorf(req.ID, wire.Invalid, "%s destination: %v", verb, err)
	}
	if req.Path == "/" || req.To == "/" {
		return wire.Errorf(req.ID, wire.Invalid, "%s %s to %s: / is the virtual top directory and cannot be moved or copied", verb, req.Path, req.To)
	}
	if a, b := fspath.Root(req.Path), fspath.Root(req.To); a != b {
		return wire.Errorf(req.ID, wire.CrossRoot, "%s %s to %s: source root %q and destination root %q differ; %s works within one root", verb, req.Path, req.To, a, b, verb)
	}
	return nil
}

// handleTop answers an operation on the virtual top directory "/".
func (r *Router) handleTop(ctx context.Context, req *wire.Request) *wire.Response {
	switch req.Op {
	case wire.OpList:
		return r.listTop(ctx, req)
	case wire.OpStat:
		return &wire.Response{Stat: &wire.Stat{Name: "", Type: wire.TypeDir}}
	case wire.OpExists:
		return &wire.Response{Exists: true}
	case wire.OpGet:
		return wire.Errorf(req.ID, wire.IsDir, "/ is a directory")
	}
	return wire.Errorf(req.ID, wire.Invalid, "%v on / is not allowed: / is the virtual top directory", req.Op)
}

// defaultListLimit is the page size of a listing of "/" that asks for none;
// the nodes use the same default.
const defaultListLimit = 1000

// listTop lists "/" on every cluster owning a range, in parallel, and merges
// the roots sorted by name. A root is kept only from the cluster the table
// gives it to, so a cluster still holding a root it split away (before its
// background delete) adds no duplicate. If any cluster fails, so does the
// listing.
//
// Pagination: the continuation token of "/" is the nodes' form (base64url
// of the last name returned, opaque to clients), so a token stays correct
// while roots come and go and the same After is passed on to every
// cluster. Each cluster is asked for its first Limit roots after After; the
// first Limit names of their union are the
// first Limit names of "/", so the merged page is cut there, and Next is
// its last name when some cluster has more (answered with a Next, or a full
// page) or the union was cut. A page may come out shorter than Limit when a
// cluster's page held roots it no longer owns; a non-empty Next still means
// "more".
//
// FlagRecursive on "/" is refused with INVALID: a recursive listing of the
// whole namespace is a walk, which the SDK does root by root (Client.Walk).
func (r *Router) listTop(ctx context.Context, req *wire.Request) *wire.Response {
	if req.Flags&wire.FlagRecursive != 0 {
		return wire.Errorf(req.ID, wire.Invalid, "recursive listing of / is not served by the router: list each root recursively (the SDK's Walk does)")
	}
	limit := int(req.Limit)
	if limit == 0 {
		limit = defaultListLimit
	}
	after := ""
	if req.After != "" {
		b, err := base64.RawURLEncoding.DecodeString(req.After)
		if err != nil || fspath.ValidateStored("/"+string(b)) != nil || strings.Contains(string(b), "/") {
			return wire.Errorf(req.ID, wire.Invalid, "malformed list continuation token %q for /: pass Response.Next unchanged", req.After)
		}
		after = string(b)
	}
	t := r.table.Current()
	ids := control.OwningClusters(t)
	resps := make([]*wire.Response, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			resps[i] = r.forward(ctx, req, func(t *wire.TableInfo) (string, bool) {
				_, ok := control.Cluster(t, id)
				return id, ok
			})
		})
	}
	wg.Wait()
	var entries []wire.Stat
	more := false
	for i, resp := range resps {
		if resp.Code != wire.OK {
			return wire.Errorf(req.ID, resp.Code, "list / on cluster %s: %s", ids[i], resp.Message)
		}
		more = more || resp.Next != "" || len(resp.Entries) >= limit && req.Limit != 0
		for _, e := range resp.Entries {
			if after != "" && e.Name <= after {
				continue // a node that ignores After
			}
			if o, ok := control.Owner(t, ring.Point(e.Name)); ok && o.Cluster == ids[i] {
				entries = append(entries, e)
			}
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	out := &wire.Response{Entries: entries}
	if len(entries) > limit {
		out.Entries, more = entries[:limit], true
	}
	switch {
	case more && len(out.Entries) > 0:
		out.Next = base64.RawURLEncoding.EncodeToString([]byte(out.Entries[len(out.Entries)-1].Name))
	case more:
		out.Next = req.After // nothing owned on this page yet; continue from the same place
	}
	return out
}

// leader returns the cached leader address of a cluster, "" if unknown.
func (r *Router) leader(cluster string) string {
	r.lmu.Lock()
	defer r.lmu.Unlock()
	return r.leaders[cluster]
}

// setLeader caches addr as the leader of cluster.
func (r *Router) setLeader(cluster, addr string) {
	r.lmu.Lock()
	defer r.lmu.Unlock()
	if addr == "" {
		delete(r.leaders, cluster)
		return
	}
	r.leaders[cluster] = addr
}

// forgetLeader drops the cached leader of cluster if it is still addr.
func (r *Router) forgetLeader(cluster, addr string) {
	r.lmu.Lock()
	defer r.lmu.Unlock()
	if r.leaders[cluster] == addr {
		delete(r.leaders, cluster)
	}
}
