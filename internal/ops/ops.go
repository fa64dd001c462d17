package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures the side port.
type Config struct {
	// Addr is the HOST:PORT to listen on; port 0 picks a free port (see
	// Server.Addr). Required.
	Addr string
	// Registry holds the process's metrics; Start adds the Go runtime and
	// process collectors to it. Required.
	Registry *prometheus.Registry
	// Ready reports why the process is not ready, or nil; /readyz answers
	// 503 with the error's text while it returns one. Nil means always ready.
	Ready func() error
	// Logger receives serve errors. Default slog.Default().
	Logger *slog.Logger
	// Pprof serves the Go profiles under /debug/pprof/. Default false:
	// profiles show stacks and memory to anyone who reaches the port.
	// /debug/pprof/cmdline is never served (a flag may hold a secret).
	Pprof bool
	// Handlers are more pages served next to the built-in ones, by
	// http.ServeMux pattern (a router's status page at "/"); they must
	// not use the built-in paths. Default none.
	Handlers map[string]http.Handler
}

// Server is a running side port.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Start listens on cfg.Addr and serves the side port in the background.
func Start(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		return nil, errors.New("ops: empty listen address")
	}
	if cfg.Registry == nil {
		return nil, errors.New("ops: no registry")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if cfg.Ready != nil {
			if err := cfg.Ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", http.NotFound)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	for pattern, h := range cfg.Handlers {
		mux.Handle(pattern, h)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ops: listen %s: %w", cfg.Addr, err)
	}
	s := &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	lg := cfg.Logger.With("component", "ops")
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			lg.Error("side port stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	lg.Info("side port serving", "addr", ln.Addr().String())
	return s, nil
}

// Addr returns the address the side port listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the side port, waiting up to a second for requests in
// progress (a CPU profile being taken is cut short).
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
}
