package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/internal/testcluster"
	"github.com/cleavefs/cleave/wire"
)

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
	for _, wc := range wire.Codes() {
		code := client.Code(wc)
		if code.String() != wc.String() {
			t.Fatalf("client code %d is %s, the protocol's is %s", wc, code, wc)
		}
		if back, ok := client.ParseCode(wc.String()); !ok || back != code {
			t.Fatalf("ParseCode(%q) = %v, %v", wc.String(), back, ok)
		}
		s := client.Sentinel(code)
		if code == client.CodeOK {
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
			if errors.Is(err, client.ErrInternal) != (code == client.CodeInternal) {
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
	e := &client.Error{Code: client.CodeNotFound, Message: "/a/b: no such file or directory", Op: "get", Path: "/a/b"}
	if got, want := e.Error(), "NOT_FOUND: /a/b: no such file or directory"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestCodeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want client.Code
	}{
		{nil, client.CodeOK},
		{context.DeadlineExceeded, client.CodeTimeout},
		{fmt.Errorf("x: %w", context.Canceled), client.CodeTimeout},
		{fmt.Errorf("x: %w", rpc.ErrConnClosed), client.CodeUnavailable},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, client.CodeUnavailable},
		{&wire.Error{Code: wire.Conflict}, client.CodeConflict},
		{errors.New("boom"), client.CodeInternal},
	} {
		if got := client.CodeOf(tc.err); got != tc.want {
			t.Errorf("CodeOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestOperations(t *testing.T) {
	c := sharedClient(t)
	ctx := context.Background()
	a, x := root(t, "c1", "a"), root(t, "c2", "x")
	start := time.Now().Add(-time.Minute)

	if err := c.Mkdir(ctx, a+"/b"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Mkdir without parent: %v, want ErrNotFound", err)
	}
	if err := c.MkdirAll(ctx, a+"/b"); err != nil {
		t.Fatal(err)
	}
	if err := c.MkdirAll(ctx, a+"/b"); err != nil {
		t.Fatalf("MkdirAll of an existing dir: %v", err)
	}
	if err := c.Mkdir(ctx, a+"/b"); !errors.Is(err, client.ErrExists) {
		t.Fatalf("Mkdir existing: %v", err)
	}
	st, err := c.Put(ctx, a+"/b/f.txt", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != "f.txt" || st.Size != 5 || st.IsDir() || st.Mtime.Before(start) || st.Version == 0 {
		t.Errorf("Put stat = %+v", st)
	}
	if _, err := c.Put(ctx, x+"/y/z", []byte("1")); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Put without parents: %v", err)
	}
	if _, err := c.Put(ctx, x+"/y/z", []byte("1"), client.Parents()); err != nil {
		t.Errorf("Put with Parents: %v", err)
	}
	data, err := c.Get(ctx, a+"/b/f.txt")
	if err != nil || string(data) != "hello" {
		t.Fatalf("Get = %q, %v", data, err)
	}
	_, err = c.Get(ctx, a+"/nope")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != client.CodeNotFound || ce.Op != "get" || ce.Path != a+"/nope" ||
		!strings.HasPrefix(err.Error(), "NOT_FOUND: ") || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Get missing: %#v", err)
	}
	if _, err := c.Get(ctx, a+"/b"); !errors.Is(err, client.ErrIsDir) {
		t.Errorf("Get dir: %v", err)
	}
	ents, err := c.List(ctx, a+"/b")
	if err != nil || len(ents) != 1 || ents[0].Name != "f.txt" {
		t.Errorf("List = %+v, %v", ents, err)
	}
	roots, err := c.List(ctx, "/")
	found := map[string]bool{}
	for _, r := range roots {
		found["/"+r.Name] = r.IsDir()
	}
	if err != nil || !found[a] || !found[x] {
		t.Errorf("List / = %+v, %v; want %s and %s (one per cluster) among them", roots, err, a, x)
	}
	if st, err := c.Stat(ctx, a); err != nil || !st.IsDir() {
		t.Errorf("Stat dir = %+v, %v", st, err)
	}
	for p, want := range map[string]bool{a + "/b/f.txt": true, a + "/zz": false, "/": true} {
		if got, err := c.Exists(ctx, p); err != nil || got != want {
			t.Errorf("Exists(%s) = %v, %v", p, got, err)
		}
	}
	if err := c.Remove(ctx, a); !errors.Is(err, client.ErrNotEmpty) {
		t.Errorf("Remove non-empty: %v", err)
	}
	if err := c.RemoveAll(ctx, a); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Exists(ctx, a+"/b/f.txt"); ok {
		t.Error("file survived RemoveAll")
	}
	if err := c.Remove(ctx, x+"/y/z"); err != nil {
		t.Error(err)
	}
}

func TestStatusAndTable(t *testing.T) {
	c := sharedClient(t)
	st, err := c.Status(context.Background())
	if err != nil || st.Version != 1 || len(st.Clusters) != 2 || st.Clusters[0].Leader == "" {
		t.Errorf("Status = %+v, %v", st, err)
	}
	tb, err := c.Table(context.Background())
	if err != nil || tb.Version != 1 || len(tb.Ranges) != 2 {
		t.Errorf("Table = %+v, %v", tb, err)
	}
}

// userRequests drops the HELLOs from a proxy's record.
func userRequests(p *testcluster.Proxy) []wire.Request {
	var out []wire.Request
	for _, r := range p.Requests() {
		if r.Op != wire.OpHello {
			out = append(out, r)
		}
	}
	return out
}

func TestInvalidPathNotSent(t *testing.T) {
	p := testcluster.NewProxy(t, shared.Addr)
	c := dial(t, []string{p.Addr})
	for _, path := range []string{"", "a", "/a/", "/a//b", "/a/../b", "/a\x00"} {
		_, err := c.Stat(context.Background(), path)
		if !errors.Is(err, client.ErrInvalid) || client.CodeOf(err) != client.CodeInvalid {
			t.Errorf("Stat(%q) = %v, want INVALID", path, err)
		}
	}
	if n := len(userRequests(p)); n != 0 {
		t.Errorf("%d invalid requests reached the server", n)
	}
}

func TestDialUnavailable(t *testing.T) {
	a, b := testcluster.ClosedAddr(t), testcluster.ClosedAddr(t)
	start := time.Now()
	_, err := client.Dial(context.Background(), []string{a, b})
	if !errors.Is(err, client.ErrUnavailable) || client.CodeOf(err) != client.CodeUnavailable {
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
	d := testcluster.Start(t, testcluster.Options{Nodes: 1, Token: "secret"})
	_, err := client.Dial(context.Background(), []string{d.Addr}, client.WithToken("wrong"))
	if !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("wrong token: %v", err)
	}
	c := dial(t, []string{d.Addr}, client.WithToken("secret"))
	if _, err := c.Exists(context.Background(), "/a"); err != nil {
		t.Fatal(err)
	}
}

func TestFailoverToNextRouter(t *testing.T) {
	p1 := testcluster.NewProxy(t, shared.Addr)
	r2, _ := shared.AddRouter(t)
	p2 := testcluster.NewProxy(t, r2)
	c := dial(t, []string{testcluster.ClosedAddr(t), p1.Addr, p2.Addr})
	ctx := context.Background()
	f := root(t, "c1", "") + "-f"
	if _, err := c.Put(ctx, f, []byte("1")); err != nil {
		t.Fatal(err)
	}
	p1.Close() // the first router's connections break
	if _, err := c.Put(ctx, f, []byte("2")); err != nil {
		t.Fatalf("Put after router loss: %v", err)
	}
	if d, err := c.Get(ctx, f); err != nil || string(d) != "2" {
		t.Fatalf("Get = %q, %v", d, err)
	}
	if len(userRequests(p2)) == 0 {
		t.Error("second router was never used")
	}
}

func TestAllRoutersDownRetriesUntilDeadline(t *testing.T) {
	p := testcluster.NewProxy(t, shared.Addr)
	c := dial(t, []string{p.Addr})
	p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Stat(ctx, "/a")
	// Either the break was noticed before sending (UNAVAILABLE) or the
	// request was lost in flight (TIMEOUT); both are honest.
	if code := client.CodeOf(err); code != client.CodeUnavailable && code != client.CodeTimeout {
		t.Fatalf("Stat with every router down: %v", err)
	}
}

func TestDeadline(t *testing.T) {
	p := testcluster.NewProxy(t, shared.Addr)
	p.Hold(func(r *wire.Request) bool { return r.Path == "/slow" }) // the router never answers it
	c := dial(t, []string{p.Addr}, client.WithTimeout(150*time.Millisecond))
	_, err := c.Get(context.Background(), "/slow")
	if !errors.Is(err, client.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow Get: %v, want TIMEOUT", err)
	}
	var ms uint32
	for _, r := range userRequests(p) {
		if r.Path == "/slow" {
			ms = r.TimeoutMs
		}
	}
	if ms == 0 || ms > 150 {
		t.Errorf("request carried TimeoutMs=%d, want (0, 150]", ms)
	}
}

func TestSessionSequence(t *testing.T) {
	p := testcluster.NewProxy(t, shared.Addr)
	c := dial(t, []string{p.Addr})
	ctx := context.Background()
	d := root(t, "c1", "")
	c.Mkdir(ctx, d)
	c.Stat(ctx, d)
	c.Put(ctx, d+"/f", nil)
	reqs := userRequests(p)
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
	c := sharedClient(t)
	ctx := context.Background()
	base := root(t, "c1", "")
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			p := fmt.Sprintf("%s/r%d/f", base, i%5)
			want := fmt.Sprint(i)
			if _, err := c.Put(ctx, fmt.Sprintf("%s/r%d/f%d", base, i%5, i), []byte(want), client.Parents()); err != nil {
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
	c := sharedClient(t)
	c.Close()
	_, err := c.Exists(context.Background(), "/a")
	if !errors.Is(err, client.ErrClosed) || !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("call after Close: %v", err)
	}
}

func TestStatJSON(t *testing.T) {
	s := client.Stat{Name: "a.txt", Type: client.TypeFile, Size: 5,
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
	p := testcluster.NewProxy(t, shared.Addr)
	c := dial(t, []string{p.Addr})
	p.Close()
	// Once the client has noticed the break, a call is never sent and
	// fails UNAVAILABLE (before that it may be lost in flight: TIMEOUT).
	eventually.Holds(t, 5*time.Second, "Stat with the only router gone to fail UNAVAILABLE", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := c.Stat(ctx, "/a")
		cancel()
		var ce *client.Error
		if errors.As(err, &ce) && ce.Code == client.CodeUnavailable {
			if ce.Op != "stat" || ce.Path != "/a" || !strings.Contains(ce.Message, "no router reachable") {
				t.Errorf("error %#v", ce)
			}
			return nil
		}
		if client.CodeOf(err) != client.CodeTimeout {
			t.Fatalf("Stat with the only router gone: %v", err)
		}
		return err
	})
}
