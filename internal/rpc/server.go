package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// Handler serves requests. Handle is called concurrently from many
// goroutines, except for one-way ops (wire.Op.OneWay), which are handled in
// order on the connection's reader goroutine and must not block. Handle owns
// req (but see below for a one-way request's Data); it returns the response
// (its ID is set by the server) or nil for a one-way op.
//
// The Data of a one-way request (wire.Op.OneWay) is the connection's read
// buffer, valid only until Handle returns: a handler that keeps any of it
// copies it (wire.DecodeRequestSharing).
type Handler interface {
	Handle(ctx context.Context, req *wire.Request) *wire.Response
}

// AsyncHandler is a Handler that can take a request without a goroutine
// of its own. The server offers each request to HandleAsync first, on the
// connection's reader goroutine, so HandleAsync must not block. If it
// returns true it has taken the request and calls reply with the answer
// exactly once, from any goroutine (later calls are ignored), also when
// ctx ends: at the request's deadline, or when the connection closes. If
// it returns false it has not called reply, and Handle serves the request
// on a goroutine as usual. Answering from where the result arrives spares
// a goroutine's start and a wake-up per request.
type AsyncHandler interface {
	Handler
	HandleAsync(ctx context.Context, req *wire.Request, reply func(*wire.Response)) bool
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *wire.Request) *wire.Response

func (f HandlerFunc) Handle(ctx context.Context, req *wire.Request) *wire.Response {
	return f(ctx, req)
}

// ServerConfig configures a Server. Zero (or negative) numbers and a nil
// Logger mean the default (DefaultServerConfig).
type ServerConfig struct {
	Name           string        // "router" or "node", sent in HELLO replies
	ID             string        // server id, sent in HELLO replies
	Token          string        // if set (and Authenticate is nil), HELLO must carry this token
	MaxFrame       int           // largest request frame after HELLO
	MaxInFlight    int           // concurrent requests per connection
	OutQueue       int           // queued responses per connection before it is closed
	DefaultTimeout time.Duration // deadline for requests that carry none
	Logger         *slog.Logger
	// Observe, if set, is called after each request (not HELLO, not one-way
	// ops) is handled, with its op, the response's code and the time from
	// dispatch to the response being queued. Called concurrently; must not
	// block.
	Observe func(op wire.Op, code wire.Code, d time.Duration)

	// TLS, if set, makes every accepted connection a TLS server connection
	// with this config; it decides versions and client authentication. The
	// handshake must finish within HelloTimeout.
	TLS *tls.Config
	// Authenticate, if set, is called on HELLO after the version check,
	// instead of the Token check. A non-nil error answers UNAUTHORIZED with
	// its message and closes the connection; otherwise the principal is kept
	// in the connection's ConnInfo. Called concurrently; ci must not be kept.
	Authenticate func(ctx context.Context, ci *ConnInfo) (principal any, err error)

	HelloTimeout            time.Duration // TLS handshake + HELLO must finish within this
	PreAuthMaxFrame         int           // largest frame accepted before HELLO succeeded
	ReadTimeout             time.Duration // a frame's body must arrive within this of its first byte
	IdleTimeout             time.Duration // a connection with nothing in flight and no request for this long is closed
	WriteTimeout            time.Duration // a blocked response write fails (and closes the connection) after this
	MaxConns                int           // open connections per server
	MaxConnsPerIP           int           // open connections per client IP address
	MaxBytesInFlight        int           // request bytes being handled and answer bytes queued, per connection
	MaxProcessBytesInFlight int           // request bytes being handled by the whole server
	MaxUnearnedPerIP        int           // answers owed, per client IP address, by connections beyond what they have read
}

// DefaultServerConfig returns a ServerConfig with every default set; Name,
// ID, Token, Observe, TLS and Authenticate are empty.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		// MaxFrame: the protocol's default frame limit (8 MiB).
		MaxFrame: wire.DefaultMaxFrame,
		// MaxInFlight: requests handled at once per connection; the reader
		// waits for a slot beyond this.
		MaxInFlight: 4096,
		// OutQueue: responses waiting to be written per connection; a
		// connection whose queue stays full is closed.
		OutQueue: 8192,
		// DefaultTimeout: the deadline of a request that carries none.
		DefaultTimeout: 10 * time.Second,
		// Logger: the process's default logger.
		Logger: slog.Default(),
		// HelloTimeout: a connection that has not finished its TLS
		// handshake and HELLO after 10s is closed.
		HelloTimeout: 10 * time.Second,
		// PreAuthMaxFrame: 64 KiB; a HELLO is a few hundred bytes.
		PreAuthMaxFrame: 64 << 10,
		// ReadTimeout: 30s from a frame's first byte to its last (at least
		// 280 KB/s for an 8 MiB frame).
		ReadTimeout: 30 * time.Second,
		// IdleTimeout: 15 minutes; a Pool drops its idle connections after 5.
		IdleTimeout: 15 * time.Minute,
		// WriteTimeout: a peer that reads nothing for 30s is cut off.
		WriteTimeout: 30 * time.Second,
		// MaxConns: 4096 connections per server.
		MaxConns: 4096,
		// MaxConnsPerIP: 1024 connections from one client IP address.
		MaxConnsPerIP: 1024,
		// MaxBytesInFlight: 64 MiB per connection of requests being
		// handled (each holds at least 64 KiB, so at most 1024 run at
		// once) and answers waiting to be written; the reader stops
		// reading beyond it, so a peer that does not read its answers
		// stops being served.
		MaxBytesInFlight: 64 << 20,
		// MaxProcessBytesInFlight: 512 MiB of requests handled at once by
		// the server; every reader stops reading beyond it.
		MaxProcessBytesInFlight: 512 << 20,
		// MaxUnearnedPerIP: 32 answers owed at once, per client IP
		// address, by connections that owe more than they have had
		// written (a new connection's first window, a peer that stopped
		// reading). Connections that reconnect and never read share these
		// 32 instead of each costing a window of answers; a connection
		// that reads is never held by them.
		MaxUnearnedPerIP: 32,
	}
}

// withDefaults fills zero or negative numbers and a nil Logger with
// DefaultServerConfig's values.
func (c ServerConfig) withDefaults() ServerConfig {
	d := DefaultServerConfig()
	positiveOr(&c.MaxFrame, d.MaxFrame)
	positiveOr(&c.MaxInFlight, d.MaxInFlight)
	positiveOr(&c.OutQueue, d.OutQueue)
	positiveOr(&c.DefaultTimeout, d.DefaultTimeout)
	positiveOr(&c.HelloTimeout, d.HelloTimeout)
	positiveOr(&c.PreAuthMaxFrame, d.PreAuthMaxFrame)
	positiveOr(&c.ReadTimeout, d.ReadTimeout)
	positiveOr(&c.IdleTimeout, d.IdleTimeout)
	positiveOr(&c.WriteTimeout, d.WriteTimeout)
	positiveOr(&c.MaxConns, d.MaxConns)
	positiveOr(&c.MaxConnsPerIP, d.MaxConnsPerIP)
	positiveOr(&c.MaxBytesInFlight, d.MaxBytesInFlight)
	positiveOr(&c.MaxProcessBytesInFlight, d.MaxProcessBytesInFlight)
	positiveOr(&c.MaxUnearnedPerIP, d.MaxUnearnedPerIP)
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}

// Validate reports every setting that is out of range, or nil. Zero means
// the default and is accepted; NewServer fills it in. A negative number is
// reported here (NewServer, which cannot fail, reads it as the default).
func (c ServerConfig) Validate() error {
	var errs []error
	notNegative(&errs, "MaxFrame", c.MaxFrame)
	notNegative(&errs, "MaxInFlight", c.MaxInFlight)
	notNegative(&errs, "OutQueue", c.OutQueue)
	notNegative(&errs, "DefaultTimeout", c.DefaultTimeout)
	notNegative(&errs, "HelloTimeout", c.HelloTimeout)
	notNegative(&errs, "PreAuthMaxFrame", c.PreAuthMaxFrame)
	notNegative(&errs, "ReadTimeout", c.ReadTimeout)
	notNegative(&errs, "IdleTimeout", c.IdleTimeout)
	notNegative(&errs, "WriteTimeout", c.WriteTimeout)
	notNegative(&errs, "MaxConns", c.MaxConns)
	notNegative(&errs, "MaxConnsPerIP", c.MaxConnsPerIP)
	notNegative(&errs, "MaxBytesInFlight", c.MaxBytesInFlight)
	notNegative(&errs, "MaxProcessBytesInFlight", c.MaxProcessBytesInFlight)
	notNegative(&errs, "MaxUnearnedPerIP", c.MaxUnearnedPerIP)
	d := c.withDefaults()
	if d.PreAuthMaxFrame > d.MaxFrame {
		errs = append(errs, fmt.Errorf("PreAuthMaxFrame %d is over MaxFrame %d", d.PreAuthMaxFrame, d.MaxFrame))
	}
	if d.MaxConnsPerIP > d.MaxConns {
		errs = append(errs, fmt.Errorf("MaxConnsPerIP %d is over MaxConns %d", d.MaxConnsPerIP, d.MaxConns))
	}
	if d.MaxBytesInFlight > d.MaxProcessBytesInFlight {
		errs = append(errs, fmt.Errorf("MaxBytesInFlight %d is over MaxProcessBytesInFlight %d", d.MaxBytesInFlight, d.MaxProcessBytesInFlight))
	}
	return errors.Join(errs...)
}

// ConnInfo describes the connection a request arrived on. It is set once
// HELLO succeeded and is not changed afterwards.
type ConnInfo struct {
	Remote    string               // the peer's address
	TLS       *tls.ConnectionState // nil for plaintext
	Hello     wire.Hello           // the HELLO the peer sent
	Principal any                  // what Authenticate returned, or nil
}

type connInfoKey struct{}

// ConnInfoFrom returns the ConnInfo of the connection whose request ctx
// belongs to, or nil outside a server handler.
func ConnInfoFrom(ctx context.Context) *ConnInfo {
	ci, _ := ctx.Value(connInfoKey{}).(*ConnInfo)
	return ci
}

// ServerStats counts what a Server refused or closed. Counters only grow.
type ServerStats struct {
	Conns         int    // open connections
	HelloTimeouts uint64 // closed for not finishing TLS + HELLO in time
	TLSFailures   uint64 // closed for a failed TLS handshake
	ReadTimeouts  uint64 // closed for a frame body not arriving in time
	IdleClosed    uint64 // closed after IdleTimeout with nothing in flight
	WriteTimeouts uint64 // closed because a response could not be written
	Refused       uint64 // refused for MaxConns or MaxConnsPerIP
	BytesInFlight int64  // request bytes being handled now
}

// Server accepts wire-protocol connections. Safe for concurrent use.
type Server struct {
	cfg     ServerConfig
	handler Handler
	log     *slog.Logger
	budget  *byteBudget // request bytes being handled, all connections

	mu     sync.Mutex
	lns    map[net.Listener]struct{}
	conns  map[*serverConn]struct{}
	perIP  map[string]*peerHost // open connections per remote host
	closed bool
	wg     sync.WaitGroup

	helloTimeouts, tlsFailures, readTimeouts, idleClosed atomic.Uint64
	writeTimeouts, refused                               atomic.Uint64
}

// NewServer returns a server that passes every request after HELLO to h.
func NewServer(cfg ServerConfig, h Handler) *Server {
	cfg = cfg.withDefaults()
	return &Server{
		cfg: cfg, handler: h,
		log:    cfg.Logger.With("component", "rpc", "server", cfg.Name),
		budget: newByteBudget(cfg.MaxProcessBytesInFlight),
		lns:    map[net.Listener]struct{}{},
		conns:  map[*serverConn]struct{}{},
		perIP:  map[string]*peerHost{},
	}
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	return ServerStats{
		Conns: n, HelloTimeouts: s.helloTimeouts.Load(), TLSFailures: s.tlsFailures.Load(),
		ReadTimeouts: s.readTimeouts.Load(), IdleClosed: s.idleClosed.Load(),
		WriteTimeouts: s.writeTimeouts.Load(), Refused: s.refused.Load(),
		BytesInFlight: s.budget.inUse(),
	}
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("rpc: server closed")

// Serve accepts connections on ln until Close. It always returns an error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if err := s.accept(nc); err != nil {
			return err
		}
	}
}

// accept starts serving nc, or refuses it when a connection limit is
// reached. It fails only once the server is closed.
func (s *Server) accept(nc net.Conn) error {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetKeepAlive(true)
		tc.SetKeepAlivePeriod(15 * time.Second)
		tc.SetWriteBuffer(sendBuffer)
	}
	host := remoteHost(nc)
	c := &serverConn{s: s, raw: nc, host: host, done: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return ErrServerClosed
	}
	var refusal string
	switch {
	case len(s.conns) >= s.cfg.MaxConns:
		refusal = fmt.Sprintf("too many connections: %d", s.cfg.MaxConns)
	case s.perIP[host] != nil && s.perIP[host].conns >= s.cfg.MaxConnsPerIP:
		refusal = fmt.Sprintf("too many connections from %s: %d", host, s.cfg.MaxConnsPerIP)
	default:
		s.conns[c] = struct{}{}
		ph := s.perIP[host]
		if ph == nil {
			ph = &peerHost{unearned: newAllowance(s.cfg.MaxUnearnedPerIP)}
			s.perIP[host] = ph
		}
		ph.conns++
		c.unearned = ph.unearned
	}
	s.wg.Add(1)
	s.mu.Unlock()
	if refusal != "" {
		s.refused.Add(1)
		s.log.Debug("connection refused", "remote", nc.RemoteAddr().String(), "reason", refusal)
		go s.refuse(nc, refusal)
		return nil
	}
	go c.run()
	return nil
}

// refuse answers a connection over a limit with one UNAVAILABLE
// connection-level error and closes it. A TLS port closes it unanswered: a
// plaintext frame would only confuse a TLS client, and a handshake would
// spend on the refused peer what the limit is there to save.
func (s *Server) refuse(nc net.Conn, reason string) {
	defer s.wg.Done()
	if s.cfg.TLS == nil {
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		buf, _ := wire.AppendEncode(nil, &wire.Response{Code: wire.Unavailable, Message: reason})
		nc.Write(buf)
	}
	lingerClose(nc, time.Now().Add(time.Second), 1<<20)
}

// lingerClose half-closes nc and reads (and discards) up to limit bytes
// the peer still sends until it closes or the deadline passes, then closes
// nc. Closing with unread input would reset the connection and could
// destroy the error frame just written before the peer reads it.
func lingerClose(nc net.Conn, deadline time.Time, limit int64) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	nc.SetReadDeadline(deadline)
	io.Copy(io.Discard, io.LimitReader(nc, limit))
	nc.Close()
}

// peerHost is what the connections from one IP address share.
type peerHost struct {
	conns    int        // open connections
	unearned *allowance // answers owed beyond what was written (MaxUnearnedPerIP)
}

// remoteHost returns the IP address of nc's peer.
func remoteHost(nc net.Conn) string {
	addr := nc.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// forget removes c from the server's connections.
func (s *Server) forget(c *serverConn) {
	s.mu.Lock()
	delete(s.conns, c)
	if ph := s.perIP[c.host]; ph != nil {
		if ph.conns--; ph.conns <= 0 {
			delete(s.perIP, c.host)
		}
	}
	s.mu.Unlock()
}

// Close stops accepting, closes every connection and waits for their
// goroutines. Requests being handled see their context cancelled.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.lns {
		ln.Close()
	}
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close("server shutting down")
	}
	s.wg.Wait()
	return nil
}
