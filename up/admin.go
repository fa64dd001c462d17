package up

// The admin socket: DIR/up.sock, a unix socket (mode 0600, so only the user
// who runs `cleave up` reaches it) on which the supervisor answers HTTP
// with JSON bodies. One call:
//
//	POST /split  {"cluster": "c1", "new_cluster": "c3", "at": 0}
//	  200 {"split": wire.SplitStatus}   the split is planned in the meta group
//	  4xx/5xx {"code": "CONFLICT", "error": "..."}
//
// `cleave split` uses it through RequestSplit, then follows the split's
// phases through the routers like for any other deployment.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/wire"
)

// AdminSocket is the name, inside the data directory, of the supervisor's
// admin socket.
const AdminSocket = "up.sock"

// splitRequestTimeout bounds the supervisor's work on one split request
// (starting the nodes and planning the split), whatever the caller's
// deadline: a caller that goes away must not leave it half done.
const splitRequestTimeout = 60 * time.Second

type adminReply struct {
	Split *client.SplitStatus `json:"split,omitempty"`
	Code  string              `json:"code,omitempty"`
	Error string              `json:"error,omitempty"`
}

// serveAdmin listens on DIR/up.sock and returns a function that closes it.
func (s *supervisor) serveAdmin() (func(), error) {
	path := filepath.Join(s.cfg.DataDir, AdminSocket)
	os.Remove(path) // a stale socket of a dead supervisor; up.lock says none runs
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /split", func(w http.ResponseWriter, r *http.Request) {
		var req SplitRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.Cluster == "" {
			writeAdmin(w, http.StatusBadRequest, adminReply{Code: wire.Invalid.String(), Error: fmt.Sprintf("want {\"cluster\": ID, \"new_cluster\": ID, \"at\": N}: %v", err)})
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), splitRequestTimeout)
		defer cancel()
		rec, err := s.split(ctx, req)
		if err != nil {
			code, msg := wire.Unavailable, err.Error()
			var we *wire.Error
			if errors.As(err, &we) {
				code, msg = we.Code, we.Message
			} else if c := client.CodeOf(err); c != client.CodeInternal {
				code = wire.Code(c) // the SDK's codes are the protocol's
			}
			status := http.StatusServiceUnavailable
			switch code {
			case wire.Invalid:
				status = http.StatusBadRequest
			case wire.NotFound:
				status = http.StatusNotFound
			case wire.Conflict, wire.Exists:
				status = http.StatusConflict
			}
			writeAdmin(w, status, adminReply{Code: code.String(), Error: msg})
			return
		}
		writeAdmin(w, http.StatusOK, adminReply{Split: &rec})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		os.Remove(path)
	}, nil
}

func writeAdmin(w http.ResponseWriter, status int, r adminReply) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(r)
}

// RequestSplit asks the `cleave up` running on dataDir to split
// req.Cluster: it starts the new cluster's nodes and plans the split, and
// returns the planned record. The error is ErrNoSupervisor if none runs
// there, a *wire.Error with the supervisor's code if it refused.
func RequestSplit(ctx context.Context, dataDir string, req SplitRequest) (*client.SplitStatus, error) {
	path := filepath.Join(dataDir, AdminSocket)
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	defer hc.CloseIdleConnections()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://cleave-up/split", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(hreq)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("%w (no %s)", ErrNoSupervisor, path)
		}
		return nil, fmt.Errorf("up: admin socket %s: %w", path, err)
	}
	defer resp.Body.Close()
	var r adminReply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("up: admin socket %s: %s: %w", path, resp.Status, err)
	}
	if r.Error != "" || r.Split == nil {
		code, ok := wire.ParseCode(r.Code)
		if !ok {
			code = wire.Internal
		}
		return nil, &wire.Error{Code: code, Message: r.Error}
	}
	return r.Split, nil
}
