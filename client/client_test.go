package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/client/clienttest"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func dial(t *testing.T, addrs []string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), addrs, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSentinels(t *testing.T) {
	seen := map[error]bool{}
	for _, code := range wire.Codes() {
		s := client.Sentinel(code)
		if code == wire.OK {
			if s != nil {
				t.Errorf("Sentinel(OK) = %v", s)
			}
			continue
		}
		t.Run(code.String(), func(t *testing.T) {
			if s == nil || seen[s] {
				t.Fatalf("Sentinel(%v) = %v: missing or shared", code, s)
			}
			seen[s] = true
			if !strings.HasPrefix(s.Error(), "cleave: ") {
				t.Errorf("sentinel %q lacks the package prefix", s)
			}
			err := fmt.Errorf("wrapped: %w", &client.Error{Code: code, Message: "m"})
			if !errors.Is(err, s) {
				t.Errorf("errors.Is(*Error{%v}, its sentinel) = false", code)
			}
			if errors.Is(err, client.ErrInternal) != (code == wire.Internal) {
				t.Errorf("*Error{%v} matches ErrInternal", code)
			}
			if got := client.CodeOf(err); got != code {
				t.Errorf("CodeOf = %v", got)
			}
			if got := client.CodeOf(fmt.Errorf("x: %w", s)); got != code {
				t.Errorf("CodeOf(wrapped sentinel) = %v", got)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	e := &client.Error{Code: wire.NotFound, Message: "/a/b: no such file or directory", Op: "get", Path: "/a/b"}
	if got, want := e.Error(), "NOT_FOUND: /a/b: no such file or directory"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestCodeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want wire.Code
	}{
		{nil, wire.OK},
		{context.DeadlineExceeded, wire.Timeout},
		{fmt.Errorf("x: %w", context.Canceled), wire.Timeout},
		{fmt.Errorf("x: %w", rpc.ErrConnClosed), wire.Unavailable},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, wire.Unavailable},
		{&wire.Error{Code: wire.Conflict}, wire.Conflict},
		{errors.New("boom"), wire.Internal},
	} {
		if got := client.CodeOf(tc.err); got != tc.want {
			t.Errorf("CodeOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestOperations(t *testing.T) {
	fs := clienttest.NewFS()
	mt := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	fs.SetClock(func() time.Time { return mt })
	r := clienttest.NewRouter(t, fs, "")
	c := dial(t, []string{r.Addr})
	ctx := context.Background()

	if err := c.Mkdir(ctx, "/a/b"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Mkdir without parent: %v, want ErrNotFound", err)
	}
	if err := c.MkdirAll(ctx, "/a/b"); err != nil {
		t.Fatal(err)
	}
	if err := c.MkdirAll(ctx, "/a/b"); err != nil {
		t.Fatalf("MkdirAll of an existing dir: %v", err)
	}
	if err := c.Mkdir(ctx, "/a/b"); !errors.Is(err, client.ErrExists) {
		t.Fatalf("Mkdir existing: %v", err)
	}
	st, err := c.Put(ctx, "/a/b/f.txt", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != "f.txt" || st.Size != 5 || st.IsDir() || !st.Mtime.Equal(mt) || st.Version == 0 {
		t.Errorf("Put stat = %+v", st)
	}
	if _, err := c.Put(ctx, "/x/y/z", []byte("1")); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Put without parents: %v", err)
	}
	if _, err := c.Put(ctx, "/x/y/z", []byte("1"), client.Parents()); err != nil {
		t.Errorf("Put with Parents: %v", err)
	}
	data, err := c.Get(ctx, "/a/b/f.txt")
	if err != nil || string(data) != "hello" {
		t.Fatalf("Get = %q, %v", data, err)
	}
	_, err = c.Get(ctx, "/a/nope")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != wire.NotFound || ce.Op != "get" || ce.Path != "/a/nope" ||
		err.Error() != "NOT_FOUND: /a/nope: no such file or directory" {
		t.Errorf("Get missing: %#v", err)
	}
	if _, err := c.Get(ctx, "/a/b"); !errors.Is(err, client.ErrIsDir) {
		t.Errorf("Get dir: %v", err)
	}
	ents, err := c.List(ctx, "/a/b")
	if err != nil || len(ents) != 1 || ents[0].Name != "f.txt" {
		t.Errorf("List = %+v, %v", ents, err)
	}
	roots, err := c.List(ctx, "/")
	if err != nil || len(roots) != 2 || roots[0].Name != "a" || !roots[0].IsDir() || roots[1].Name != "x" {
		t.Errorf("List / = %+v, %v", roots, err)
	}
	if st, err := c.Stat(ctx, "/a"); err != nil || !st.IsDir() {
		t.Errorf("Stat dir = %+v, %v", st, err)
	}
	for p, want := range map[string]bool{"/a/b/f.txt": true, "/a/zz": false, "/": true} {
		if got, err := c.Exists(ctx, p); err != nil || got != want {
			t.Errorf("Exists(%s) = %v, %v", p, got, err)
		}
	}
	if err := c.Remove(ctx, "/a"); !errors.Is(err, client.ErrNotEmpty) {
		t.Errorf("Remove non-empty: %v", err)
	}
	if err := c.RemoveAll(ctx, "/a"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Exists(ctx, "/a/b/f.txt"); ok {
		t.Error("file survived RemoveAll")
	}
	if err := c.Remove(ctx, "/x/y/z"); err != nil {
		t.Error(err)
	}
}

func TestStatusAndTable(t *testing.T) {
	fs := clienttest.NewFS()
	fs.Status = wire.Status{Router: "r1", Version: 3, Clusters: []wire.ClusterStatus{{ID: "c1", Leader: "n1:1"}}}
	fs.Table = wire.TableInfo{Version: 3, Ranges: []wire.RangeOwner{{Cluster: "c1"}}}
	c := dial(t, []string{clienttest.NewRouter(t, fs, "").Addr})
	st, err := c.Status(context.Background())
	if err != nil || st.Version != 3 || st.Clusters[0].Leader != "n1:1" {
		t.Errorf("Status = %+v, %v", st, err)
	}
	tb, err := c.Table(context.Background())
	if err != nil || tb.Version != 3 || len(tb.Ranges) != 1 {
		t.Errorf("Table = %+v, %v", tb, err)
	}
}

func TestInvalidPathNotSent(t *testing.T) {
	r := clienttest.NewRouter(t, clienttest.NewFS(), "")
	var n atomic.Int64
	r.Hook = func(*wire.Request) *wire.Response { n.Add(1); return nil }
	c := dial(t, []string{r.Addr})
	for _, p := range []string{"", "a", "/a/", "/a//b", "/a/../b", "/a\x00"} {
		_, err := c.Stat(context.Background(), p)
		if !errors.Is(err, client.ErrInvalid) || client.CodeOf(err) != wire.Invalid {
			t.Errorf("Stat(%q) = %v, want INVALID", p, err)
		}
	}
	if n.Load() != 0 {
		t.Errorf("%d invalid requests reached the server", n.Load())
	}
}

func TestDialUnavailable(t *testing.T) {
	a, b := closedAddr(t), closedAddr(t)
	start := time.Now()
	_, err := client.Dial(context.Background(), []string{a, b})
	if !errors.Is(err, client.ErrUnavailable) || client.CodeOf(err) != wire.Unavailable {
		t.Fatalf("Dial closed ports: %v, want UNAVAILABLE", err)
	}
	if msg := err.Error(); !strings.Contains(msg, a) || !strings.Contains(msg, b) || strings.Contains(msg, "\n") {
		t.Errorf("message %q should name both routers on one line", msg)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Dial took %v; it should fail fast", d)
	}
	if _, err := client.Dial(context.Background(), nil); !errors.Is(err, client.ErrInvalid) {
		t.Errorf("Dial(nil) = %v", err)
	}
}

func TestDialUnauthorized(t *testing.T) {
	r := clienttest.NewRouter(t, clienttest.NewFS(), "secret")
	_, err := client.Dial(context.Background(), []string{r.Addr}, client.WithToken("wrong"))
	if !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("wrong token: %v", err)
	}
	c := dial(t, []string{r.Addr}, client.WithToken("secret"))
	if _, err := c.Exists(context.Background(), "/a"); err != nil {
		t.Fatal(err)
	}
}

func TestFailoverToNextRouter(t *testing.T) {
	fs := clienttest.NewFS()
	r1 := clienttest.NewRouter(t, fs, "")
	r2 := clienttest.NewRouter(t, fs, "")
	var hits2 atomic.Int64
	r2.Hook = func(*wire.Request) *wire.Response { hits2.Add(1); return nil }
	c := dial(t, []string{closedAddr(t), r1.Addr, r2.Addr})
	ctx := context.Background()
	if _, err := c.Put(ctx, "/f", []byte("1")); err != nil {
		t.Fatal(err)
	}
	r1.Close()
	if _, err := c.Put(ctx, "/f", []byte("2")); err != nil {
		t.Fatalf("Put after router loss: %v", err)
	}
	if d, err := c.Get(ctx, "/f"); err != nil || string(d) != "2" {
		t.Fatalf("Get = %q, %v", d, err)
	}
	if hits2.Load() == 0 {
		t.Error("second router was never used")
	}
}

func TestAllRoutersDownRetriesUntilDeadline(t *testing.T) {
	r := clienttest.NewRouter(t, clienttest.NewFS(), "")
	c := dial(t, []string{r.Addr})
	r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Stat(ctx, "/a")
	// Either the break was noticed before sending (UNAVAILABLE) or the
	// request was lost in flight (TIMEOUT); both are honest.
	if code := client.CodeOf(err); code != wire.Unavailable && code != wire.Timeout {
		t.Fatalf("Stat with every router down: %v", err)
	}
}

func TestDeadline(t *testing.T) {
	r := clienttest.NewRouter(t, clienttest.NewFS(), "")
	release := make(chan struct{})
	var gotTimeout atomic.Uint32
	r.Hook = func(req *wire.Request) *wire.Response {
		if req.Path == "/slow" {
			gotTimeout.Store(req.TimeoutMs)
			<-release
		}
		return nil
	}
	t.Cleanup(func() { close(release) }) // runs before the router closes
	c := dial(t, []string{r.Addr}, client.WithTimeout(150*time.Millisecond))
	_, err := c.Get(context.Background(), "/slow")
	if !errors.Is(err, client.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow Get: %v, want TIMEOUT", err)
	}
	if ms := gotTimeout.Load(); ms == 0 || ms > 150 {
		t.Errorf("request carried TimeoutMs=%d, want (0, 150]", ms)
	}
}

func TestSessionSequence(t *testing.T) {
	r := clienttest.NewRouter(t, clienttest.NewFS(), "")
	var mu sync.Mutex
	var reqs []wire.Request
	r.Hook = func(req *wire.Request) *wire.Response {
		mu.Lock()
		reqs = append(reqs, *req)
		mu.Unlock()
		return nil
	}
	c := dial(t, []string{r.Addr})
	ctx := context.Background()
	c.Mkdir(ctx, "/d")
	c.Stat(ctx, "/d")
	c.Put(ctx, "/d/f", nil)
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 3 {
		t.Fatalf("%d requests", len(reqs))
	}
	if reqs[0].Session == 0 || reqs[0].Session != reqs[2].Session || reqs[2].Seq <= reqs[0].Seq || reqs[0].Seq == 0 {
		t.Errorf("mutations carry session/seq %d/%d and %d/%d", reqs[0].Session, reqs[0].Seq, reqs[2].Session, reqs[2].Seq)
	}
	if reqs[1].Session != 0 || reqs[1].Seq != 0 {
		t.Errorf("read carries session/seq %d/%d", reqs[1].Session, reqs[1].Seq)
	}
}

func TestConcurrent(t *testing.T) {
	c := dial(t, []string{clienttest.NewRouter(t, clienttest.NewFS(), "").Addr})
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			p := fmt.Sprintf("/r%d/f", i%5)
			want := fmt.Sprint(i)
			if _, err := c.Put(ctx, fmt.Sprintf("/r%d/f%d", i%5, i), []byte(want), client.Parents()); err != nil {
				t.Error(err)
				return
			}
			if _, err := c.Exists(ctx, p); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestClose(t *testing.T) {
	c := dial(t, []string{clienttest.NewRouter(t, clienttest.NewFS(), "").Addr})
	c.Close()
	_, err := c.Exists(context.Background(), "/a")
	if !errors.Is(err, client.ErrClosed) || !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("call after Close: %v", err)
	}
}

func TestStatJSON(t *testing.T) {
	s := client.Stat{Name: "a.txt", Type: wire.TypeFile, Size: 5,
		Mtime: time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC), Version: 42, Checksum: "sha256:ab"}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"a.txt","type":"file","size":5,"mtime":"2025-01-02T03:04:05.123456789Z","version":42,"checksum":"sha256:ab"}`
	if string(b) != want {
		t.Errorf("JSON = %s\nwant   %s", b, want)
	}
	var back client.Stat
	if err := json.Unmarshal(b, &back); err != nil || back != s {
		t.Errorf("round trip = %+v, %v", back, err)
	}
}

func TestUnreachableCallIsUnavailable(t *testing.T) {
	r := clienttest.NewRouter(t, clienttest.NewFS(), "")
	c := dial(t, []string{r.Addr})
	r.Close()
	// Once the client has noticed the break, a call is never sent and
	// fails UNAVAILABLE (before that it may be lost in flight: TIMEOUT).
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := c.Stat(ctx, "/a")
		cancel()
		var ce *client.Error
		if errors.As(err, &ce) && ce.Code == wire.Unavailable {
			if ce.Op != "stat" || ce.Path != "/a" || !strings.Contains(ce.Message, "no router reachable") {
				t.Errorf("error %#v", ce)
			}
			return
		}
		if client.CodeOf(err) != wire.Timeout || time.Now().After(deadline) {
			t.Fatalf("Stat with the only router gone: %v", err)
		}
	}
}
