package rpc

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// ErrConnClosed is returned for calls on a connection that closed (or broke)
// before their response arrived; the request may or may not have been
// applied. errors.Is(err, ErrConnClosed) holds for every such error.
var ErrConnClosed = errors.New("rpc: connection closed")

// DialConfig configures Dial (and a Pool). Zero (or negative) numbers mean
// the default (DefaultDialConfig).
type DialConfig struct {
	Client   string        // name sent in HELLO
	Token    string        // auth token sent in HELLO
	Session  uint64        // session id sent in HELLO; servers ignore it (each mutating request carries its own)
	MaxFrame int           // largest response frame accepted
	OutQueue int           // requests queued for writing
	Timeout  time.Duration // dial + TLS + HELLO timeout when ctx has no deadline
	// TLS, if set, makes Dial a TLS client with this config; an empty
	// ServerName defaults to the host of the address dialled.
	TLS *tls.Config
	// IdleTimeout: a Pool closes and redials a connection on which no call
	// was made for this long, well before the server's own idle close, so a
	// pooled call never races it.
	IdleTimeout time.Duration
	// Dialer, if set, opens the connection ("tcp", addr) instead of a
	// net.Dialer; TLS and HELLO run over what it returns.
	Dialer ContextDialer
}

// ContextDialer opens network connections; *net.Dialer is one.
type ContextDialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// DefaultDialConfig returns a DialConfig with every default set; Client,
// Token and Session are empty.
func DefaultDialConfig() DialConfig {
	return DialConfig{
		// MaxFrame: the protocol's default frame limit (8 MiB).
		MaxFrame: wire.DefaultMaxFrame,
		// OutQueue: requests waiting for the writer; beyond this a call
		// waits (until its ctx is done) and Send drops the request.
		OutQueue: 8192,
		// Timeout: how long dialling and HELLO may take when the caller's
		// ctx has no deadline.
		Timeout: 5 * time.Second,
		// IdleTimeout: 5 minutes, a third of the server's default 15.
		IdleTimeout: 5 * time.Minute,
	}
}

// withDefaults fills zero or negative numbers with DefaultDialConfig's
// values.
func (c DialConfig) withDefaults() DialConfig {
	d := DefaultDialConfig()
	positiveOr(&c.MaxFrame, d.MaxFrame)
	positiveOr(&c.OutQueue, d.OutQueue)
	positiveOr(&c.Timeout, d.Timeout)
	positiveOr(&c.IdleTimeout, d.IdleTimeout)
	return c
}

// Validate reports every setting that is out of range, or nil. Zero means
// the default and is accepted; Dial fills it in and reads a negative number
// as the default too.
func (c DialConfig) Validate() error {
	var errs []error
	notNegative(&errs, "MaxFrame", c.MaxFrame)
	notNegative(&errs, "OutQueue", c.OutQueue)
	notNegative(&errs, "Timeout", c.Timeout)
	notNegative(&errs, "IdleTimeout", c.IdleTimeout)
	return errors.Join(errs...)
}

// positiveOr sets *v to d unless *v is positive: an optional setting's
// zero, or negative, value means its default.
func positiveOr[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// notNegative adds to errs that the setting name is negative, if it is.
func notNegative[T int | time.Duration](errs *[]error, name string, v T) {
	if v < 0 {
		*errs = append(*errs, fmt.Errorf("%s %v is negative", name, v))
	}
}

// Conn is a client connection on which many calls run concurrently; their
// responses are matched by request ID and may arrive in any order. Safe for
// concurrent use.
type Conn struct {
	nc       net.Conn
	addr     string
	out      chan outFrame
	nextID   atomic.Uint64
	maxFrame int
	// serverMax is the largest request payload the server announced in its
	// HELLO reply; 0 until then, or from a server that does not announce it.
	serverMax atomic.Int64
	lastUsed  atomic.Int64 // unix nanoseconds of the last Call or Send

	mu        sync.Mutex
	pending   map[uint64]*Pending
	deadlines dueQueue[*Pending] // of the pending calls made with CallUntil
	err       error              // set once when the connection dies

	done chan struct{}
}

type outFrame struct {
	req *wire.Request
}

// Dial connects to addr (over TLS if cfg.TLS is set) and performs the HELLO
// exchange.
func Dial(ctx context.Context, addr string, cfg DialConfig) (*Conn, error) {
	cfg = cfg.withDefaults()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	var d ContextDialer = &net.Dialer{}
	if cfg.Dialer != nil {
		d = cfg.Dialer
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, errors.Join(ErrConnClosed, err))
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetKeepAlive(true)
		tc.SetKeepAlivePeriod(15 * time.Second)
	}
	if cfg.TLS != nil {
		if nc, err = clientTLS(ctx, nc, addr, cfg.TLS); err != nil {
			return nil, err
		}
	}
	c := &Conn{
		nc: nc, addr: addr, maxFrame: cfg.MaxFrame,
		out:     make(chan outFrame, cfg.OutQueue),
		pending: map[uint64]*Pending{},
		done:    make(chan struct{}),
	}
	go c.readLoop()
	go c.writeLoop()
	resp, err := c.Call(ctx, &wire.Request{Op: wire.OpHello, Hello: &wire.Hello{
		Version: wire.ProtocolVersion, Client: cfg.Client, Token: cfg.Token, Session: cfg.Session,
	}})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("hello %s: %w", addr, err)
	}
	if err := resp.Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("hello %s: %w", addr, err)
	}
	if resp.Hello != nil {
		c.serverMax.Store(int64(resp.Hello.MaxFrame))
	}
	return c, nil
}

// ServerMaxFrame returns the largest request payload the server reads, as
// its HELLO reply announced it, or DefaultMaxFrame from a server that did
// not announce one. A request over it fails alone with TOO_LARGE, before it
// is sent, and the connection stays up.
func (c *Conn) ServerMaxFrame() int {
	if n := c.serverMax.Load(); n > 0 {
		return int(n)
	}
	return wire.DefaultMaxFrame
}

// clientTLS runs the TLS handshake on nc, closing it on failure.
func clientTLS(ctx context.Context, nc net.Conn, addr string, cfg *tls.Config) (net.Conn, error) {
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		} else {
			cfg.ServerName = addr
		}
	}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%w: tls handshake with %s: %w", ErrConnClosed, addr, err)
	}
	return tc, nil
}

// Addr returns the address dialled.
func (c *Conn) Addr() string { return c.addr }

// Done is closed when the connection is dead.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection died, or nil while it is alive.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection; pending calls fail with ErrConnClosed.
func (c *Conn) Close() error {
	c.die(fmt.Errorf("%w: closed by caller", ErrConnClosed))
	return nil
}

func (c *Conn) die(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	pending := c.pending
	c.pending = nil
	c.stopDeadlinesLocked()
	close(c.done)
	c.mu.Unlock()
	c.nc.Close()
	for _, p := range pending {
		close(p.ch)
		p.notified()
	}
}

// Call sends req (its ID is assigned here; TimeoutMs is filled from ctx's
// deadline if unset) and waits for the response. A non-OK response is
// returned as a response, not an error; errors are for transport failures
// (wrapping ErrConnClosed) and ctx ending.
func (c *Conn) Call(ctx context.Context, req *wire.Request) (*wire.Response, error) {
	return c.CallUntil(ctx, time.Time{}, req)
}

// CallUntil is Call that also ends, with context.DeadlineExceeded, at
// deadline (zero: none), which sets TimeoutMs too if it comes before
// ctx's. The connection's one timer keeps the deadline, so a ctx without
// one costs the call no timer of its own.
func (c *Conn) CallUntil(ctx context.Context, deadline time.Time, req *wire.Request) (*wire.Response, error) {
	p, err := c.start(ctx, deadline, req)
	if err != nil {
		return nil, err
	}
	resp, err := p.Wait(ctx)
	if err != nil {
		p.Abandon()
	}
	return resp, err
}

// Pending is a call sent on a Conn whose answer has not been taken yet:
// Wait takes it, Abandon gives it up. A Pending is used by one goroutine
// at a time.
type Pending struct {
	c        *Conn
	id       uint64
	ch       chan *wire.Response
	notify   func()    // StartNotify's; nil for Start
	deadline time.Time // CallUntil's; zero for none
	idx      int       // index in c.deadlines' heap; -1 when not in it
}

// notified calls the call's notify, if it has one, once its answer (or
// the connection's death) is ready for Wait.
func (p *Pending) notified() {
	if p.notify != nil {
		p.notify()
	}
}

// Start sends req as Call does and returns without waiting for the answer.
// ctx bounds the queueing of the request and, if TimeoutMs is unset, sets
// it. The call stays pending, keeping its connection from being dropped as
// idle, until Wait returns its answer or Abandon is called.
func (c *Conn) Start(ctx context.Context, req *wire.Request) (*Pending, error) {
	return c.start(ctx, time.Time{}, req)
}

// start is Start with CallUntil's deadline.
func (c *Conn) start(ctx context.Context, deadline time.Time, req *wire.Request) (*Pending, error) {
	if req.TimeoutMs == 0 {
		ms, err := untilMs(ctx, deadline)
		if err != nil {
			return nil, err
		}
		req.TimeoutMs = ms
	}
	p, err := c.register(req, nil, deadline)
	if err != nil {
		return nil, err
	}
	select {
	case c.out <- outFrame{req: req}:
		return p, nil
	case <-ctx.Done():
		c.forget(req.ID)
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.Err()
	}
}

// ErrQueueFull is StartNotify's error when the connection's send queue
// has no room: nothing was sent.
var ErrQueueFull = errors.New("rpc: send queue full")

// StartNotify sends req as Start does without ever waiting: it fails with
// ErrQueueFull when the send queue has no room, and then nothing was sent.
// notify is called once, when Wait would return at once: by the
// connection's reader when the answer arrives (by its writer for a request
// it could not encode), or by whichever goroutine closes the connection.
// It must not block or take a lock its caller might hold; an answer that
// arrives after Abandon is dropped without it. req's TimeoutMs is sent as
// set (0: the server's default).
func (c *Conn) StartNotify(req *wire.Request, notify func()) (*Pending, error) {
	p, err := c.register(req, notify, time.Time{})
	if err != nil {
		return nil, err
	}
	select {
	case c.out <- outFrame{req: req}:
		return p, nil
	case <-c.done:
		return nil, c.Err()
	default:
		c.forget(req.ID)
		return nil, fmt.Errorf("%w: %s", ErrQueueFull, c.addr)
	}
}

// register gives req its ID and records its call as pending, until
// deadline if it is not zero.
func (c *Conn) register(req *wire.Request, notify func(), deadline time.Time) (*Pending, error) {
	req.ID = c.nextID.Add(1)
	c.lastUsed.Store(time.Now().UnixNano())
	p := &Pending{c: c, id: req.ID, ch: make(chan *wire.Response, 1), notify: notify, deadline: deadline, idx: -1}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	c.pending[req.ID] = p
	if !deadline.IsZero() {
		c.addDeadlineLocked(p)
	}
	return p, nil
}

// Wait waits for the call's answer until ctx ends. If ctx ends first the
// call stays pending: Wait may be called again, or Abandon. Once the
// connection has died every Wait returns its error.
func (p *Pending) Wait(ctx context.Context) (*wire.Response, error) {
	select {
	case resp, ok := <-p.ch:
		switch {
		case !ok:
			return nil, p.c.Err()
		case resp == expired:
			return nil, context.DeadlineExceeded
		}
		return resp, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Abandon gives the call up: an answer that comes later is dropped.
func (p *Pending) Abandon() { p.c.forget(p.id) }

// Alive reports whether the call's connection is still up, so that its
// answer may still come.
func (p *Pending) Alive() bool { return p.c.Err() == nil }

// Send queues a one-way request without waiting. It returns false (and
// drops req) if the connection is dead or its queue is full.
func (c *Conn) Send(req *wire.Request) bool {
	req.ID = c.nextID.Add(1)
	c.lastUsed.Store(time.Now().UnixNano())
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.out <- outFrame{req: req}:
		return true
	default:
		return false
	}
}

// Calls returns how many calls on c await their answers (neither taken
// by Wait nor abandoned).
func (c *Conn) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// idleFor returns how long no call was made on c, or 0 while one is
// waiting for its response.
func (c *Conn) idleFor() time.Duration {
	if c.Calls() > 0 {
		return 0
	}
	return time.Since(time.Unix(0, c.lastUsed.Load()))
}

func (c *Conn) forget(id uint64) {
	c.mu.Lock()
	if p := c.pending[id]; p != nil {
		delete(c.pending, id)
		c.removeDeadlineLocked(p)
	}
	c.mu.Unlock()
}

func (c *Conn) readLoop() {
	fr := wire.NewFrameReader(bufio.NewReaderSize(c.nc, 64<<10), c.maxFrame)
	for {
		payload, err := fr.Next()
		if err != nil {
			c.die(fmt.Errorf("%w: %s: read: %v", ErrConnClosed, c.addr, err))
			return
		}
		resp, err := wire.DecodeResponse(payload)
		if err != nil {
			c.die(fmt.Errorf("%w: %s: %v", ErrConnClosed, c.addr, err))
			return
		}
		if resp.ID == 0 {
			// A connection-level error: the server closes after it.
			c.die(fmt.Errorf("%w: %s: server said %v", ErrConnClosed, c.addr, resp.Err()))
			return
		}
		c.deliver(resp.ID, resp)
	}
}

func (c *Conn) writeLoop() {
	w := bufio.NewWriterSize(deadlineWriter{c.nc, 30 * time.Second}, 64<<10)
	var buf []byte
	for {
		var f outFrame
		select {
		case f = <-c.out:
		case <-c.done:
			return
		}
		for {
			var err error
			buf, err = wire.AppendEncode(buf[:0], f.req)
			switch {
			case err != nil:
				// Not the connection's fault: fail just this call.
				c.failCall(f.req.ID, wire.Invalid, err.Error())
			case len(buf)-wire.HeaderSize > c.sendLimit():
				c.failCall(f.req.ID, wire.TooLarge, fmt.Sprintf("request of %d bytes is over the %d-byte frame limit", len(buf)-wire.HeaderSize, c.sendLimit()))
			default:
				if _, err := w.Write(buf); err != nil {
					c.die(fmt.Errorf("%w: %s: write: %v", ErrConnClosed, c.addr, err))
					return
				}
			}
			if cap(buf) > 1<<20 {
				buf = nil
			}
			more, ok := next(c.out)
			if !ok {
				break
			}
			f = more
		}
		if err := w.Flush(); err != nil {
			c.die(fmt.Errorf("%w: %s: write: %v", ErrConnClosed, c.addr, err))
			return
		}
	}
}

// sendLimit is the largest request payload written: the server's
// announced limit, else (before HELLO's reply, or from a server that does
// not announce it) the connection's own MaxFrame.
func (c *Conn) sendLimit() int {
	if n := c.serverMax.Load(); n > 0 {
		return int(n)
	}
	return c.maxFrame
}

func (c *Conn) failCall(id uint64, code wire.Code, msg string) {
	c.deliver(id, &wire.Response{ID: id, Code: code, Message: msg})
}

// deliver hands resp to call id, if it is still pending.
func (c *Conn) deliver(id uint64, resp *wire.Response) {
	c.mu.Lock()
	p := c.pending[id]
	if p != nil {
		delete(c.pending, id)
		c.removeDeadlineLocked(p)
	}
	c.mu.Unlock()
	if p != nil {
		p.ch <- resp
		p.notified()
	}
}
