package up

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"
)

// DefaultListen is the router address of a fresh deployment.
const DefaultListen = "127.0.0.1:7400"

// Shape of a fresh deployment.
const (
	DefaultClusters = 2
	DefaultReplicas = 3
	DefaultRouters  = 3 // a meta group that survives the loss of one router
)

// Config configures Run.
type Config struct {
	// DataDir holds up.json, one directory per node (DIR/c1/n1, ...), the
	// router's directory (DIR/router) and the children's logs (DIR/logs).
	// Default "./data".
	DataDir string

	// Listen is the router's client address. "" means the address saved in
	// DIR/up.json, or DefaultListen on the first start.
	Listen string

	// Clusters and Replicas shape a fresh deployment. 0 means the saved
	// shape, or DefaultClusters x DefaultReplicas on the first start. A saved
	// shape always wins: a different request is logged and ignored.
	Clusters int
	Replicas int

	// Routers is the number of routers of a fresh deployment; more than one
	// form the meta group that replicates the routing table. 0 means the
	// saved number, or DefaultRouters on the first start.
	Routers int

	// Binary is the cleave executable started for every child with the
	// `node` and `router` subcommands. Default os.Executable().
	Binary string

	// Command is how the example commands printed once the deployment is up
	// spell the cleave binary. Default: "cleave" if that is on $PATH and is
	// Binary, else the path this process was started with.
	Command string

	// Token is the deployment's root credential: every child gets it as
	// CLEAVE_TOKEN (in the environment, not on its command line), routers
	// give it every right (admin commands need it, or a user granted
	// admin), and the supervisor presents it. Default "": the token saved
	// in DIR/token, made at random on the first start.
	Token string

	// Anonymous is what a client without a token may do: "none", "read" or
	// "write" (never admin). Default "write": a local deployment on
	// loopback is usable without credentials, and only admin commands
	// need the token.
	Anonymous string

	// TLS puts the client listeners of routers and nodes on TLS 1.3 with
	// certificates of the development CA in DIR/certs, and writes the
	// operator's client certificate there (AdminCert). The peer plane is
	// on mutual TLS with that CA whether or not TLS is set. Default false.
	TLS bool

	// clientTLS is how the supervisor dials client listeners: nil, or a
	// configuration trusting the CA when TLS is set (Run fills it in).
	clientTLS *tls.Config

	// LogLevel is passed to every child as --log-level. Default "info".
	LogLevel string

	// LogFormat is passed to every child as --log-format: "text" or
	// "json". Default "text".
	LogFormat string

	// ReadyTimeout bounds the wait for the router to answer and every cluster
	// to have a leader. Default 30s.
	ReadyTimeout time.Duration

	// StopTimeout is how long children get after SIGTERM before SIGKILL.
	// Default 10s.
	StopTimeout time.Duration

	// AutoSplit are the thresholds of automatic splits; zero: none.
	AutoSplit AutoSplit

	// Stdout receives the "cleave is up" banner. Default os.Stdout.
	Stdout io.Writer

	// Logger receives restarts and progress. Default: text to stderr.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		DataDir:      "./data",
		Listen:       "", // saved address, else DefaultListen
		Clusters:     0,  // saved shape, else DefaultClusters
		Replicas:     0,  // saved shape, else DefaultReplicas
		Binary:       "", // os.Executable(), resolved by Run
		Command:      "", // guessed by Run
		Token:        "", // DIR/token, made on the first start
		Anonymous:    "write",
		LogLevel:     "info",
		LogFormat:    "text",
		ReadyTimeout: 30 * time.Second,
		StopTimeout:  10 * time.Second,
		Stdout:       os.Stdout,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
}

// Validate reports what is wrong with c, if anything. Zero durations,
// writers and loggers are allowed: Run fills them from DefaultConfig.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("up: data directory is empty")
	}
	if c.Listen != "" {
		if err := CheckAddr(c.Listen); err != nil {
			return fmt.Errorf("up: --listen: %v", err)
		}
	}
	if c.Clusters < 0 || c.Clusters > 64 {
		return fmt.Errorf("up: --clusters %d: want 1 to 64", c.Clusters)
	}
	if c.Replicas < 0 || c.Replicas > 9 {
		return fmt.Errorf("up: --replicas %d: want 1 to 9", c.Replicas)
	}
	switch c.Anonymous {
	case "", "none", "read", "write":
	default:
		return fmt.Errorf("up: --anonymous %q: want none, read or write", c.Anonymous)
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("up: log level %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		return fmt.Errorf("up: log format %q: want text or json", c.LogFormat)
	}
	if c.ReadyTimeout < 0 || c.StopTimeout < 0 {
		return fmt.Errorf("up: negative timeout")
	}
	if c.AutoSplit.Window < 0 || c.AutoSplit.Interval < 0 || c.AutoSplit.Ops < 0 {
		return fmt.Errorf("up: negative auto-split threshold or window")
	}
	if c.Binary != "" {
		if fi, err := os.Stat(c.Binary); err != nil {
			return fmt.Errorf("up: binary: %w", err)
		} else if fi.IsDir() {
			return fmt.Errorf("up: binary %s is a directory", c.Binary)
		}
	}
	return nil
}

// withDefaults fills the zero fields of c from DefaultConfig.
func (c Config) withDefaults() (Config, error) {
	def := DefaultConfig()
	if c.LogLevel == "" {
		c.LogLevel = def.LogLevel
	}
	if c.LogFormat == "" {
		c.LogFormat = def.LogFormat
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = def.ReadyTimeout
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = def.StopTimeout
	}
	if c.Anonymous == "" {
		c.Anonymous = def.Anonymous
	}
	if c.AutoSplit.Window == 0 {
		c.AutoSplit.Window = 30 * time.Second
	}
	if c.AutoSplit.Interval == 0 {
		c.AutoSplit.Interval = 2 * time.Second
	}
	if c.Stdout == nil {
		c.Stdout = def.Stdout
	}
	if c.Logger == nil {
		c.Logger = def.Logger
	}
	if c.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("up: find own executable: %w", err)
		}
		c.Binary = exe
	}
	if c.Command == "" {
		c.Command = guessCommand(c.Binary)
	}
	return c, nil
}

// AutoSplit are the thresholds at which `cleave up` splits a cluster by
// itself. A zero threshold is off; both zero disables
// auto-split. One split runs at a time.
type AutoSplit struct {
	// Bytes splits a cluster whose leader reports more file bytes in its
	// range than this (wire.NodeStatus.Bytes). 0: off.
	Bytes uint64
	// Ops splits a cluster that served more than this many requests per
	// second (wire.NodeStatus.Ops, summed over its nodes), averaged over
	// Window, the busiest first (a cluster over Bytes goes before any). A
	// cluster whose status names a hot root (wire.ClusterStatus.HotRoot)
	// is not split for its rate: the supervisor logs it once instead. 0:
	// off.
	Ops float64
	// Window is the span Ops is averaged over, and how long a cluster is
	// left alone after a split it took part in. Default 30s.
	Window time.Duration
	// Interval is how often the cluster sizes and rates are polled.
	// Default 2s.
	Interval time.Duration
}

func (a AutoSplit) enabled() bool { return a.Bytes > 0 || a.Ops > 0 }

// CheckAddr reports whether addr is a HOST:PORT with a port from 1 to 65535.
func CheckAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: want HOST:PORT", addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("address %q: port must be a number from 1 to 65535", addr)
	}
	return nil
}
