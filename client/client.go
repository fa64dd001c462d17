package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

// Option configures Dial.
type Option func(*config)

type config struct {
	token       string                                                            // HELLO auth token; default none
	name        string                                                            // HELLO client name; default "cleave-go"
	timeout     time.Duration                                                     // per-call deadline when ctx has none; default 10s
	dialTimeout time.Duration                                                     // cap on one dial + HELLO to one router; default 3s
	log         *slog.Logger                                                      // default: discard
	stale       bool                                                              // reads served from any replica's local state; default off
	direct      bool                                                              // file operations sent straight to the owning cluster; default off
	tls         *tls.Config                                                       // TLS to the routers; default plaintext
	dialer      func(ctx context.Context, network, addr string) (net.Conn, error) // opens each connection; default net.Dialer
}

func defaultConfig() config {
	return config{
		name:        "cleave-go",
		timeout:     10 * time.Second,
		dialTimeout: 3 * time.Second,
		log:         slog.New(slog.DiscardHandler),
	}
}

// WithToken sets the auth token sent in HELLO.
func WithToken(token string) Option { return func(c *config) { c.token = token } }

// WithTLS makes the client speak TLS to the routers with cfg (its RootCAs
// verify the routers' certificates; Certificates, if set, are presented
// to a router that asks for a client certificate). The server name
// defaults to each router address's host. The default is plaintext.
func WithTLS(cfg *tls.Config) Option { return func(c *config) { c.tls = cfg } }

// WithClientName sets the client name sent in HELLO (it shows in server logs).
func WithClientName(name string) Option { return func(c *config) { c.name = name } }

// WithDialTimeout caps dialling one router (connect, TLS and HELLO), at
// Dial and at every redial; the next router is tried after it. The default
// is 3s; d <= 0 keeps the default.
func WithDialTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.dialTimeout = d
		}
	}
}

// WithDialer makes every connection the client opens (at Dial and at each
// redial) go through dial, as net.Dialer.DialContext would open it, called with "tcp" and a router's address and a
// context bounded by WithDialTimeout; TLS (WithTLS) and HELLO then run
// over the connection it returns. An error from it counts as that router
// being unreachable. The default is a net.Dialer; nil keeps the default.
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(c *config) { c.dialer = dial }
}

// funcDialer adapts WithDialer's function to rpc's dialer.
type funcDialer struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (d *funcDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return d.dial(ctx, network, addr)
}

// WithTimeout sets the deadline applied to a call (and to Dial) whose ctx
// has none. The default is 10s; d <= 0 keeps the default.
func WithTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithStaleReads makes every read (Get, GetRange, Download, Stat, List,
// Exists) a stale read: served by one replica (chosen per path by the
// router) from its local state, without a ReadIndex round. Faster, and
// available without a quorum, but it may miss writes acknowledged moments
// ago. The default is linearizable reads.
func WithStaleReads() Option { return func(c *config) { c.stale = true } }

// WithDirect makes the client send each file operation straight to a
// member of the cluster that owns its root directory, as the routing table
// (fetched from a router) says, rather than through a router: one hop
// less, so less latency and CPU per call. Calls the cluster does not
// answer by itself — its member is not the leader, the range moved, the
// member is unreachable, slow or refuses the client's credentials — go
// through a router as usual, with the same exactly-once sequence number,
// so nothing fails or applies twice for being direct. Nodes accept the
// deployment's token (WithToken) but know no users: with a user's token or
// none, against nodes that require one, every call goes through a router.
// The default is off.
func WithDirect() Option { return func(c *config) { c.direct = true } }

// WithLogger sets the logger for connection events (redials). The default
// discards them.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// maxSends bounds how often one call is re-sent after its connection broke
// under it, so a request that itself kills the connection is not retried
// for the whole deadline.
const maxSends = 4

// Client talks to a cleave deployment through its routers. It keeps one
// multiplexed connection, redialled on failure. Safe for concurrent use.
type Client struct {
	routers []string
	cfg     config
	log     *slog.Logger
	session uint64        // exactly-once session id, random per Client
	seq     atomic.Uint64 // last sequence number used in session
	direct  *direct       // WithDirect's state; nil without it

	dialMu sync.Mutex // serialises redials; taken before mu

	mu     sync.Mutex
	conn   *rpc.Conn // nil before the first dial or after a break
	next   int       // index into routers to dial first
	closed bool
}

// Dial connects to the first reachable router of routers ("host:port"),
// trying them in order, and returns a Client. It fails fast: each router is
// tried once, and if none answers the error has code UNAVAILABLE (or the
// code a router refused HELLO with, such as UNAUTHORIZED).
func Dial(ctx context.Context, routers []string, opts ...Option) (*Client, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	var rs []string
	for _, r := range routers {
		if r = strings.TrimSpace(r); r != "" {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return nil, &Error{Code: CodeInvalid, Op: "dial", Message: "no router address given"}
	}
	var sid [8]byte
	rand.Read(sid[:])
	c := &Client{
		routers: rs, cfg: cfg,
		log:     cfg.log.With("component", "client"),
		session: binary.BigEndian.Uint64(sid[:]) | 1, // never 0, which means "no session"
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	if _, err := c.getConn(ctx); err != nil {
		return nil, wrapError("dial", "", err)
	}
	if cfg.direct {
		c.direct = newDirect(c, c.dialConfig())
		c.direct.refresh()
	}
	return c, nil
}

// Close closes the connection. Calls in flight and later calls fail with an
// error matching ErrClosed and ErrUnavailable.
func (c *Client) Close() error {
	c.mu.Lock()
	conn := c.conn
	c.conn, c.closed = nil, true
	c.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
	if c.direct != nil {
		c.direct.close()
	}
	return nil
}

func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.cfg.timeout)
}

// getConn returns the live connection, dialling the routers in order
// (starting after the one that last failed) if there is none.
func (c *Client) getConn(ctx context.Context) (*rpc.Conn, error) {
	if conn, err := c.current(); conn != nil || err != nil {
		return conn, err
	}
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	if conn, err := c.current(); conn != nil || err != nil {
		return conn, err // another caller redialled meanwhile
	}
	dc := c.dialConfig()
	c.mu.Lock()
	first := c.next
	c.mu.Unlock()
	var errs []string
	unreachable := func(cause error) error {
		return &Error{Code: CodeUnavailable, Op: "dial",
			Message: "no router reachable: " + strings.Join(errs, "; "), err: cause}
	}
	for i := range c.routers {
		if err := ctx.Err(); err != nil {
			errs = append(errs, "deadline exceeded before "+c.routers[(first+i)%len(c.routers)]+" was tried")
			return nil, unreachable(err)
		}
		idx := (first + i) % len(c.routers)
		addr := c.routers[idx]
		dctx, cancel := context.WithTimeout(ctx, c.cfg.dialTimeout)
		conn, err := rpc.Dial(dctx, addr, dc)
		cancel()
		if err != nil {
			var we *wire.Error
			if errors.As(err, &we) {
				// The router answered and refused: another router will too.
				return nil, &Error{Code: Code(we.Code), Message: we.Message, Op: "dial", err: err}
			}
			if ctx.Err() != nil {
				errs = append(errs, addr+": "+oneLine(ctx.Err()))
				return nil, unreachable(ctx.Err())
			}
			c.log.Debug("dial failed", "router", addr, "err", err)
			errs = append(errs, oneLine(err))
			continue
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			conn.Close()
			return nil, ErrClosed
		}
		c.conn, c.next = conn, idx
		c.mu.Unlock()
		c.log.Debug("connected", "router", addr)
		return conn, nil
	}
	return nil, unreachable(rpc.ErrConnClosed)
}

// dialConfig is how the client dials routers and, in direct mode, nodes.
func (c *Client) dialConfig() rpc.DialConfig {
	dc := rpc.DialConfig{Client: c.cfg.name, Token: c.cfg.token, Session: c.session, TLS: c.cfg.tls}
	if c.cfg.dialer != nil {
		dc.Dialer = &funcDialer{c.cfg.dialer}
	}
	return dc
}

// current returns the live connection, or nil, or ErrClosed.
func (c *Client) current() (*rpc.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.conn != nil && c.conn.Err() == nil {
		return c.conn, nil
	}
	return nil, nil
}

// broken forgets conn after a transport failure so the next call redials,
// starting with the router after conn's.
func (c *Client) broken(conn *rpc.Conn, err error) {
	c.mu.Lock()
	mine := c.conn == conn
	if mine {
		c.conn = nil
		if c.routers[c.next] == conn.Addr() {
			c.next = (c.next + 1) % len(c.routers)
		}
	}
	c.mu.Unlock()
	conn.Close()
	if mine {
		c.log.Info("connection lost; will redial", "router", conn.Addr(), "err", err)
	}
}

// call sends req and returns the OK response or a *Error. Transport
// failures are retried (redialling) until ctx's deadline; a mutating
// request keeps its (session, seq) across retries so it applies once.
func (c *Client) call(ctx context.Context, op string, req *wire.Request) (*wire.Response, error) {
	return c.callWith(ctx, op, req, true)
}

// callWith is call; session false sends a mutation without (session, seq),
// for idempotent ones (OpChunk) that may be pipelined out of order.
//
// The call's deadline is ctx's, else the client's default. The
// connection's timer keeps it (rpc.Conn.CallUntil): a context bounded by
// it is made only if the call must dial or back off.
func (c *Client) callWith(ctx context.Context, op string, req *wire.Request, session bool) (*wire.Response, error) {
	if req.Op != wire.OpStatus && req.Op != wire.OpTable {
		if err := fspath.Validate(req.Path); err != nil {
			return nil, &Error{Code: CodeInvalid, Message: err.Error(), Op: op, Path: req.Path, err: err}
		}
	}
	deadline, bounded := ctx.Deadline()
	if !bounded {
		deadline = time.Now().Add(c.cfg.timeout)
	}
	if c.cfg.stale && !req.Op.Mutating() && req.Op != wire.OpStatus && req.Op != wire.OpTable {
		req.Flags |= wire.FlagStale
	}
	if req.Op.Mutating() && session {
		req.Session, req.Seq = c.session, c.seq.Add(1)
	}
	var (
		sends   int
		backoff time.Duration
		lastErr error
	)
	if c.direct != nil {
		resp, done, sent := c.direct.try(ctx, deadline, req)
		switch {
		case done && resp.Code != wire.OK:
			return nil, respError(op, req.Path, resp)
		case done:
			return resp, nil
		case sent:
			if err := ended(ctx, deadline); err != nil {
				return nil, wrapError(op, req.Path, err)
			}
			sends++
		}
	}
	for {
		conn, err := c.current()
		if conn == nil && err == nil {
			if !bounded {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, deadline)
				defer cancel()
				bounded = true
			}
			conn, err = c.getConn(ctx)
		}
		if err == nil {
			r := *req // Call assigns ID and TimeoutMs: fresh ones per attempt
			var resp *wire.Response
			resp, err = conn.CallUntil(ctx, deadline, &r)
			sends++
			if err == nil {
				if resp.Code != wire.OK {
					return nil, respError(op, req.Path, resp)
				}
				return resp, nil
			}
			if err := ended(ctx, deadline); err != nil {
				return nil, wrapError(op, req.Path, err)
			}
			if !errors.Is(err, rpc.ErrConnClosed) {
				return nil, wrapError(op, req.Path, err)
			}
			var we *wire.Error
			if errors.As(err, &we) {
				return nil, respError(op, req.Path, &wire.Response{Code: we.Code, Message: we.Message})
			}
			c.broken(conn, err)
			if sends >= maxSends {
				return nil, wrapError(op, req.Path, err)
			}
			lastErr = err
			backoff = 0 // the first redial after a break is immediate
			continue
		}
		lastErr = err
		if ended(ctx, deadline) != nil {
			break
		}
		var ce *Error
		if errors.As(err, &ce) && ce.Code != CodeUnavailable || errors.Is(err, ErrClosed) {
			return nil, wrapError(op, req.Path, err)
		}
		backoff = min(max(2*backoff, 20*time.Millisecond), 500*time.Millisecond)
		t := time.NewTimer(min(backoff, time.Until(deadline)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		if ended(ctx, deadline) != nil {
			break
		}
	}
	if sends == 0 && lastErr != nil {
		// Never sent: the outcome is known (nothing happened), so say why.
		return nil, wrapError(op, req.Path, lastErr)
	}
	err := ended(ctx, deadline)
	if err == nil {
		err = context.DeadlineExceeded
	}
	return nil, wrapError(op, req.Path, err)
}

// ended returns why a call bounded by ctx and deadline must stop: ctx's
// error, context.DeadlineExceeded once deadline has passed, else nil.
func ended(ctx context.Context, deadline time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !time.Now().Before(deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Mkdir creates the directory path. Its parent must exist.
func (c *Client) Mkdir(ctx context.Context, path string) error {
	_, err := c.call(ctx, "mkdir", &wire.Request{Op: wire.OpMkdir, Path: path})
	return err
}

// MkdirAll creates the directory path and any missing parents; an existing
// directory is not an error.
func (c *Client) MkdirAll(ctx context.Context, path string) error {
	_, err := c.call(ctx, "mkdir", &wire.Request{Op: wire.OpMkdir, Path: path, Flags: wire.FlagParents})
	return err
}

// PutOption modifies a write (Put, Upload, Create, Write, Append, Rename,
// Copy); Parents, IfAbsent and IfVersion build them. The zero PutOption
// changes nothing.
type PutOption struct {
	flags     wire.Flags // or-ed into the request's flags
	ifVersion uint64     // if nonzero, the request's IfVersion
}

// apply sets o on req.
func (o PutOption) apply(req *wire.Request) {
	req.Flags |= o.flags
	if o.ifVersion != 0 {
		req.IfVersion = o.ifVersion
	}
}

// applyAll sets every option of opts on req, in order.
func applyAll(req *wire.Request, opts []PutOption) {
	for _, o := range opts {
		o.apply(req)
	}
}

// Parents makes Put create missing parent directories.
func Parents() PutOption { return PutOption{flags: wire.FlagParents} }

// Put creates or replaces the file path with data and returns its new
// metadata. data is not retained after Put returns. Up to ChunkSize bytes
// travel in one request; more stream as Upload does (chunks, then one
// atomic COMMIT), so data of any size fits under the frame limit.
func (c *Client) Put(ctx context.Context, path string, data []byte, opts ...PutOption) (*Stat, error) {
	if len(data) > ChunkSize {
		return c.Upload(ctx, path, bytes.NewReader(data), opts...)
	}
	req := &wire.Request{Op: wire.OpPut, Path: path, Data: data}
	return c.statCall(ctx, "put", path, req, opts)
}

// statCall applies opts to req, sends it as op and returns the file's
// metadata from the answer.
func (c *Client) statCall(ctx context.Context, op, path string, req *wire.Request, opts []PutOption) (*Stat, error) {
	applyAll(req, opts)
	resp, err := c.call(ctx, op, req)
	if err != nil {
		return nil, err
	}
	return statOf(op, path, resp)
}

// Get returns the contents of the file path.
func (c *Client) Get(ctx context.Context, path string) ([]byte, error) {
	resp, err := c.call(ctx, "get", &wire.Request{Op: wire.OpGet, Path: path})
	if err != nil {
		return nil, err
	}
	if resp.Data == nil {
		return []byte{}, nil
	}
	return resp.Data, nil
}

// Stat returns the metadata of path.
func (c *Client) Stat(ctx context.Context, path string) (*Stat, error) {
	resp, err := c.call(ctx, "stat", &wire.Request{Op: wire.OpStat, Path: path})
	if err != nil {
		return nil, err
	}
	return statOf("stat", path, resp)
}

func statOf(op, path string, resp *wire.Response) (*Stat, error) {
	if resp.Stat == nil {
		return nil, &Error{Code: CodeInternal, Op: op, Path: path, Message: op + " " + path + ": response carries no stat"}
	}
	s := statFromWire(resp.Stat)
	return &s, nil
}

// Remove removes the file or empty directory path.
func (c *Client) Remove(ctx context.Context, path string) error {
	_, err := c.call(ctx, "rm", &wire.Request{Op: wire.OpRemove, Path: path})
	return err
}

// RemoveAll removes path and, if it is a directory, everything below it.
// Unlike os.RemoveAll, a missing path is an error (ErrNotFound).
func (c *Client) RemoveAll(ctx context.Context, path string) error {
	_, err := c.call(ctx, "rm", &wire.Request{Op: wire.OpRemove, Path: path, Flags: wire.FlagRecursive})
	return err
}

// Exists reports whether path exists.
func (c *Client) Exists(ctx context.Context, path string) (bool, error) {
	resp, err := c.call(ctx, "exists", &wire.Request{Op: wire.OpExists, Path: path})
	if err != nil {
		return false, err
	}
	return resp.Exists, nil
}

// Status returns the deployment's status as the connected router sees it.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	resp, err := c.call(ctx, "status", &wire.Request{Op: wire.OpStatus})
	if err != nil {
		return nil, err
	}
	if resp.Status == nil {
		return nil, &Error{Code: CodeInternal, Op: "status", Message: "status: response carries no status (is the address a router?)"}
	}
	return statusFromWire(resp.Status), nil
}

// Table returns the routing table.
func (c *Client) Table(ctx context.Context) (*RoutingTable, error) {
	resp, err := c.call(ctx, "table", &wire.Request{Op: wire.OpTable})
	if err != nil {
		return nil, err
	}
	if resp.Routes == nil {
		return nil, &Error{Code: CodeInternal, Op: "table", Message: "table: response carries no routing table"}
	}
	return tableFromWire(resp.Routes), nil
}
