// Package clienttest provides an in-memory fake router for testing code
// that uses package client (the SDK, the CLI) without a deployment.
//
// The fake speaks the real wire protocol over TCP on 127.0.0.1 and keeps a
// single in-memory namespace with the semantics of DESIGN §4 (enough of
// them for tests: no chunks, no sessions, no splits). It is not a model of
// replication or routing.
package clienttest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

// FS is an in-memory namespace shared by any number of fake routers.
// Safe for concurrent use.
type FS struct {
	mu      sync.Mutex
	version uint64
	nodes   map[string]*wire.Stat // by path; "/" is implicit
	data    map[string][]byte
	now     func() time.Time

	// Status is returned for OpStatus; Table for OpTable.
	Status wire.Status
	Table  wire.TableInfo
}

// NewFS returns an empty namespace whose clock is time.Now.
func NewFS() *FS {
	return &FS{nodes: map[string]*wire.Stat{}, data: map[string][]byte{}, now: time.Now}
}

// SetClock replaces the clock used for mtimes.
func (f *FS) SetClock(now func() time.Time) {
	f.mu.Lock()
	f.now = now
	f.mu.Unlock()
}

// Router is one fake router serving an FS.
type Router struct {
	Addr string
	FS   *FS

	// Hook, if set, sees every request first; a non-nil response is
	// returned instead of the normal one. Set it before the first request.
	Hook func(req *wire.Request) *wire.Response

	srv *rpc.Server
}

// NewRouter starts a fake router for fs on 127.0.0.1:0 with the given auth
// token ("" for none); it is closed when t ends.
func NewRouter(t testing.TB, fs *FS, token string) *Router {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("clienttest: listen: %v", err)
	}
	r := &Router{Addr: ln.Addr().String(), FS: fs}
	r.srv = rpc.NewServer(rpc.ServerConfig{Name: "router", ID: "fake", Token: token}, rpc.HandlerFunc(r.handle))
	go r.srv.Serve(ln)
	t.Cleanup(func() { r.srv.Close() })
	return r
}

// Close stops the router, breaking its connections.
func (r *Router) Close() { r.srv.Close() }

func (r *Router) handle(_ context.Context, req *wire.Request) *wire.Response {
	if r.Hook != nil {
		if resp := r.Hook(req); resp != nil {
			return resp
		}
	}
	return r.FS.Handle(req)
}

// Handle applies one request.
func (f *FS) Handle(req *wire.Request) *wire.Response {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := req.ID
	switch req.Op {
	case wire.OpStatus:
		st := f.Status
		return &wire.Response{Status: &st}
	case wire.OpTable:
		tb := f.Table
		return &wire.Response{Routes: &tb}
	}
	p := req.Path
	if err := fspath.Validate(p); err != nil {
		return wire.Errorf(id, wire.Invalid, "%v", err)
	}
	switch req.Op {
	case wire.OpMkdir:
		if p == "/" || f.nodes[p] != nil {
			if req.Flags&wire.FlagParents != 0 && f.isDir(p) {
				return &wire.Response{Stat: f.stat(p)}
			}
			return wire.Errorf(id, wire.Exists, "%s: file exists", p)
		}
		if resp := f.parent(id, p, req.Flags&wire.FlagParents != 0); resp != nil {
			return resp
		}
		f.create(p, wire.TypeDir, nil)
		return &wire.Response{Stat: f.stat(p)}
	case wire.OpPut:
		if f.isDir(p) {
			return wire.Errorf(id, wire.IsDir, "%s: is a directory", p)
		}
		if resp := f.parent(id, p, req.Flags&wire.FlagParents != 0); resp != nil {
			return resp
		}
		f.create(p, wire.TypeFile, req.Data)
		return &wire.Response{Stat: f.stat(p)}
	case wire.OpGet:
		if resp := f.lookup(id, p); resp != nil {
			return resp
		}
		if f.isDir(p) {
			return wire.Errorf(id, wire.IsDir, "%s: is a directory", p)
		}
		return &wire.Response{Data: append([]byte{}, f.data[p]...)}
	case wire.OpStat:
		if resp := f.lookup(id, p); resp != nil {
			return resp
		}
		return &wire.Response{Stat: f.stat(p)}
	case wire.OpExists:
		return &wire.Response{Exists: p == "/" || f.nodes[p] != nil}
	case wire.OpList:
		if resp := f.lookup(id, p); resp != nil {
			return resp
		}
		if !f.isDir(p) {
			return wire.Errorf(id, wire.NotDir, "%s: not a directory", p)
		}
		var ents []wire.Stat
		for q, s := range f.nodes {
			if q != p && fspath.IsWithin(q, p) && !strings.Contains(q[len(strings.TrimSuffix(p, "/"))+1:], "/") {
				ents = append(ents, *s)
			}
		}
		sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
		return &wire.Response{Entries: ents}
	case wire.OpRemove:
		if p == "/" {
			return wire.Errorf(id, wire.Invalid, "cannot remove /")
		}
		if resp := f.lookup(id, p); resp != nil {
			return resp
		}
		var below []string
		for q := range f.nodes {
			if q != p && fspath.IsWithin(q, p) {
				below = append(below, q)
			}
		}
		if len(below) > 0 && req.Flags&wire.FlagRecursive == 0 {
			return wire.Errorf(id, wire.NotEmpty, "%s: directory not empty", p)
		}
		for _, q := range append(below, p) {
			delete(f.nodes, q)
			delete(f.data, q)
		}
		f.version++
		return &wire.Response{}
	}
	return wire.Errorf(id, wire.Invalid, "unsupported op %v", req.Op)
}

func (f *FS) isDir(p string) bool {
	return p == "/" || f.nodes[p] != nil && f.nodes[p].Type == wire.TypeDir
}

func (f *FS) lookup(id uint64, p string) *wire.Response {
	if p == "/" || f.nodes[p] != nil {
		return nil
	}
	for q := p; q != "/"; {
		q, _ = fspath.Split(q)
		if q != "/" && f.nodes[q] != nil && !f.isDir(q) {
			return wire.Errorf(id, wire.NotDir, "%s: not a directory", q)
		}
	}
	return wire.Errorf(id, wire.NotFound, "%s: no such file or directory", p)
}

// parent checks (or, with mkParents, creates) p's parent directories.
func (f *FS) parent(id uint64, p string, mkParents bool) *wire.Response {
	var missing []string
	for q := p; ; {
		q, _ = fspath.Split(q)
		if q == "/" {
			break
		}
		if s := f.nodes[q]; s != nil {
			if s.Type != wire.TypeDir {
				return wire.Errorf(id, wire.NotDir, "%s: not a directory", q)
			}
			break
		}
		missing = append(missing, q)
	}
	if len(missing) > 0 && !mkParents {
		return wire.Errorf(id, wire.NotFound, "%s: no such file or directory", missing[len(missing)-1])
	}
	for i := len(missing) - 1; i >= 0; i-- {
		f.create(missing[i], wire.TypeDir, nil)
	}
	return nil
}

func (f *FS) create(p string, t wire.FileType, data []byte) {
	f.version++
	_, name := fspath.Split(p)
	s := &wire.Stat{Name: name, Type: t, Mtime: f.now().UnixNano(), Version: f.version}
	if t == wire.TypeFile {
		sum := sha256.Sum256(data)
		s.Size, s.Checksum = int64(len(data)), "sha256:"+hex.EncodeToString(sum[:])
		f.data[p] = append([]byte{}, data...)
	}
	f.nodes[p] = s
}

func (f *FS) stat(p string) *wire.Stat {
	if p == "/" {
		return &wire.Stat{Type: wire.TypeDir}
	}
	s := *f.nodes[p]
	return &s
}
