package router

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/internal/certs"
	"github.com/cleavefs/cleave/wire"
)

// Config configures a Router. Start from DefaultConfig.
type Config struct {
	// ID names the router in HELLO replies, status and logs. Default "router".
	ID string

	// Listen is the address of the client listener ListenAndServe serves
	// (data ops, STATUS, TABLE and the admin verbs). Default "127.0.0.1:7400".
	Listen string

	// Advertise is the client address this router tells others (status,
	// gossip). Default: the address of the first client listener served.
	Advertise string

	// PeerListen is the address of the peer listener (the meta group's
	// raft traffic and snapshots, ROUTER_INFO, admin verbs passed on to
	// the meta leader), opened by New when Meta is set. Default: this
	// router's address in Meta.Peers. It must differ from Listen.
	PeerListen string
	// PeerAdvertise is the peer address this router tells others. Default:
	// the address the peer listener is bound to.
	PeerAdvertise string

	// DataDir holds the routing table file, DataDir/table.json. Required
	// unless Table is set. Default "" (unset).
	DataDir string

	// Bootstrap is written as the routing table when DataDir has none yet; an
	// existing table file always wins. Default nil: the file must exist.
	Bootstrap *wire.TableInfo

	// Table, if set, is the routing table store and DataDir and Bootstrap are
	// not used (a meta group, or a test). Default nil: a control.FileTable.
	Table control.Table

	// Meta, if set, makes this router a member of the routers' meta group:
	// the routing table is replicated with Raft among the routers
	// (control.MetaTable) over their peer listeners (Meta.Peers are peer
	// addresses), stored under DataDir/meta, and bootstrapped from
	// Bootstrap identically on every router. Default nil: a control.FileTable, for
	// a deployment with a single router. Ignored when Table is set.
	Meta *control.MetaConfig

	// Gossip is the HOST:PORT (UDP and TCP) this router joins the gossip
	// pool on; "" leaves gossip off. GossipSeeds are members to join
	// through (the other routers' gossip addresses).
	Gossip      string
	GossipSeeds []string
	// GossipAdvertise is the HOST:PORT other members reach this router's
	// gossip at; default Gossip (which must then not be a wildcard).
	GossipAdvertise string
	// GossipKeys encrypt and authenticate gossip (internal/gossip
	// Config.Keys; the first is primary). Default none: plaintext gossip.
	GossipKeys [][]byte

	// FollowerReads sends linearizable reads (GET, STAT, LIST, EXISTS) to
	// the member bounded-load consistent hashing picks for the path instead
	// of the leader; a follower answers after a ReadIndex round, so reads
	// stay linearizable and spread over the members. Stale reads
	// (FlagStale) always go there. Default false: on one machine the extra
	// hop costs more than the spreading saves.
	FollowerReads bool

	// TestHoldSplitAt is a test-only switch: the split driver holds every
	// split for TestHoldSplitDuration when it reaches this phase, so tests
	// can crash processes at a chosen phase. Empty (always, outside tests):
	// no holding.
	TestHoldSplitAt       wire.SplitPhase
	TestHoldSplitDuration time.Duration

	// PID is reported in status: os.Getpid() under `cleave up`, else 0.
	PID int

	// Token is the deployment's root credential: a client presenting it in
	// HELLO may do everything, and the router presents it to nodes and
	// other routers. Users the meta group issued tokens to may do what
	// their grants allow (auth.go). Default "" (no authentication: every
	// client may do everything).
	Token string

	// Anonymous is what a client without a token may do when Token is set:
	// control.PermNone (refused in HELLO), PermRead or PermWrite; never
	// admin. Default PermNone.
	Anonymous control.Perm

	// MaxFrame is the largest frame accepted from clients and from nodes.
	// Default wire.DefaultMaxFrame (8 MiB).
	MaxFrame int

	// DefaultTimeout is the deadline of a request that carries no TimeoutMs.
	// Default 10s.
	DefaultTimeout time.Duration

	// AttemptTimeout bounds one try at one node (dial, send, answer), so a
	// node that hangs (paused, partitioned) costs at most this long before the
	// next member is tried. It is capped by the caller's deadline. Default 2s.
	AttemptTimeout time.Duration

	// StatusTimeout bounds how long OpStatus waits for each node. Default 1s.
	StatusTimeout time.Duration

	// Logger receives the router's logs, with component=router. Default
	// slog.Default().
	Logger *slog.Logger

	// HTTP is the HOST:PORT of the HTTP side port (/metrics, /healthz,
	// /readyz; package internal/ops); port 0 picks a free one. It has no
	// auth: bind it to loopback or a private network. Default "" (off).
	HTTP string
	// Pprof adds the Go profiles (/debug/pprof/) to the side port.
	// Default false.
	Pprof bool

	// PeerTLS, if set, puts the peer plane on mutual TLS 1.3: the peer
	// listener requires a client certificate signed by its CA and lets
	// only routers' certificates in (peerauth.go), and every dial to a
	// node's or router's peer listener presents this router's
	// certificate. Default nil: a plaintext peer plane.
	PeerTLS *certs.Reloader
	// TLS, if set, serves the client listener over TLS 1.3 with its
	// certificate; a client certificate, if presented, must be signed by
	// its CA. Default nil: a plaintext client listener.
	TLS *certs.Reloader
	// NodeTLS, if set, is the TLS configuration the router dials the
	// nodes' client listeners with (data ops, STATUS). Default nil:
	// plaintext.
	NodeTLS *tls.Config
}

// DefaultConfig returns a Config with every default filled in (each
// field's doc names its default). DataDir (or Table) must still be set.
func DefaultConfig() Config {
	return Config{
		ID:             "router",
		Listen:         "127.0.0.1:7400",
		MaxFrame:       wire.DefaultMaxFrame,
		DefaultTimeout: 10 * time.Second,
		AttemptTimeout: 2 * time.Second,
		StatusTimeout:  time.Second,
		Logger:         slog.Default(),
	}
}

// withDefaults returns c with every zero optional field set from
// DefaultConfig: ID, Listen, MaxFrame, DefaultTimeout, AttemptTimeout,
// StatusTimeout and Logger; and PeerListen from Meta.Peers. New calls it
// before Validate, so a Config built field by field gets the same
// defaults as one from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.ID == "" {
		c.ID = d.ID
	}
	if c.Listen == "" {
		c.Listen = d.Listen
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = d.MaxFrame
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = d.DefaultTimeout
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = d.AttemptTimeout
	}
	if c.StatusTimeout == 0 {
		c.StatusTimeout = d.StatusTimeout
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	if c.PeerListen == "" && c.Meta != nil {
		_, c.PeerListen = wire.SplitAddrs(c.Meta.Peers[c.Meta.RaftID])
	}
	return c
}

// Validate reports every setting that is missing or out of range in c as
// it is (New validates it after withDefaults).
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.ID == "" {
		bad("ID is empty")
	}
	if c.Listen == "" {
		bad("Listen is empty")
	}
	if c.Meta != nil && c.Table == nil {
		switch c.PeerListen {
		case "":
			bad("PeerListen is empty (and Meta.Peers has none for this router)")
		case wire.FixedPort(c.Listen):
			bad("PeerListen %s is the client listen address; the two planes need separate ports", c.Listen)
		}
	}
	if c.Table == nil && c.DataDir == "" {
		bad("DataDir is empty and no Table is given")
	}
	if c.MaxFrame < 1024 {
		bad("MaxFrame %d is below 1024 bytes", c.MaxFrame)
	}
	if c.DefaultTimeout <= 0 {
		bad("DefaultTimeout %v is not positive", c.DefaultTimeout)
	}
	if c.AttemptTimeout <= 0 {
		bad("AttemptTimeout %v is not positive", c.AttemptTimeout)
	}
	if c.StatusTimeout <= 0 {
		bad("StatusTimeout %v is not positive", c.StatusTimeout)
	}
	if c.Logger == nil {
		bad("Logger is nil")
	}
	if c.Anonymous > control.PermWrite {
		bad("Anonymous %s: anonymous clients may read or write, never more", c.Anonymous)
	}
	if c.Bootstrap != nil && c.Table == nil {
		if err := control.ValidateBootstrap(c.Bootstrap); err != nil {
			bad("Bootstrap: %v", err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("router config: %w", errors.Join(errs...))
}
