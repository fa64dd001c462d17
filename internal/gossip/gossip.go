// Package gossip is cleave's liveness and discovery pool: every
// router and storage node joins one hashicorp/memberlist pool and carries a
// small Meta record (role, cluster, leader flag, applied index, service
// address), so routers learn who leads each cluster and who died within
// seconds, without polling.
//
// Gossip is advisory: it tells routers where to try first. Correctness never
// depends on it; a stale hint costs a NOT_LEADER retry.
//
// With Config.Keys every message is AES-GCM encrypted and authenticated
// with memberlist's keyring, and a member without a key is not heard.
// Pool.InstallKey, UseKey and RemoveKey rotate keys live; ReadKeyFile and
// EnsureKeyFile handle the key file format (docs/security.md).
package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"
)

// Meta is what one member tells the pool about itself. It must encode to at
// most memberlist.MetaMaxSize (512) bytes.
type Meta struct {
	Role    string `msgpack:"r"`           // "router" or "node"
	ID      string `msgpack:"i"`           // router id, or the node's raft id in decimal
	Cluster string `msgpack:"c,omitempty"` // cluster of a node
	Leader  bool   `msgpack:"l,omitempty"` // a node that leads its cluster, a router that leads the meta group
	// Applied is the last applied index: a router's of the meta group, a
	// node's of its cluster at most ten seconds old (every meta change is
	// broadcast to the whole pool, and a node's index moves with each write).
	Applied uint64 `msgpack:"a,omitempty"`
	Addr    string `msgpack:"s"`           // service (wire protocol) address
	PID     int    `msgpack:"p,omitempty"` // OS process id, for `cleave up`
}

// Member is one member of the pool as this process sees it.
type Member struct {
	Name  string // memberlist name: role/id
	Meta  Meta
	Alive bool      // false once memberlist declares it dead or it left
	Since time.Time // when Alive last changed
}

// Config configures a pool member.
type Config struct {
	Bind string // host:port for gossip (UDP and TCP); port 0 picks one
	// Advertise is the host:port other members reach this one at; default
	// Bind, which must then name a host they can reach (not 0.0.0.0).
	Advertise string
	Seeds     []string      // gossip addresses of members to join; none starts a new pool
	Meta      func() Meta   // called whenever memberlist needs this member's meta; must be cheap and safe concurrently
	Refresh   time.Duration // how often meta is re-read and pushed if it changed; default 250ms
	Logger    *slog.Logger  // default slog.Default()
	// Keys are AES keys (16, 24 or 32 bytes) that encrypt and authenticate
	// every gossip message; the first is primary (used to send), all are
	// accepted on receipt, so a new key can be rolled in. With keys set,
	// unencrypted messages are dropped. Default none: plaintext gossip.
	Keys [][]byte
	// OnChange, if set, is called (not concurrently) after a member joins,
	// changes its meta, leaves or dies. It must not block.
	OnChange func(Member)
}

// Pool is this process's membership in the gossip pool. Safe for
// concurrent use.
type Pool struct {
	cfg  Config
	ml   *memberlist.Memberlist
	kr   *memberlist.Keyring // nil without Config.Keys
	log  *slog.Logger
	name string

	mu       sync.Mutex
	members  map[string]*Member
	lastMeta []byte

	evMu sync.Mutex // serialises OnChange calls
	done chan struct{}
	wg   sync.WaitGroup
}

// Start joins (or starts) the pool. Failing to reach any seed is not an
// error: the member keeps retrying the seeds in the background, so processes
// may start in any order.
func Start(cfg Config) (*Pool, error) {
	if cfg.Meta == nil {
		return nil, errors.New("gossip: Meta is required")
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 250 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	host, portStr, err := net.SplitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("gossip: bind address %q: %v", cfg.Bind, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip: bind port %q: %v", portStr, err)
	}
	kr, err := newKeyring(cfg.Keys)
	if err != nil {
		return nil, err
	}
	m := cfg.Meta()
	p := &Pool{
		kr:  kr,
		cfg: cfg, log: cfg.Logger.With("component", "gossip"),
		name:    m.Role + "/" + m.ID,
		members: map[string]*Member{},
		done:    make(chan struct{}),
	}
	advHost, advPort, err := advertised(cfg.Advertise, host, port)
	if err != nil {
		return nil, err
	}
	mc := timings(host)
	mc.Name = p.name
	mc.BindAddr = host
	mc.BindPort = port
	mc.AdvertiseAddr = advHost
	mc.AdvertisePort = advPort
	mc.Delegate = (*delegate)(p)
	mc.Events = (*events)(p)
	mc.Logger = log.New(&slogWriter{p.log}, "", 0)
	if kr != nil {
		mc.Keyring = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	p.ml = ml
	if port == 0 {
		// memberlist picked the port: advertise what it bound.
		p.log.Debug("gossip bound", "addr", ml.LocalNode().Address())
	}
	p.wg.Add(1)
	go p.loop()
	return p, nil
}

// Addr returns the gossip address other members use as a seed.
func (p *Pool) Addr() string { return p.ml.LocalNode().Address() }

// Members returns every member seen, sorted by name, including this one.
func (p *Pool) Members() []Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Member, 0, len(p.members))
	for _, m := range p.members {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// advertised returns the host and port other members reach this one at:
// advertise's, else the bound ones; an error if that host is a wildcard.
func advertised(advertise, host string, port int) (string, int, error) {
	if advertise == "" {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			return "", 0, fmt.Errorf("gossip: bind address %q listens on every interface; set an advertise address other members can reach", net.JoinHostPort(host, strconv.Itoa(port)))
		}
		return host, port, nil
	}
	h, ps, err := net.SplitHostPort(advertise)
	if err != nil {
		return "", 0, fmt.Errorf("gossip: advertise address %q: %v", advertise, err)
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, fmt.Errorf("gossip: advertise address %q: port %q is not 1-65535", advertise, ps)
	}
	if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
		return "", 0, fmt.Errorf("gossip: advertise address %q is a wildcard; name the host other members reach", advertise)
	}
	return h, p, nil
}

// timings returns memberlist's configuration for a member bound to host:
// on loopback (a local deployment) failures are found in about 2 s; on
// any other address, memberlist's LAN profile (a probe a second, 500 ms to
// answer), which tolerates a real network's delays. Both gossip five
// times a second (the local profile's ten doubles an idle process's
// wakeups for no faster detection: the probes detect) and do not compress
// (messages are a few hundred bytes; compressing them costs allocations
// and saves nothing).
func timings(host string) *memberlist.Config {
	var mc *memberlist.Config
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeInterval = 500 * time.Millisecond
		mc.ProbeTimeout = 200 * time.Millisecond
		mc.SuspicionMult = 2
		mc.PushPullInterval = 5 * time.Second
	} else {
		mc = memberlist.DefaultLANConfig()
	}
	mc.GossipInterval = 200 * time.Millisecond
	mc.EnableCompression = false
	return mc
}

// Close leaves the pool (so others learn at once) and stops.
func (p *Pool) Close() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	close(p.done)
	p.wg.Wait()
	p.ml.Leave(500 * time.Millisecond)
	return p.ml.Shutdown()
}

// loop pushes meta changes and keeps trying the seeds until one answers.
func (p *Pool) loop() {
	defer p.wg.Done()
	joined := len(p.cfg.Seeds) == 0
	t := time.NewTicker(p.cfg.Refresh)
	defer t.Stop()
	nextJoin := time.Now()
	for {
		if !joined && time.Now().After(nextJoin) {
			if _, err := p.ml.Join(p.cfg.Seeds); err == nil {
				joined = true
			} else {
				p.log.Debug("no gossip seed answered yet", "seeds", strings.Join(p.cfg.Seeds, ","), "err", err)
				nextJoin = time.Now().Add(time.Second)
			}
		}
		if b, err := msgpack.Marshal(p.cfg.Meta()); err == nil {
			p.mu.Lock()
			changed := !bytes.Equal(b, p.lastMeta)
			p.mu.Unlock()
			if changed {
				p.ml.UpdateNode(time.Second)
			}
		}
		select {
		case <-p.done:
			return
		case <-t.C:
		}
	}
}

// record updates the member table and reports the change.
func (p *Pool) record(n *memberlist.Node, alive bool) {
	var meta Meta
	if len(n.Meta) > 0 {
		if err := msgpack.Unmarshal(n.Meta, &meta); err != nil {
			p.log.Warn("undecodable gossip meta ignored", "member", n.Name, "err", err)
			return
		}
	}
	p.mu.Lock()
	m := p.members[n.Name]
	if m == nil {
		m = &Member{Name: n.Name}
		p.members[n.Name] = m
	}
	if m.Alive != alive {
		m.Since = time.Now()
	}
	if !alive && len(n.Meta) == 0 {
		meta = m.Meta // a dead notice may carry no meta: keep the last known
	}
	m.Meta, m.Alive = meta, alive
	snap := *m
	p.mu.Unlock()
	if p.cfg.OnChange != nil {
		p.evMu.Lock()
		p.cfg.OnChange(snap)
		p.evMu.Unlock()
	}
}

type delegate Pool

func (d *delegate) NodeMeta(limit int) []byte {
	b, err := msgpack.Marshal(d.cfg.Meta())
	if err != nil || len(b) > limit {
		d.log.Error("gossip meta too large or unencodable", "bytes", len(b), "limit", limit, "err", err)
		return nil
	}
	d.mu.Lock()
	d.lastMeta = b
	d.mu.Unlock()
	return b
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

type events Pool

func (e *events) NotifyJoin(n *memberlist.Node)   { (*Pool)(e).record(n, true) }
func (e *events) NotifyUpdate(n *memberlist.Node) { (*Pool)(e).record(n, true) }
func (e *events) NotifyLeave(n *memberlist.Node)  { (*Pool)(e).record(n, false) }

// slogWriter sends memberlist's log lines to slog at debug level (warnings
// and errors at their level).
type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(b []byte) (int, error) {
	line := strings.TrimSpace(string(b))
	switch {
	case strings.Contains(line, "use of closed network connection"):
		w.log.Debug(line) // shutting down
	case strings.Contains(line, "[ERR]"):
		w.log.Error(line)
	case strings.Contains(line, "[WARN]"):
		w.log.Debug(line) // memberlist warns on every refused probe of a dead member
	default:
		w.log.Debug(line)
	}
	return len(b), nil
}

var _ io.Writer = (*slogWriter)(nil)

// WaitFor polls Members until cond holds or ctx ends; for tests and startup.
func (p *Pool) WaitFor(ctx context.Context, cond func([]Member) bool) error {
	for {
		if cond(p.Members()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
