package rpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// Handler serves requests. Handle is called concurrently from many
// goroutines, except for one-way ops (wire.Op.OneWay), which are handled in
// order on the connection's reader goroutine and must not block. Handle owns
// req; it returns the response (its ID is set by the server) or nil for a
// one-way op.
type Handler interface {
	Handle(ctx context.Context, req *wire.Request) *wire.Response
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
	Token          string        // if set, HELLO must carry this token
	MaxFrame       int           // largest request frame
	MaxInFlight    int           // concurrent requests per connection
	OutQueue       int           // queued responses per connection before it is closed
	DefaultTimeout time.Duration // deadline for requests that carry none
	Logger         *slog.Logger
	// Observe, if set, is called after each request (not HELLO, not one-way
	// ops) is handled, with its op, the response's code and the time from
	// dispatch to the response being queued. Called concurrently; must not
	// block.
	Observe func(op wire.Op, code wire.Code, d time.Duration)
}

// DefaultServerConfig returns a ServerConfig with every default set; Name,
// ID, Token and Observe are empty.
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
	return errors.Join(errs...)
}

// Server accepts wire-protocol connections. Safe for concurrent use.
type Server struct {
	cfg     ServerConfig
	handler Handler
	log     *slog.Logger

	mu     sync.Mutex
	lns    map[net.Listener]struct{}
	conns  map[*serverConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewServer returns a server that passes every request after HELLO to h.
func NewServer(cfg ServerConfig, h Handler) *Server {
	cfg = cfg.withDefaults()
	return &Server{
		cfg: cfg, handler: h,
		log:   cfg.Logger.With("component", "rpc", "server", cfg.Name),
		lns:   map[net.Listener]struct{}{},
		conns: map[*serverConn]struct{}{},
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
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
			tc.SetKeepAlive(true)
			tc.SetKeepAlivePeriod(15 * time.Second)
		}
		c := &serverConn{
			s: s, nc: nc,
			out:  make(chan *wire.Response, s.cfg.OutQueue),
			sem:  make(chan struct{}, s.cfg.MaxInFlight),
			done: make(chan struct{}),
		}
		c.ctx, c.cancel = context.WithCancel(context.Background())
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.run()
	}
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

type serverConn struct {
	s      *Server
	nc     net.Conn
	ctx    context.Context
	cancel context.CancelFunc
	out    chan *wire.Response
	sem    chan struct{}

	closeOnce sync.Once
	done      chan struct{}
	reason    string
	last      string // reason to close with once the writer reaches the nil sentinel
	handlers  sync.WaitGroup
}

func (c *serverConn) close(reason string) {
	c.closeOnce.Do(func() {
		c.reason = reason
		c.cancel()
		close(c.done)
		c.nc.Close()
	})
}

func (c *serverConn) run() {
	defer c.s.wg.Done()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	c.readLoop()
	c.handlers.Wait()
	<-writerDone
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	c.s.log.Debug("connection closed", "remote", c.nc.RemoteAddr().String(), "reason", c.reason)
}

// send queues a response; if the queue is full the peer is not reading and
// the connection is closed.
func (c *serverConn) send(r *wire.Response) {
	select {
	case c.out <- r:
	case <-c.done:
	default:
		c.close("outbound queue full: peer not reading")
	}
}

func (c *serverConn) readLoop() {
	fr := wire.NewFrameReader(bufio.NewReaderSize(c.nc, 64<<10), c.s.cfg.MaxFrame)
	helloDone := false
	for {
		payload, err := fr.Next()
		if err != nil {
			var fe *wire.FrameError
			switch {
			case errors.Is(err, io.EOF):
				c.flushAndClose("peer closed")
			case errors.Is(err, wire.ErrFrameTooLarge):
				c.failAndClose(wire.TooLarge, err.Error())
			case errors.As(err, &fe) && errors.Is(err, io.ErrUnexpectedEOF):
				c.flushAndClose("truncated frame: " + err.Error())
			default:
				c.flushAndClose("read: " + err.Error())
			}
			return
		}
		req, err := wire.DecodeRequest(payload)
		if err != nil {
			c.failAndClose(wire.Invalid, fmt.Sprintf("frame at offset %d: %v", fr.Offset()-int64(len(payload))-wire.HeaderSize, err))
			return
		}
		if !helloDone {
			if req.Op != wire.OpHello || req.Hello == nil {
				c.failAndClose(wire.Invalid, fmt.Sprintf("first request must be HELLO, got %v", req.Op))
				return
			}
			resp := c.hello(req)
			c.send(resp)
			if resp.Code != wire.OK {
				c.flushAndClose("hello refused: " + resp.Message)
				return
			}
			helloDone = true
			continue
		}
		if !req.Op.Known() || req.Op == wire.OpHello {
			c.send(wire.Errorf(req.ID, wire.Invalid, "unknown or repeated op %v", req.Op))
			continue
		}
		if req.Op.OneWay() {
			c.s.handler.Handle(c.ctx, req)
			continue
		}
		select {
		case c.sem <- struct{}{}:
		case <-c.done:
			return
		}
		c.handlers.Add(1)
		go c.handle(req)
	}
}

func (c *serverConn) hello(req *wire.Request) *wire.Response {
	h := req.Hello
	if h.Version != wire.ProtocolVersion {
		return wire.Errorf(req.ID, wire.Invalid, "protocol version %d not supported; this %s speaks version %d", h.Version, c.s.cfg.Name, wire.ProtocolVersion)
	}
	if c.s.cfg.Token != "" && h.Token != c.s.cfg.Token {
		return wire.Errorf(req.ID, wire.Unauthorized, "missing or wrong auth token")
	}
	return &wire.Response{ID: req.ID, Hello: &wire.HelloReply{
		Version: wire.ProtocolVersion, Server: c.s.cfg.Name, ID: c.s.cfg.ID,
		Versions: []uint32{wire.ProtocolVersion},
	}}
}

func (c *serverConn) handle(req *wire.Request) {
	defer func() {
		<-c.sem
		c.handlers.Done()
	}()
	timeout := c.s.cfg.DefaultTimeout
	if req.TimeoutMs > 0 {
		timeout = time.Duration(req.TimeoutMs) * time.Millisecond
	}
	var start time.Time
	if c.s.cfg.Observe != nil {
		start = time.Now()
	}
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	op := req.Op
	resp := c.s.handler.Handle(ctx, req)
	cancel()
	if resp == nil {
		resp = wire.Errorf(req.ID, wire.Internal, "no response for %v", op)
	}
	resp.ID = req.ID
	c.send(resp)
	if c.s.cfg.Observe != nil {
		c.s.cfg.Observe(op, resp.Code, time.Since(start))
	}
}

// failAndClose queues a connection-level error (ID 0), then closes once the
// writer has flushed everything queued before it.
func (c *serverConn) failAndClose(code wire.Code, msg string) {
	c.s.log.Info("closing connection", "remote", c.nc.RemoteAddr().String(), "code", code.String(), "reason", msg)
	c.send(&wire.Response{Code: code, Message: msg})
	c.flushAndClose(code.String() + ": " + msg)
}

// flushAndClose waits for in-flight handlers, lets the writer flush, then
// closes. Called only from the reader goroutine.
func (c *serverConn) flushAndClose(reason string) {
	c.handlers.Wait()
	c.last = reason
	select {
	case c.out <- nil: // sentinel: writer closes after writing what precedes it
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
	c.close(reason)
}

func (c *serverConn) writeLoop() {
	w := bufio.NewWriterSize(c.nc, 64<<10)
	var buf []byte
	for {
		var r *wire.Response
		select {
		case r = <-c.out:
		case <-c.done:
			return
		}
		// Write everything queued, then flush once: many responses per syscall.
		for r != nil {
			var err error
			buf, err = wire.AppendEncode(buf[:0], r)
			if err != nil {
				c.s.log.Error("encode response", "err", err, "id", r.ID)
				buf, _ = wire.AppendEncode(buf[:0], wire.Errorf(r.ID, wire.Internal, "encode response: %v", err))
			}
			c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := w.Write(buf); err != nil {
				c.close("write: " + err.Error())
				return
			}
			if cap(buf) > 1<<20 {
				buf = nil
			}
			select {
			case r = <-c.out:
				if r == nil {
					w.Flush()
					c.close(c.last)
					return
				}
				continue
			default:
			}
			break
		}
		if r == nil {
			w.Flush()
			c.close(c.last)
			return
		}
		if err := w.Flush(); err != nil {
			c.close("write: " + err.Error())
			return
		}
	}
}
