package rpc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cleavefs/cleave/wire"
)

func startServer(t *testing.T, cfg ServerConfig, h HandlerFunc) (*Server, string) {
	t.Helper()
	srv := NewServer(cfg, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return srv, ln.Addr().String()
}

// readUntilClosed reads frames from nc until the server closes it and
// returns the last response seen, or fails if nc is still open at the
// deadline.
func readUntilClosed(t *testing.T, nc net.Conn, within time.Duration) *wire.Response {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(within))
	fr := wire.NewFrameReader(nc, 0)
	var last *wire.Response
	for {
		p, err := fr.Next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection still open after %v", within)
			}
			return last
		}
		if last, err = wire.DecodeResponse(p); err != nil {
			t.Fatalf("undecodable frame from the server: %v", err)
		}
	}
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func heapNow() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

func helloFrame(t *testing.T) []byte {
	return mustFrame(t, &wire.Request{ID: 1, Op: wire.OpHello, Hello: &wire.Hello{Version: wire.ProtocolVersion}})
}

// TestPreHelloLargeFrames: 40 connections each announcing an 8 MiB frame
// before HELLO are answered TOO_LARGE and closed without the body being
// read or allocated; 40 that announce a frame under the pre-auth limit and
// stall cost what they sent.
func TestPreHelloLargeFrames(t *testing.T) {
	srv, addr := startEcho(t, ServerConfig{Name: "test"})
	runtime.GC()
	before := heapNow()
	var conns []net.Conn
	for range 40 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.Write(binary.BigEndian.AppendUint32(nil, wire.DefaultMaxFrame))
		conns = append(conns, nc)
	}
	for i, nc := range conns {
		last := readUntilClosed(t, nc, 10*time.Second)
		if last == nil || last.Code != wire.TooLarge {
			t.Fatalf("connection %d: last frame %+v, want TOO_LARGE before close", i, last)
		}
		if i == 0 {
			t.Logf("server said %v: %s", last.Code, last.Message)
		}
	}
	after := heapNow()
	t.Logf("40 x 8 MiB announced before HELLO: heap+stack %d -> %d bytes", before, after)
	if after > before+8<<20 {
		t.Fatalf("heap grew by %d bytes; want < 8 MiB", after-before)
	}
	// Frames under the pre-auth limit whose bodies never come.
	runtime.GC()
	before = heapNow()
	conns = conns[:0]
	for range 40 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.Write(append(binary.BigEndian.AppendUint32(nil, 60<<10), "0123456789"...))
		conns = append(conns, nc)
	}
	waitFor(t, 10*time.Second, "40 connections accepted", func() bool { return srv.Stats().Conns >= 40 })
	time.Sleep(100 * time.Millisecond) // let the readers take the bytes
	after = heapNow()
	t.Logf("40 x 60 KiB announced before HELLO, 10 bytes sent: heap+stack %d -> %d bytes (%d per connection)", before, after, (int64(after)-int64(before))/40)
	if after > before+8<<20 {
		t.Fatalf("heap grew by %d bytes; want < 8 MiB", after-before)
	}
}

// raiseFileLimit makes room for n more open files or skips the test.
func raiseFileLimit(t *testing.T, n uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot read the open-file limit: %v", err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Skipf("open-file hard limit %d is under the %d this test needs", lim.Max, n)
	}
	old := lim.Cur
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot raise the open-file limit to %d: %v", n, err)
	}
	t.Cleanup(func() {
		lim.Cur = old
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	})
}

// TestSilentConnsClosedAfterHelloTimeout: 3,000 connections that never
// send a byte cost a small, printed amount each and are all closed after
// HelloTimeout.
func TestSilentConnsClosedAfterHelloTimeout(t *testing.T) {
	const n = 3000
	raiseFileLimit(t, 2*n+200)
	srv, addr := startEcho(t, ServerConfig{Name: "test", HelloTimeout: 3 * time.Second, MaxConnsPerIP: n + 10, MaxConns: n + 10})
	runtime.GC()
	before := heapNow()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for i := range n {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, nc)
	}
	waitFor(t, 30*time.Second, fmt.Sprintf("%d connections open", n), func() bool { return srv.Stats().Conns >= n })
	after := heapNow()
	t.Logf("%d silent connections: heap+stack %d -> %d bytes, %d bytes per connection (both ends, same process)", n, before, after, (int64(after)-int64(before))/n)
	for i, nc := range conns {
		if last := readUntilClosed(t, nc, 60*time.Second); last != nil {
			t.Fatalf("connection %d: server sent %+v to a silent peer", i, last)
		}
	}
	waitFor(t, 30*time.Second, "server connections gone", func() bool { return srv.Stats().Conns == 0 })
	if got := srv.Stats().HelloTimeouts; got < n {
		t.Fatalf("HelloTimeouts = %d, want >= %d", got, n)
	}
}

// TestSlowLoris: a frame whose body stalls is closed after ReadTimeout; a
// connection with nothing in flight is closed after IdleTimeout, one whose
// request is still being handled is not.
func TestSlowLoris(t *testing.T) {
	srv, addr := startEcho(t, ServerConfig{Name: "test", ReadTimeout: time.Second, IdleTimeout: 2 * time.Second})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write(append(helloFrame(t), append(binary.BigEndian.AppendUint32(nil, 100), "0123456789"...)...))
	start := time.Now()
	readUntilClosed(t, nc, 15*time.Second)
	t.Logf("stalled frame closed after %v", time.Since(start).Round(time.Millisecond))
	waitFor(t, 10*time.Second, "read timeout counted", func() bool { return srv.Stats().ReadTimeouts == 1 })

	c, err := Dial(context.Background(), addr, DialConfig{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Call(context.Background(), &wire.Request{Op: wire.OpGet, Path: "/slow", Seq: 3000})
	if err != nil || string(resp.Data) != "/slow" {
		t.Fatalf("a request handled for longer than IdleTimeout: %+v, %v", resp, err)
	}
	select {
	case <-c.Done():
		t.Logf("idle connection closed: %v", c.Err())
	case <-time.After(15 * time.Second):
		t.Fatal("idle connection still open 15s after its last request (IdleTimeout 2s)")
	}
	if got := srv.Stats().IdleClosed; got != 1 {
		t.Fatalf("IdleClosed = %d, want 1", got)
	}
}

// TestConnLimits: beyond MaxConnsPerIP and MaxConns a new connection gets
// a clear UNAVAILABLE error.
func TestConnLimits(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cfg     ServerConfig
		allowed int
		want    string
	}{
		{"per IP", ServerConfig{Name: "test", MaxConnsPerIP: 2}, 2, "too many connections from 127.0.0.1: 2"},
		{"per server", ServerConfig{Name: "test", MaxConns: 3, MaxConnsPerIP: 3}, 3, "too many connections: 3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, addr := startEcho(t, tt.cfg)
			for range tt.allowed {
				c, err := Dial(context.Background(), addr, DialConfig{})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			_, err := Dial(context.Background(), addr, DialConfig{})
			if err == nil || !strings.Contains(err.Error(), "UNAVAILABLE: "+tt.want) {
				t.Fatalf("connection over the limit: %v, want UNAVAILABLE %q", err, tt.want)
			}
			t.Logf("refused: %v", err)
			if got := srv.Stats().Refused; got != 1 {
				t.Fatalf("Refused = %d, want 1", got)
			}
		})
	}
}

// TestBytesInFlight: the reader stops reading while the requests being
// handled add up to MaxBytesInFlight; every request still succeeds.
func TestBytesInFlight(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  ServerConfig
	}{
		{"per connection", ServerConfig{Name: "test", MaxBytesInFlight: 64 << 10}},
		{"per server", ServerConfig{Name: "test", MaxBytesInFlight: 64 << 10, MaxProcessBytesInFlight: 64 << 10}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var cur, peak atomic.Int32
			release := make(chan struct{})
			_, addr := startServer(t, tt.cfg, func(ctx context.Context, req *wire.Request) *wire.Response {
				n := cur.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				<-release
				cur.Add(-1)
				return &wire.Response{}
			})
			conns := 1
			if tt.cfg.MaxProcessBytesInFlight > 0 {
				conns = 2
			}
			var wg sync.WaitGroup
			errs := make(chan error, 20)
			for i := range 20 {
				c, err := Dial(context.Background(), addr, DialConfig{})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if i >= conns {
					c.Close()
					break
				}
				for range 10 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						resp, err := c.Call(context.Background(), &wire.Request{Op: wire.OpPut, Path: "/f", Data: make([]byte, 20<<10)})
						if err == nil {
							err = resp.Err()
						}
						if err != nil {
							errs <- err
						}
					}()
				}
			}
			waitFor(t, 10*time.Second, "requests reach the handler", func() bool { return cur.Load() >= 3 })
			time.Sleep(200 * time.Millisecond) // room for any over the limit to arrive
			close(release)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			t.Logf("at most %d requests of 20 KiB handled at once under a 64 KiB limit", peak.Load())
			if p := peak.Load(); p > 3 {
				t.Fatalf("%d requests of 20 KiB handled at once; the 64 KiB limit allows 3", p)
			}
		})
	}
}

// TestPeerNotReading: a client that sends requests and never reads the
// responses is cut off after WriteTimeout and everything is freed.
func TestPeerNotReading(t *testing.T) {
	big := make([]byte, 1<<20)
	srv, addr := startServer(t, ServerConfig{Name: "test", WriteTimeout: time.Second}, func(ctx context.Context, req *wire.Request) *wire.Response {
		return &wire.Response{Data: big}
	})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10)
	}
	var reqs []byte
	reqs = append(reqs, helloFrame(t)...)
	for i := range 64 {
		reqs = append(reqs, mustFrame(t, &wire.Request{ID: uint64(i + 2), Op: wire.OpGet, Path: "/x"})...)
	}
	nc.Write(reqs)
	// Count the connection first: Dial returns before the server has
	// accepted it, and an uncounted connection would pass the wait below.
	waitFor(t, 10*time.Second, "connection accepted", func() bool { return srv.Stats().Conns == 1 || srv.Stats().WriteTimeouts > 0 })
	waitFor(t, 30*time.Second, "connection of a peer that never reads closed", func() bool { return srv.Stats().Conns == 0 })
	if got := srv.Stats().WriteTimeouts; got != 1 {
		t.Fatalf("WriteTimeouts = %d, want 1", got)
	}
}

// TestTLS: a TLS server refuses a plaintext client and a client whose
// certificate is from another CA with clear errors; a mutual-TLS client's
// handler sees its verified chain.
func TestTLS(t *testing.T) {
	ca, other := newTestCA(t, "cluster CA"), newTestCA(t, "other CA")
	srvTLS, cliTLS := mutualTLS(t, ca, "alice")
	_, addr := startServer(t, ServerConfig{Name: "test", TLS: srvTLS, HelloTimeout: 2 * time.Second}, func(ctx context.Context, req *wire.Request) *wire.Response {
		ci := ConnInfoFrom(ctx)
		if ci == nil || ci.TLS == nil || len(ci.TLS.VerifiedChains) == 0 {
			return wire.Errorf(0, wire.Internal, "no verified chain in ConnInfo %+v", ci)
		}
		return &wire.Response{Data: []byte(ci.TLS.VerifiedChains[0][0].Subject.CommonName)}
	})
	ctx := context.Background()

	c, err := Dial(ctx, addr, DialConfig{TLS: cliTLS})
	if err != nil {
		t.Fatalf("mutual TLS client: %v", err)
	}
	resp, err := c.Call(ctx, &wire.Request{Op: wire.OpGet, Path: "/a"})
	if err != nil || resp.Code != wire.OK || string(resp.Data) != "alice" {
		t.Fatalf("handler's view of the client certificate: %+v, %v; want alice", resp, err)
	}
	c.Close()

	_, err = Dial(ctx, addr, DialConfig{})
	if err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("plaintext client to a TLS server: %v, want an error saying TLS is required", err)
	}
	t.Logf("plaintext client: %v", err)

	_, strangerTLS := mutualTLS(t, other, "mallory")
	strangerTLS.RootCAs = ca.pool // trusts the server, but its own certificate is from another CA
	_, err = Dial(ctx, addr, DialConfig{TLS: strangerTLS})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("client certificate from another CA: %v, want a certificate error", err)
	}
	t.Logf("client with another CA's certificate: %v", err)

	_, untrusting := mutualTLS(t, other, "bob") // does not trust the server's CA
	_, err = Dial(ctx, addr, DialConfig{TLS: untrusting})
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("server certificate from an unknown CA: %v, want the address and a certificate error", err)
	}
	t.Logf("client not trusting the server: %v", err)

	_, plainAddr := startEcho(t, ServerConfig{Name: "plain"})
	_, err = Dial(ctx, plainAddr, DialConfig{TLS: cliTLS, Timeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), plainAddr) || !strings.Contains(err.Error(), "tls") {
		t.Fatalf("TLS client to a plaintext server: %v, want the address and the TLS failure", err)
	}
	t.Logf("TLS client to a plaintext server: %v", err)

	// A connection that never starts its handshake is closed after HelloTimeout.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.ReadAll(nc); err != nil {
		t.Fatalf("silent connection to a TLS server not closed: %v", err)
	}
}

// TestAuthenticate: Authenticate's error refuses HELLO with UNAUTHORIZED
// and its message; its principal reaches every handler call, one-way ops
// included.
func TestAuthenticate(t *testing.T) {
	if ConnInfoFrom(context.Background()) != nil {
		t.Fatal("ConnInfoFrom outside a handler is not nil")
	}
	oneWay := make(chan any, 1)
	_, addr := startServer(t, ServerConfig{Name: "test", Token: "ignored when Authenticate is set",
		Authenticate: func(ctx context.Context, ci *ConnInfo) (any, error) {
			if ci.Hello.Client != "alice" || ci.Hello.Token != "alice-token" {
				return nil, fmt.Errorf("unknown client %q or wrong token", ci.Hello.Client)
			}
			if !strings.HasPrefix(ci.Remote, "127.0.0.1:") || ci.TLS != nil {
				return nil, fmt.Errorf("ConnInfo %+v: want a plaintext 127.0.0.1 peer", ci)
			}
			return "principal:alice", nil
		}}, func(ctx context.Context, req *wire.Request) *wire.Response {
		p := ConnInfoFrom(ctx).Principal
		if req.Op == wire.OpRaft {
			oneWay <- p
			return nil
		}
		return &wire.Response{Data: []byte(p.(string))}
	})
	ctx := context.Background()
	_, err := Dial(ctx, addr, DialConfig{Client: "bob", Token: "alice-token"})
	if err == nil || !containsCode(err, wire.Unauthorized) || !strings.Contains(err.Error(), `unknown client "bob"`) {
		t.Fatalf("refused client: %v, want UNAUTHORIZED with Authenticate's message", err)
	}
	c, err := Dial(ctx, addr, DialConfig{Client: "alice", Token: "alice-token"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Call(ctx, &wire.Request{Op: wire.OpGet, Path: "/a"})
	if err != nil || string(resp.Data) != "principal:alice" {
		t.Fatalf("handler's principal: %+v, %v", resp, err)
	}
	c.Send(&wire.Request{Op: wire.OpRaft, Data: []byte{1}})
	select {
	case p := <-oneWay:
		if p != "principal:alice" {
			t.Fatalf("one-way handler's principal = %v", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("one-way op not handled")
	}
}

// TestPoolDropsIdle: a pooled connection unused for the pool's IdleTimeout
// is replaced rather than handed out to race the server's idle close.
func TestPoolDropsIdle(t *testing.T) {
	_, addr := startEcho(t, ServerConfig{Name: "test"})
	p := NewPool(DialConfig{IdleTimeout: 200 * time.Millisecond})
	defer p.Close()
	ctx := context.Background()
	c1, err := p.Get(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := p.Get(ctx, addr); c != c1 {
		t.Fatal("a fresh connection was replaced")
	}
	time.Sleep(300 * time.Millisecond) // let it go idle
	c2, err := p.Get(ctx, addr)
	if err != nil || c2 == c1 {
		t.Fatalf("Get after IdleTimeout = %v, %v; want a new connection", c2, err)
	}
	if c1.Err() == nil {
		t.Fatal("the idle connection was not closed")
	}
}

// TestPeerNotReadingStopsBeingServed: a peer that pipelines requests for
// 1 MiB answers and never reads them gets the answers of its first window
// (it earns more only by reading) and its queued answers count toward
// MaxBytesInFlight, instead of having the server produce and hold answers
// until the out queue overflows (thousands of MiB).
func TestPeerNotReadingStopsBeingServed(t *testing.T) {
	var handled atomic.Int64
	big := make([]byte, 1<<20)
	srv, addr := startServer(t, ServerConfig{Name: "test", MaxBytesInFlight: 16 << 20}, func(ctx context.Context, req *wire.Request) *wire.Response {
		handled.Add(1)
		return &wire.Response{Data: big}
	})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.(*net.TCPConn).SetReadBuffer(4096)
	buf := helloFrame(t)
	for id := uint64(2); id < 5000; id++ {
		buf, err = wire.AppendEncode(buf, &wire.Request{ID: id, Op: wire.OpGet, Path: "/f"})
		if err != nil {
			t.Fatal(err)
		}
	}
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	nc.Write(buf) // blocks once the server stops reading; the deadline ends it
	time.Sleep(500 * time.Millisecond)
	n := handled.Load()
	t.Logf("%d requests for 1 MiB answers served to a peer that reads nothing, under a 16 MiB budget", n)
	// 16 MiB of queued answers, plus what the socket buffers took, plus the
	// requests in flight when the budget filled.
	if n > 24 {
		t.Fatalf("%d answers of 1 MiB produced for a peer that reads nothing; its first window is 8 answers", n)
	}
	_ = srv
}
