package cluster

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cleavefs/cleave/fsm"
	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/wire"
)

// maxCountedRoots bounds the roots whose requests a node counts; requests
// for roots beyond it are counted in Ops only. With root names of at most
// fspath.MaxComponent bytes the counts hold at most about 1 MiB.
const maxCountedRoots = 4096

// rootOps counts client requests per root directory. Safe for concurrent use.
type rootOps struct {
	mu sync.Mutex
	n  map[string]uint64
}

// add counts a request for path. A path that is not valid counts nothing:
// its root could be any size, and the request is refused anyway.
func (r *rootOps) add(path string) {
	if fspath.Validate(path) != nil {
		return
	}
	root := fspath.Root(path)
	if root == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]uint64{}
	}
	if _, ok := r.n[root]; ok || len(r.n) < maxCountedRoots {
		r.n[root]++
	}
}

// top merges the scanned sizes with the request counts and returns the
// wire.TopRoots roots with the most requests, then the most bytes.
func (r *rootOps) top(sizes map[string]*wire.RootUsage) []wire.RootUsage {
	all := map[string]wire.RootUsage{}
	for name, ru := range sizes {
		all[name] = *ru
	}
	r.mu.Lock()
	for name, n := range r.n {
		ru := all[name]
		ru.Name, ru.Ops = name, n
		all[name] = ru
	}
	r.mu.Unlock()
	out := make([]wire.RootUsage, 0, len(all))
	for _, ru := range all {
		out = append(out, ru)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Ops != out[j].Ops {
			return out[i].Ops > out[j].Ops
		}
		if out[i].Bytes != out[j].Bytes {
			return out[i].Bytes > out[j].Bytes
		}
		return out[i].Name < out[j].Name
	})
	return out[:min(len(out), wire.TopRoots)]
}

// usageRefresh is how old the usage in a node's status may be.
const usageRefresh = 2 * time.Second

// usageCache keeps the last Usage of a node so that STATUS never scans:
// a status more than usageRefresh after the last scan starts one in the
// background and reports the previous figures. Safe for concurrent use.
type usageCache struct {
	mu      sync.Mutex
	wg      sync.WaitGroup // the background scan, if one runs
	closed  bool           // no scan starts once the node closes its DB
	at      time.Time
	running bool
	files   uint64
	bytes   uint64
	roots   map[string]*wire.RootUsage // files and bytes per root, from the last scan
	chunks  fsm.ChunkUsage             // stored chunks, from the last scan
	served  atomic.Uint64              // client requests handled (not STATUS, not raft)
	perRoot rootOps                    // the same, per root directory
}

// report fills ns's Files, Bytes and Ops. The first call scans in line,
// so that a new node does not report zeros.
func (u *usageCache) report(f *fsm.FSM, ns *wire.NodeStatus) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.at.IsZero() && !u.closed {
		u.at = time.Now()
		u.store(scanUsage(f))
	}
	ns.Files, ns.Bytes, ns.Ops = u.files, u.bytes, u.served.Load()
	ns.Chunks, ns.ChunkBytes = u.chunks.Chunks, u.chunks.Bytes
	ns.PendingChunks, ns.PendingBytes = u.chunks.PendingChunks, u.chunks.PendingBytes
	ns.Roots = u.perRoot.top(u.roots)
	if u.running || u.closed || time.Since(u.at) < usageRefresh {
		return
	}
	u.running = true
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		sc := scanUsage(f)
		u.mu.Lock()
		defer u.mu.Unlock()
		u.running, u.at = false, time.Now()
		u.store(sc)
	}()
}

// usageScan is one scan of a node's state for its status.
type usageScan struct {
	files, bytes uint64
	roots        map[string]*wire.RootUsage
	chunks       fsm.ChunkUsage
	err          error
}

// scanUsage reads the files and the chunks of f. The two reads are not of
// one snapshot: a write between them shows in one and not the other.
func scanUsage(f *fsm.FSM) usageScan {
	var sc usageScan
	sc.files, sc.bytes, sc.roots, sc.err = f.Usage()
	if sc.err == nil {
		sc.chunks, sc.err = f.ChunkUsage()
	}
	return sc
}

// store keeps a scan's figures; a failed scan keeps the previous ones.
// The caller holds u.mu.
func (u *usageCache) store(sc usageScan) {
	if sc.err == nil {
		u.files, u.bytes, u.roots, u.chunks = sc.files, sc.bytes, sc.roots, sc.chunks
	}
}

// close stops new scans and waits for the one running: the node closes
// its DB next, and a scan must not read a closed DB.
func (u *usageCache) close() {
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	u.wg.Wait()
}
