package rpc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/cleavefs/cleave/wire"
)

// rawHello dials addr and says HELLO (id 1, with session), returning the
// connection and the reply as a generic msgpack map, so that a test sees
// exactly the fields on the wire.
func rawHello(t *testing.T, addr string, session uint64) (net.Conn, map[string]any) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := nc.Write(mustFrame(t, &wire.Request{ID: 1, Op: wire.OpHello, Hello: &wire.Hello{Version: wire.ProtocolVersion, Session: session}})); err != nil {
		t.Fatal(err)
	}
	p, err := wire.NewFrameReader(nc, 0).Next()
	if err != nil {
		t.Fatalf("HELLO reply: %v", err)
	}
	var m map[string]any
	if err := msgpack.Unmarshal(p, &m); err != nil {
		t.Fatalf("HELLO reply: %v", err)
	}
	return nc, m
}

// TestHelloAnnouncesMaxFrame: the HELLO answer names the largest request
// frame the server reads, so a client can stream what is larger.
func TestHelloAnnouncesMaxFrame(t *testing.T) {
	for _, max := range []int{0, 1 << 20} {
		_, addr := startEcho(t, ServerConfig{Name: "test", MaxFrame: max})
		_, m := rawHello(t, addr, 0)
		h, _ := m["hello"].(map[string]any)
		want := max
		if want == 0 {
			want = wire.DefaultMaxFrame
		}
		if got := fmt.Sprint(h["max_frame"]); got != fmt.Sprint(want) {
			t.Fatalf("MaxFrame %d: HELLO reply %v has max_frame %s, want %d", max, m, got, want)
		}
		c, err := Dial(context.Background(), addr, DialConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.ServerMaxFrame(); got != want {
			t.Fatalf("Conn.ServerMaxFrame() = %d, want %d", got, want)
		}
		c.Close()
	}
}

// readAll reads responses until the server closes the connection and
// returns them, failing on a reset or on a connection still open at the
// deadline: every error the server sends must reach the peer.
func readAll(t *testing.T, nc net.Conn, within time.Duration) []*wire.Response {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(within))
	fr := wire.NewFrameReader(nc, 0)
	var out []*wire.Response
	for {
		p, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("after %d responses %v: %v (want the server's answer, then a clean close)", len(out), out, err)
		}
		r, err := wire.DecodeResponse(p)
		if err != nil {
			t.Fatalf("undecodable frame from the server: %v", err)
		}
		out = append(out, r)
	}
}

// TestOversizedFrameAnsweredBeforeClose: a peer that sends a whole 9 MiB
// frame to a server with the default 8 MiB limit reads TOO_LARGE naming
// the limit, then a clean close, not a reset; and the answer to a request
// sent before it is not lost.
func TestOversizedFrameAnsweredBeforeClose(t *testing.T) {
	_, addr := startEcho(t, ServerConfig{Name: "test"})
	nc, _ := rawHello(t, addr, 0)
	frame := mustFrame(t, &wire.Request{ID: 2, Op: wire.OpGet, Path: "/before"})
	frame = binary.BigEndian.AppendUint32(frame, 9<<20)
	frame = append(frame, make([]byte, 9<<20)...)
	werr := make(chan error, 1)
	go func() { _, err := nc.Write(frame); werr <- err }()
	got := readAll(t, nc, 20*time.Second)
	if err := <-werr; err != nil {
		t.Fatalf("writing the 9 MiB frame: %v (the server must read it away, not reset)", err)
	}
	if len(got) != 2 || got[0].ID != 2 || string(got[0].Data) != "/before" {
		t.Fatalf("responses %+v, want the GET's answer, then TOO_LARGE", got)
	}
	last := got[1]
	limit := fmt.Sprint(wire.DefaultMaxFrame)
	if last.ID != 0 || last.Code != wire.TooLarge || !strings.Contains(last.Message, limit) {
		t.Fatalf("last answer %+v, want TOO_LARGE with id 0 naming the limit %s", last, limit)
	}
	t.Logf("server said %v: %s", last.Code, last.Message)
}

// TestRequestIDZero: id 0 is reserved for connection-level errors, so a
// request carrying it (HELLO or a later one) is refused with INVALID
// saying so, and the connection closed.
func TestRequestIDZero(t *testing.T) {
	_, addr := startEcho(t, ServerConfig{Name: "test"})
	t.Run("after HELLO", func(t *testing.T) {
		nc, _ := rawHello(t, addr, 0)
		nc.Write(mustFrame(t, &wire.Request{ID: 0, Op: wire.OpGet, Path: "/zero"}))
		got := readAll(t, nc, 10*time.Second)
		if len(got) != 1 || got[0].ID != 0 || got[0].Code != wire.Invalid || !strings.Contains(got[0].Message, "id 0") {
			t.Fatalf("responses %+v, want one INVALID naming id 0, then the close", got)
		}
		t.Logf("server said %v: %s", got[0].Code, got[0].Message)
	})
	t.Run("HELLO", func(t *testing.T) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.Write(mustFrame(t, &wire.Request{ID: 0, Op: wire.OpHello, Hello: &wire.Hello{Version: wire.ProtocolVersion}}))
		got := readAll(t, nc, 10*time.Second)
		if len(got) != 1 || got[0].Code != wire.Invalid || !strings.Contains(got[0].Message, "id 0") {
			t.Fatalf("responses %+v, want one INVALID naming id 0, then the close", got)
		}
	})
}

// TestRefusedHelloCarriesItsID: an error that answers a request the
// server read carries that request's id, also when the server closes next
// (a first request that is not HELLO).
func TestRefusedHelloCarriesItsID(t *testing.T) {
	_, addr := startEcho(t, ServerConfig{Name: "test"})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write(mustFrame(t, &wire.Request{ID: 7, Op: wire.OpGet, Path: "/a"}))
	got := readAll(t, nc, 10*time.Second)
	if len(got) != 1 || got[0].ID != 7 || got[0].Code != wire.Invalid {
		t.Fatalf("responses %+v, want one INVALID with id 7, then the close", got)
	}
}

// TestSeqWithoutSession: a mutating request with seq but no session is
// refused with INVALID telling the client to send its session (HELLO's
// session is not applied to requests), and is never handled; the
// connection stays open. Reads may carry anything in seq.
func TestSeqWithoutSession(t *testing.T) {
	handled := make(chan *wire.Request, 16)
	_, addr := startServer(t, ServerConfig{Name: "test"}, func(ctx context.Context, req *wire.Request) *wire.Response {
		handled <- req
		return &wire.Response{}
	})
	c, err := Dial(context.Background(), addr, DialConfig{Session: 42})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for _, op := range []wire.Op{wire.OpMkdir, wire.OpPut, wire.OpRemove, wire.OpWrite, wire.OpAppend, wire.OpRename, wire.OpCopy, wire.OpChunk, wire.OpCommit} {
		resp, err := c.Call(ctx, &wire.Request{Op: op, Path: "/a/b", Seq: 3})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Code != wire.Invalid || !strings.Contains(resp.Message, "session") || !strings.Contains(resp.Message, op.String()) {
			t.Fatalf("%v with seq 3 and no session: %v %q, want INVALID naming the op and the missing session", op, resp.Code, resp.Message)
		}
		if op == wire.OpPut {
			t.Logf("server said %v: %s", resp.Code, resp.Message)
		}
	}
	select {
	case req := <-handled:
		t.Fatalf("the handler saw %v seq %d session %d; it must be refused before", req.Op, req.Seq, req.Session)
	default:
	}
	for _, req := range []*wire.Request{
		{Op: wire.OpPut, Path: "/a/b", Session: 42, Seq: 3}, // with its session
		{Op: wire.OpPut, Path: "/a/b"},                      // no deduplication asked for
		{Op: wire.OpGet, Path: "/a/b", Seq: 3},              // not a mutation
	} {
		resp, err := c.Call(ctx, req)
		if err != nil || resp.Code != wire.OK {
			t.Fatalf("%v session %d seq %d: %v %v, want OK", req.Op, req.Session, req.Seq, resp, err)
		}
		<-handled
	}
}

// TestConnKeepsToServerLimit: a Conn refuses, alone and before sending, a
// request over the limit the server announced (smaller than its own), and
// the connection stays up for the next call.
func TestConnKeepsToServerLimit(t *testing.T) {
	_, addr := startEcho(t, ServerConfig{Name: "test", MaxFrame: 1 << 20})
	c, err := Dial(context.Background(), addr, DialConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Call(context.Background(), &wire.Request{Op: wire.OpPut, Path: "/big", Data: make([]byte, 2<<20)})
	if err != nil || resp.Code != wire.TooLarge || !strings.Contains(resp.Message, fmt.Sprint(1<<20)) {
		t.Fatalf("2 MiB PUT to a 1 MiB server: %+v, %v; want TOO_LARGE naming 1048576", resp, err)
	}
	resp, err = c.Call(context.Background(), &wire.Request{Op: wire.OpGet, Path: "/after"})
	if err != nil || string(resp.Data) != "/after" {
		t.Fatalf("the next call: %+v, %v; want the connection still up", resp, err)
	}
}
