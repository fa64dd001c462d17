package rpc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// preAuthBuffer is the read buffer of a connection until HELLO succeeded.
const preAuthBuffer = 512

// sendBuffer is the kernel send buffer of an accepted connection (the
// kernel doubles it). An answer counts as written, earning its peer room
// (window), once the kernel took it, so this bounds what a peer that
// reads nothing can earn: without it Linux grows the buffer to 4 MiB.
// 256 KiB keeps a local network's round trip (under 1 ms) at more than
// 500 MB/s per connection.
const sendBuffer = 256 << 10

// serverConn is one accepted connection. Until HELLO succeeded it is served
// by run's goroutine alone, with small buffers and no writer goroutine; then
// a reader (run) and a writer goroutine share it.
type serverConn struct {
	s      *Server
	raw    net.Conn // the accepted connection; closed by close
	host   string   // the peer's IP address, for MaxConnsPerIP
	ctx    context.Context
	cancel context.CancelFunc
	// values is ctx without its cancellation, for the requests' contexts,
	// which end through reqs; set after HELLO.
	values context.Context
	reqs   deadlines

	// Set before the writer and handlers start; read-only after.
	conn    net.Conn // raw, or the TLS connection over it
	rd      connReader
	out     chan *wire.Response
	sem     chan struct{}
	budget  *byteBudget // this connection's request bytes being handled and answer bytes queued
	reserve int         // the least a request holds of budget (minReserve)
	win     *window     // answers owed: a peer earns room by reading
	// unearned is the allowance shared by the connections from host
	// (ServerConfig.MaxUnearnedPerIP); set by accept.
	unearned *allowance

	inflight  atomic.Int32 // requests being handled
	closeOnce sync.Once
	done      chan struct{}
	reason    string
	last      string // reason to close with once the writer reaches the nil sentinel
	// halfClose makes the writer, at the nil sentinel, close only the
	// sending side and close flushed (flushAndLinger); set with flushed
	// by the reader before it queues the sentinel.
	halfClose bool
	flushed   chan struct{}
	handlers  sync.WaitGroup
}

// connReader reads through a bufio.Reader that is replaced by a larger one
// once the peer has authenticated.
type connReader struct{ br *bufio.Reader }

func (r *connReader) Read(p []byte) (int, error) { return r.br.Read(p) }

func (c *serverConn) close(reason string) {
	c.closeOnce.Do(func() {
		c.reason = reason
		c.cancel()
		close(c.done)
		c.reqs.close()
		c.raw.Close()
	})
}

func (c *serverConn) run() {
	defer c.s.wg.Done()
	defer c.s.forget(c)
	fr, ok := c.handshake()
	if ok {
		c.out = make(chan *wire.Response, c.s.cfg.OutQueue)
		c.sem = make(chan struct{}, c.s.cfg.MaxInFlight)
		c.budget = newByteBudget(c.s.cfg.MaxBytesInFlight)
		c.reserve = min(minReserve, c.s.cfg.MaxBytesInFlight/64)
		c.win = &window{max: c.s.cfg.MaxInFlight, shared: c.unearned, alive: func() bool { return !peerGone(c.raw) }}
		writerDone := make(chan struct{})
		go func() {
			defer close(writerDone)
			c.writeLoop()
		}()
		c.readLoop(fr)
		c.handlers.Wait()
		<-writerDone
		c.win.releaseHeld()
	}
	c.close("connection ended") // no-op if already closed
	c.s.log.Debug("connection closed", "remote", c.raw.RemoteAddr().String(), "reason", c.reason)
}

// handshake runs the TLS handshake and HELLO within HelloTimeout, answering
// on this goroutine. It returns the frame reader to go on with, or false
// once the connection is closed.
func (c *serverConn) handshake() (*wire.FrameReader, bool) {
	cfg := &c.s.cfg
	deadline := time.Now().Add(cfg.HelloTimeout)
	c.raw.SetDeadline(deadline)
	c.conn = c.raw
	if cfg.TLS != nil {
		tc := tls.Server(c.raw, cfg.TLS)
		if err := tc.Handshake(); err != nil {
			c.handshakeFailed(err, deadline)
			return nil, false
		}
		c.conn = tc
	}
	c.rd.br = bufio.NewReaderSize(c.conn, preAuthBuffer)
	fr := wire.NewFrameReader(&c.rd, cfg.PreAuthMaxFrame)
	payload, err := fr.Next()
	if err != nil {
		if isTimeout(err) {
			c.s.helloTimeouts.Add(1)
			c.close("no HELLO within " + cfg.HelloTimeout.String())
			return nil, false
		}
		if errors.Is(err, wire.ErrFrameTooLarge) {
			c.refuseHello(&wire.Response{Code: wire.TooLarge, Message: err.Error() + " before HELLO"}, deadline, drainLimit(err))
			return nil, false
		}
		c.close("before HELLO: " + err.Error())
		return nil, false
	}
	req, err := wire.DecodeRequest(payload)
	if err != nil {
		c.refuseHello(wire.Errorf(0, wire.Invalid, "frame at offset 0: %v", err), deadline, 0)
		return nil, false
	}
	if req.ID == 0 {
		c.refuseHello(idZero(req), deadline, 0)
		return nil, false
	}
	if req.Op != wire.OpHello || req.Hello == nil {
		c.refuseHello(wire.Errorf(req.ID, wire.Invalid, "first request must be HELLO, got %v", req.Op), deadline, 0)
		return nil, false
	}
	resp := c.hello(req, deadline)
	if resp.Code != wire.OK {
		c.refuseHello(resp, deadline, 0)
		return nil, false
	}
	if err := c.writeDirect(resp); err != nil {
		c.close("write HELLO reply: " + err.Error())
		return nil, false
	}
	c.conn.SetDeadline(time.Time{})
	c.upgradeReader()
	fr.SetMax(cfg.MaxFrame)
	return fr, true
}

// handshakeFailed counts and closes a connection whose TLS handshake
// failed; a plaintext client is told, in plaintext, that TLS is required.
func (c *serverConn) handshakeFailed(err error, deadline time.Time) {
	if isTimeout(err) {
		c.s.helloTimeouts.Add(1)
		c.close("no TLS handshake within " + c.s.cfg.HelloTimeout.String())
		return
	}
	c.s.tlsFailures.Add(1)
	c.s.log.Debug("TLS handshake failed", "remote", c.raw.RemoteAddr().String(), "err", err)
	var rhe tls.RecordHeaderError
	if errors.As(err, &rhe) && rhe.Conn != nil {
		c.conn = rhe.Conn
		c.refuseHello(&wire.Response{Code: wire.Unauthorized, Message: "this port requires TLS"}, deadline, 0)
		return
	}
	c.close("TLS handshake: " + err.Error())
}

// refuseHello answers before HELLO succeeded and closes, reading away up
// to max(drain, 1 MiB) bytes the peer may still be sending (lingerClose).
func (c *serverConn) refuseHello(resp *wire.Response, deadline time.Time, drain int64) {
	c.s.log.Debug("closing connection", "remote", c.raw.RemoteAddr().String(), "code", resp.Code.String(), "reason", resp.Message)
	if err := c.writeDirect(resp); err == nil {
		lingerClose(c.conn, deadline, max(drain, 1<<20))
	}
	c.close(resp.Code.String() + ": " + resp.Message)
}

// writeDirect writes one response from the reader goroutine (only before
// the writer goroutine exists).
func (c *serverConn) writeDirect(resp *wire.Response) error {
	buf, err := wire.AppendEncode(nil, resp)
	if err != nil {
		return err
	}
	_, err = c.conn.Write(buf)
	return err
}

// upgradeReader replaces the small pre-HELLO read buffer by a large one,
// keeping whatever the peer already sent after its HELLO.
func (c *serverConn) upgradeReader() {
	var r io.Reader = c.conn
	if n := c.rd.br.Buffered(); n > 0 {
		rest, _ := c.rd.br.Peek(n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(rest)), c.conn)
	}
	c.rd.br = bufio.NewReaderSize(r, 64<<10)
}

func (c *serverConn) hello(req *wire.Request, deadline time.Time) *wire.Response {
	h := req.Hello
	cfg := &c.s.cfg
	if h.Version != wire.ProtocolVersion {
		return wire.Errorf(req.ID, wire.Invalid, "protocol version %d not supported; this %s speaks version %d", h.Version, cfg.Name, wire.ProtocolVersion)
	}
	ci := &ConnInfo{Remote: c.raw.RemoteAddr().String(), Hello: *h}
	if tc, ok := c.conn.(*tls.Conn); ok {
		st := tc.ConnectionState()
		ci.TLS = &st
	}
	switch {
	case cfg.Authenticate != nil:
		actx, cancel := context.WithDeadline(c.ctx, deadline)
		p, err := cfg.Authenticate(actx, ci)
		cancel()
		if err != nil {
			return wire.Errorf(req.ID, wire.Unauthorized, "%s", err.Error())
		}
		ci.Principal = p
	case cfg.Token != "" && !tokenEqual(h.Token, cfg.Token):
		return wire.Errorf(req.ID, wire.Unauthorized, "missing or wrong auth token")
	}
	c.ctx = context.WithValue(c.ctx, connInfoKey{}, ci)
	c.values = context.WithoutCancel(c.ctx)
	return &wire.Response{ID: req.ID, Hello: &wire.HelloReply{
		Version: wire.ProtocolVersion, Server: cfg.Name, ID: cfg.ID,
		Versions: []uint32{wire.ProtocolVersion}, MaxFrame: uint32(cfg.MaxFrame),
	}}
}

// tokenEqual compares in time independent of where, or whether, the tokens
// differ (hashing first hides the length too).
func tokenEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// send queues a response; if the queue is full the peer is not reading and
// the connection is closed.
//
// A queued response's bytes count toward the connection's budget until the
// writer has written it, so a peer that sends requests but does not read
// the answers stops being read once they fill the budget (and is closed
// when a write stalls for WriteTimeout), instead of making the server
// hold, and keep producing, answers without bound.
func (c *serverConn) send(r *wire.Response) {
	c.win.force()
	c.queue(r)
}

// queue is send for the answer to a request that acquired its room in the
// window when it was dispatched.
func (c *serverConn) queue(r *wire.Response) {
	cost := responseCost(r)
	c.budget.add(cost)
	select {
	case c.out <- r:
	case <-c.done:
		c.budget.release(cost)
		c.win.done()
	default:
		c.budget.release(cost)
		c.win.done()
		c.close("outbound queue full: peer not reading")
	}
}

// responseCost is what a queued response holds: its payloads and a fixed
// allowance for the rest.
func responseCost(r *wire.Response) int {
	n := 256 + len(r.Data) + len(r.Message) + 128*len(r.Entries)
	if r.Node != nil || r.Status != nil || r.Routes != nil {
		n += 16 << 10
	}
	return n
}

// minReserve is what one request holds of its connection's budget while
// it is handled, at least (or a 64th of a smaller budget): it bounds how
// many requests a connection has in flight (MaxBytesInFlight/minReserve)
// whatever their answers will weigh, so a peer that pipelines small
// requests for large answers cannot start thousands of them at once.
const minReserve = 64 << 10

// awaitFrame waits for the first byte of the next frame, closing the
// connection after IdleTimeout with no request in flight, and then gives the
// whole frame ReadTimeout to arrive.
func (c *serverConn) awaitFrame() error {
	cfg := &c.s.cfg
	for c.rd.br.Buffered() == 0 {
		c.conn.SetReadDeadline(time.Now().Add(cfg.IdleTimeout))
		_, err := c.rd.br.Peek(1)
		if err == nil {
			break
		}
		if isTimeout(err) && c.inflight.Load() > 0 {
			continue
		}
		return err
	}
	c.conn.SetReadDeadline(time.Now().Add(cfg.ReadTimeout))
	return nil
}

// readLoop reads requests after HELLO until the connection ends.
func (c *serverConn) readLoop(fr *wire.FrameReader) {
	for {
		if err := c.awaitFrame(); err != nil {
			c.readFailed(err)
			return
		}
		payload, err := fr.Next()
		if err != nil {
			c.readFailed(err)
			return
		}
		req, err := wire.DecodeRequestSharing(payload) // a one-way req's Data is payload's, until Handle returns
		if err != nil {
			c.failAndClose(wire.Invalid, fmt.Sprintf("frame at offset %d: %v", fr.Offset()-int64(len(payload))-wire.HeaderSize, err), 0)
			return
		}
		if req.ID == 0 {
			c.failAndClose(wire.Invalid, idZero(req).Message, 0)
			return
		}
		if !req.Op.Known() || req.Op == wire.OpHello {
			c.send(wire.Errorf(req.ID, wire.Invalid, "unknown or repeated op %v", req.Op))
			continue
		}
		if err := req.SessionError(); err != nil {
			c.send(wire.Errorf(req.ID, wire.Invalid, "%v", err))
			continue
		}
		if req.Op.OneWay() {
			c.s.handler.Handle(c.ctx, req)
			continue
		}
		if !c.dispatch(req, len(payload)) {
			return
		}
	}
}

// dispatch starts a handler for req once the connection may owe one more
// answer (window), its size fits the connection's and the server's bytes
// in flight and a slot is free; false if the connection closed while
// waiting.
func (c *serverConn) dispatch(req *wire.Request, size int) bool {
	if !c.win.acquire(c.done) {
		c.close("peer closed while waiting for its address's allowance of unread answers")
		return false
	}
	if !c.budget.acquire(max(size, c.reserve), c.done) {
		return false
	}
	if !c.s.budget.acquire(size, c.done) {
		c.budget.release(max(size, c.reserve))
		return false
	}
	select {
	case c.sem <- struct{}{}:
	case <-c.done:
		c.s.budget.release(size)
		c.budget.release(max(size, c.reserve))
		return false
	}
	c.inflight.Add(1)
	c.handlers.Add(1)
	ctx, start := c.begin(req)
	if h, ok := c.s.handler.(AsyncHandler); ok {
		id, op := req.ID, req.Op
		var once atomic.Bool
		if h.HandleAsync(ctx, req, func(resp *wire.Response) {
			if once.CompareAndSwap(false, true) {
				c.answer(id, op, size, start, ctx, resp)
			}
		}) {
			return true
		}
	}
	go c.handle(ctx, start, req, size)
	return true
}

// readFailed closes the connection after a failed read, with its reason.
func (c *serverConn) readFailed(err error) {
	var fe *wire.FrameError
	switch {
	case errors.Is(err, io.EOF):
		c.flushAndClose("peer closed")
	case errors.Is(err, wire.ErrFrameTooLarge):
		c.failAndClose(wire.TooLarge, err.Error(), drainLimit(err))
	case isTimeout(err) && errors.As(err, &fe):
		c.s.readTimeouts.Add(1)
		c.flushAndClose("frame not received within " + c.s.cfg.ReadTimeout.String() + ": " + err.Error())
	case isTimeout(err):
		c.s.idleClosed.Add(1)
		c.flushAndClose("idle for " + c.s.cfg.IdleTimeout.String())
	case errors.As(err, &fe) && errors.Is(err, io.ErrUnexpectedEOF):
		c.flushAndClose("truncated frame: " + err.Error())
	default:
		c.flushAndClose("read: " + err.Error())
	}
}

// begin starts handling req: its context, which ends at its deadline,
// and when it started (if Observe wants it).
func (c *serverConn) begin(req *wire.Request) (*requestCtx, time.Time) {
	timeout := c.s.cfg.DefaultTimeout
	if req.TimeoutMs > 0 {
		timeout = time.Duration(req.TimeoutMs) * time.Millisecond
	}
	now := time.Now()
	var start time.Time
	if c.s.cfg.Observe != nil {
		start = now
	}
	return c.reqs.newCtx(c.values, now.Add(timeout)), start
}

// handle serves req on its own goroutine.
func (c *serverConn) handle(ctx *requestCtx, start time.Time, req *wire.Request, size int) {
	id, op := req.ID, req.Op
	c.answer(id, op, size, start, ctx, c.s.handler.Handle(ctx, req))
}

// answer queues resp as the answer to request id, ends the request's
// context and releases what the request held (dispatch).
func (c *serverConn) answer(id uint64, op wire.Op, size int, start time.Time, ctx *requestCtx, resp *wire.Response) {
	ctx.cancel()
	if resp == nil {
		resp = wire.Errorf(id, wire.Internal, "no response for %v", op)
	}
	resp.ID = id
	c.queue(resp)
	if c.s.cfg.Observe != nil {
		c.s.cfg.Observe(op, resp.Code, time.Since(start))
	}
	<-c.sem
	c.s.budget.release(size)
	c.budget.release(max(size, c.reserve))
	c.inflight.Add(-1)
	c.handlers.Done()
}

// failAndClose queues a connection-level error (ID 0) after the answers
// to every request read before, then closes once the writer has flushed.
// drain > 0 is what the peer may still be sending of a frame the server
// did not read (its declared length): the server half-closes and reads
// that much away first, so that the peer, still writing it, reads the
// error instead of a reset.
func (c *serverConn) failAndClose(code wire.Code, msg string, drain int64) {
	c.s.log.Info("closing connection", "remote", c.raw.RemoteAddr().String(), "code", code.String(), "reason", msg)
	c.handlers.Wait() // the answers to earlier requests come first: the error is the last frame
	c.send(&wire.Response{Code: code, Message: msg})
	if drain > 0 {
		c.flushAndLinger(code.String()+": "+msg, drain)
		return
	}
	c.flushAndClose(code.String() + ": " + msg)
}

// flushAndClose waits for in-flight handlers, lets the writer flush, then
// closes. Called only from the reader goroutine.
func (c *serverConn) flushAndClose(reason string) {
	c.flush(reason)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
	c.close(reason)
}

// flush waits for in-flight handlers and queues the sentinel after which
// the writer, once it has written everything before it, closes the
// connection (or, with c.halfClose, only its sending side, closing
// c.flushed). Called only from the reader goroutine.
func (c *serverConn) flush(reason string) {
	c.handlers.Wait()
	c.last = reason
	select {
	case c.out <- nil:
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
}

// flushAndLinger is flushAndClose for a peer that may still be sending:
// once the writer has flushed and half-closed, it reads and discards up to
// drain bytes, for at most drainTime or until the peer closes, then closes.
func (c *serverConn) flushAndLinger(reason string, drain int64) {
	c.halfClose = true // read by the writer after it receives the sentinel
	c.flushed = make(chan struct{})
	c.flush(reason)
	select {
	case <-c.flushed:
		c.conn.SetReadDeadline(time.Now().Add(drainTime))
		io.CopyN(io.Discard, &c.rd, drain)
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
	c.close(reason)
}

// drainTime bounds how long a server reads away the rest of a frame it
// refused before closing.
const drainTime = 10 * time.Second

// maxDrain bounds how many bytes of a refused frame a server reads away.
const maxDrain = 64 << 20

// drainLimit is how much of the frame refused with err the server reads
// away before closing: its declared length (plus a little for frames the
// peer pipelined behind it), at most maxDrain.
func drainLimit(err error) int64 {
	var fe *wire.FrameError
	if !errors.As(err, &fe) {
		return 0
	}
	return min(int64(fe.Length)+64<<10, maxDrain)
}

// idZero is the answer to a request with id 0, which the protocol keeps
// for connection-level errors: INVALID, and the connection is closed.
func idZero(req *wire.Request) *wire.Response {
	return wire.Errorf(0, wire.Invalid, "request id 0 (%v): request ids start at 1; id 0 marks connection-level errors", req.Op)
}

// writeLoop writes queued responses, many per flush. A write that cannot
// finish within WriteTimeout (the peer is not reading) closes the
// connection, which frees everything it holds.
func (c *serverConn) writeLoop() {
	w := bufio.NewWriterSize(deadlineWriter{c.conn, c.s.cfg.WriteTimeout}, 64<<10)
	var buf []byte
	for {
		var r *wire.Response
		select {
		case r = <-c.out:
		case <-c.done:
			return
		}
		for r != nil {
			var err error
			buf, err = wire.AppendEncode(buf[:0], r)
			if err != nil {
				c.s.log.Error("encode response", "err", err, "id", r.ID)
				buf, _ = wire.AppendEncode(buf[:0], wire.Errorf(r.ID, wire.Internal, "encode response: %v", err))
			}
			if _, err := w.Write(buf); err != nil {
				c.writeFailed(err)
				return
			}
			c.budget.release(responseCost(r))
			c.win.done()
			if cap(buf) > 1<<20 {
				buf = nil
			}
			more, ok := next(c.out)
			if !ok {
				break
			}
			r = more
		}
		if err := w.Flush(); err != nil {
			c.writeFailed(err)
			return
		}
		if r == nil { // the sentinel: everything before it is written
			if c.halfClose {
				if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
				close(c.flushed)
				return
			}
			c.close(c.last)
			return
		}
	}
}

// next returns the next queued item without waiting; when the queue is
// empty it first lets the goroutines that are about to queue one run, so
// that one flush (one write syscall) carries their frames too.
func next[T any](q chan T) (T, bool) {
	select {
	case v := <-q:
		return v, true
	default:
	}
	runtime.Gosched()
	select {
	case v := <-q:
		return v, true
	default:
		var zero T
		return zero, false
	}
}

// deadlineWriter gives every write to conn its own deadline: a write that
// cannot finish within timeout fails.
type deadlineWriter struct {
	conn    net.Conn
	timeout time.Duration
}

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.conn.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.conn.Write(p)
}

func (c *serverConn) writeFailed(err error) {
	if isTimeout(err) {
		c.s.writeTimeouts.Add(1)
	}
	c.close("write: " + err.Error())
}
