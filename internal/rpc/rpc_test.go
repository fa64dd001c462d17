package rpc

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// echo answers GET with the path as data, after sleeping as many
// milliseconds as the request's Seq, so responses come back out of order.
func startEcho(t *testing.T, cfg ServerConfig) (*Server, string) {
	t.Helper()
	return startServer(t, cfg, func(ctx context.Context, req *wire.Request) *wire.Response {
		if req.Seq > 0 {
			select {
			case <-time.After(time.Duration(req.Seq) * time.Millisecond):
			case <-ctx.Done():
				return &wire.Response{Code: wire.Timeout}
			}
		}
		return &wire.Response{Data: []byte(req.Path)}
	})
}

func TestPipelinedOutOfOrder(t *testing.T) {
	_, addr := startEcho(t, ServerConfig{Name: "test"})
	ctx := context.Background()
	c, err := Dial(ctx, addr, DialConfig{Client: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := "/p" + string(rune('a'+i%26))
			resp, err := c.Call(ctx, &wire.Request{Op: wire.OpGet, Path: path, Seq: uint64(20 - i%20)})
			if err != nil {
				errs <- err
				return
			}
			if string(resp.Data) != path {
				errs <- errors.New("response matched to the wrong request: " + string(resp.Data) + " for " + path)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestHelloRules(t *testing.T) {
	_, addr := startEcho(t, ServerConfig{Name: "test", Token: "secret"})
	ctx := context.Background()
	if _, err := Dial(ctx, addr, DialConfig{Token: "wrong"}); err == nil || !errors.Is(err, &wire.Error{Code: wire.Unauthorized}) && !containsCode(err, wire.Unauthorized) {
		t.Fatalf("wrong token: %v, want UNAUTHORIZED", err)
	}
	c, err := Dial(ctx, addr, DialConfig{Token: "secret"})
	if err != nil {
		t.Fatalf("right token: %v", err)
	}
	c.Close()
}

func containsCode(err error, code wire.Code) bool {
	var we *wire.Error
	return errors.As(err, &we) && we.Code == code
}

func TestCallRespectsDeadline(t *testing.T) {
	_, addr := startEcho(t, ServerConfig{Name: "test"})
	c, err := Dial(context.Background(), addr, DialConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	resp, err := c.Call(ctx, &wire.Request{Op: wire.OpGet, Path: "/slow", Seq: 5000})
	// Either side may notice first: the caller's context, or the server,
	// which received the deadline in TimeoutMs.
	if !errors.Is(err, context.DeadlineExceeded) && (resp == nil || resp.Code != wire.Timeout) {
		t.Fatalf("Call = %+v, %v; want a deadline error or TIMEOUT", resp, err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("call returned after %v; the deadline was 20ms", el)
	}
}

// TestMalformedInput sends hostile bytes on raw connections and checks each
// gets an error frame or a close, while the server keeps serving others.
func TestMalformedInput(t *testing.T) {
	_, addr := startEcho(t, ServerConfig{Name: "test", MaxFrame: 1 << 20})
	hello, _ := wire.AppendEncode(nil, &wire.Request{ID: 1, Op: wire.OpHello, Hello: &wire.Hello{Version: wire.ProtocolVersion}})
	tests := []struct {
		name  string
		input []byte
		code  wire.Code // expected connection-level code, or OK for "just closed"
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), wire.TooLarge},
		{"4 GiB length prefix", []byte{0xff, 0xff, 0xff, 0xff, 0, 0}, wire.TooLarge},
		{"undecodable payload", append(binary.BigEndian.AppendUint32(nil, 3), 0xc1, 0xc1, 0xc1), wire.Invalid},
		{"not hello first", mustFrame(t, &wire.Request{ID: 1, Op: wire.OpGet, Path: "/a"}), wire.Invalid},
		{"wrong version", mustFrame(t, &wire.Request{ID: 1, Op: wire.OpHello, Hello: &wire.Hello{Version: 99}}), wire.Invalid},
		{"truncated frame after hello", append(append([]byte{}, hello...), 0, 0, 0, 50, 1, 2, 3), wire.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.Write(tt.input)
			if tc, ok := nc.(*net.TCPConn); ok && tt.code == wire.OK {
				tc.CloseWrite() // the frame stays truncated forever
			}
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			fr := wire.NewFrameReader(nc, 0)
			var last *wire.Response
			for {
				p, err := fr.Next()
				if err != nil {
					if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) {
						break
					}
					t.Fatalf("server neither answered nor closed: %v", err)
				}
				if last, err = wire.DecodeResponse(p); err != nil {
					t.Fatalf("server sent an undecodable frame: %v", err)
				}
			}
			if tt.code != wire.OK {
				if last == nil || last.Code != tt.code {
					t.Fatalf("last frame %+v, want code %v before close", last, tt.code)
				}
				if last.Message == "" {
					t.Fatal("error frame has no message")
				}
				t.Logf("server said %v: %s", last.Code, last.Message)
			}
			// The server still serves a well-behaved client.
			c, err := Dial(context.Background(), addr, DialConfig{})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Call(context.Background(), &wire.Request{Op: wire.OpGet, Path: "/ok"})
			if err != nil || string(resp.Data) != "/ok" {
				t.Fatalf("after %s: %v %v", tt.name, resp, err)
			}
			c.Close()
		})
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne)
}

func mustFrame(t *testing.T, req *wire.Request) []byte {
	b, err := wire.AppendEncode(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConnDiesCleanly(t *testing.T) {
	srv, addr := startEcho(t, ServerConfig{Name: "test"})
	c, err := Dial(context.Background(), addr, DialConfig{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), &wire.Request{Op: wire.OpGet, Path: "/slow", Seq: 10000})
		done <- err
	}()
	srv.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrConnClosed) {
			t.Fatalf("err = %v, want ErrConnClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pending call not failed after the server closed")
	}
}

func TestPoolRedials(t *testing.T) {
	_, addr := startEcho(t, ServerConfig{Name: "test"})
	p := NewPool(DialConfig{})
	defer p.Close()
	ctx := context.Background()
	c1, err := p.Get(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	p.Drop(addr, c1)
	c2, err := p.Get(ctx, addr)
	if err != nil || c2 == c1 {
		t.Fatalf("Get after Drop = %v, %v; want a new conn", c2, err)
	}
	if _, err := p.Get(ctx, "127.0.0.1:1"); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("dial to a closed port: %v, want ErrConnClosed", err)
	}
}
