package ops

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cleavefs/cleave/wire"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSidePort(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewRequestMetrics(reg, "node")
	m.Observe(wire.OpPut, wire.OK, 300*time.Microsecond)
	var ready atomic.Bool
	s, err := Start(Config{Addr: "127.0.0.1:0", Registry: reg, Ready: func() error {
		if !ready.Load() {
			return errors.New("no leader known")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr()

	tests := []struct {
		name, path string
		code       int
		want       string
	}{
		{"healthz", "/healthz", 200, "ok"},
		{"readyz not ready", "/readyz", 503, "no leader known"},
		{"metrics", "/metrics", 200, `cleave_node_requests_total{code="OK",op="PUT"} 1`},
		{"runtime metrics", "/metrics", 200, "go_goroutines"},
		{"pprof off by default", "/debug/pprof/", 404, ""},
		{"cmdline off by default", "/debug/pprof/cmdline", 404, ""},
		{"heap off by default", "/debug/pprof/heap", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, base+tc.path)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("GET %s = %d %q, want %d containing %q", tc.path, code, body, tc.code, tc.want)
			}
		})
	}
	ready.Store(true)
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz after ready = %d", code)
	}
}

// With Pprof the profiles are served, but never the command line: it
// holds the flags, and a flag may hold a secret.
func TestSidePortPprof(t *testing.T) {
	s, err := Start(Config{Addr: "127.0.0.1:0", Registry: prometheus.NewRegistry(), Pprof: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr()
	tests := []struct {
		path string
		code int
		want string
	}{
		{"/debug/pprof/", 200, "goroutine"},
		{"/debug/pprof/heap?debug=1", 200, "heap profile"},
		{"/debug/pprof/goroutine?debug=1", 200, "goroutine profile"},
		{"/debug/pprof/symbol", 200, "num_symbols"},
		{"/debug/pprof/cmdline", 404, ""},
	}
	for _, tc := range tests {
		code, body := get(t, base+tc.path)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s = %d %.80q, want %d containing %q", tc.path, code, body, tc.code, tc.want)
		}
		if tc.code == 404 && strings.Contains(body, "ops.test") {
			t.Errorf("GET %s leaked the command line: %q", tc.path, body)
		}
	}
}

func TestStartNeedsAddrAndRegistry(t *testing.T) {
	if _, err := Start(Config{Registry: prometheus.NewRegistry()}); err == nil {
		t.Fatal("no error for an empty address")
	}
	if _, err := Start(Config{Addr: "127.0.0.1:0"}); err == nil {
		t.Fatal("no error without a registry")
	}
}

// BenchmarkObserve measures what the request metrics add to every request
// a server with a side port handles (cleave up turns side ports on).
func BenchmarkObserve(b *testing.B) {
	m := NewRequestMetrics(prometheus.NewRegistry(), "node")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Observe(wire.OpPut, wire.OK, 300*time.Microsecond)
		}
	})
}
