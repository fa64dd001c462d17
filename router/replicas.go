package router

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"

	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/wire"
)

// Read replicas: a read that may be served by any member — a
// stale read always, a linearizable one when Config.FollowerReads is set
// (every member answers it after a ReadIndex round) — goes first to the
// member that bounded-load consistent hashing assigns to its path, so
// repeated reads of one file hit one member's cache, and no member takes
// more than Load times the average share.

// replicaLoad is the bounded-load factor: no member owns more than 1.25×
// the average share of partitions.
const replicaLoad = 1.25

type memberName string

func (m memberName) String() string { return string(m) }

type xxHasher struct{}

func (xxHasher) Sum64(b []byte) uint64 { return xxhash.Sum64(b) }

// replicaRings caches one hash ring per cluster, rebuilt when the routing
// table's version changes. Safe for concurrent use.
type replicaRings struct {
	mu      sync.Mutex
	version uint64
	rings   map[string]*consistent.Consistent
}

// pick returns the member address of c that serves reads of path.
func (rr *replicaRings) pick(version uint64, c wire.ClusterInfo, path string) string {
	if len(c.Members) == 0 {
		return ""
	}
	rr.mu.Lock()
	if rr.version != version || rr.rings == nil {
		rr.version, rr.rings = version, map[string]*consistent.Consistent{}
	}
	ring := rr.rings[c.ID]
	if ring == nil {
		ms := make([]consistent.Member, len(c.Members))
		for i, m := range c.Members {
			ms[i] = memberName(m.Addr)
		}
		ring = consistent.New(ms, consistent.Config{
			Hasher: xxHasher{}, PartitionCount: 271, ReplicationFactor: 20, Load: replicaLoad,
		})
		rr.rings[c.ID] = ring
	}
	rr.mu.Unlock()
	return ring.LocateKey([]byte(path)).String()
}

// readAnywhere reports whether req may be served by any member.
func (r *Router) readAnywhere(req *wire.Request) bool {
	switch req.Op {
	case wire.OpGet, wire.OpStat, wire.OpList, wire.OpExists:
		return req.Flags&wire.FlagStale != 0 || r.cfg.FollowerReads
	}
	return false
}

// Leader hints — a node's gossip, a NOT_LEADER answer's Leader, a cached
// leader — are followed only to addresses the routing table lists as
// members of that cluster; every address the router dials for a cluster
// comes from the table, so it never sends a request, or the HELLO token,
// to anyone else.

// hintLogEvery is the least time between two logs of refused hints.
const hintLogEvery = 10 * time.Second

// hintGuard counts leader hints refused and rate-limits their log.
type hintGuard struct {
	refused atomic.Uint64
	mu      sync.Mutex
	logged  time.Time // last log
	quiet   uint64    // refusals not logged since
}

// logNow counts one refusal and reports whether to log it now, with the
// number of refusals not logged since the last log.
func (g *hintGuard) logNow() (quiet uint64, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.logged) < hintLogEvery {
		g.quiet++
		return 0, false
	}
	quiet = g.quiet
	g.logged, g.quiet = time.Now(), 0
	return quiet, true
}

// listed reports whether c lists addr as a member.
func listed(c wire.ClusterInfo, addr string) bool {
	for _, m := range c.Members {
		if m.Addr == addr {
			return true
		}
	}
	return false
}

// acceptLeader reports whether the current routing table lists addr as a
// member of cluster; if not, the hint from source ("gossip",
// "not_leader") is counted and logged at most every hintLogEvery.
func (r *Router) acceptLeader(cluster, addr, source string) bool {
	if c, ok := control.Cluster(r.table.Current(), cluster); ok && listed(c, addr) {
		return true
	}
	total := r.hints.refused.Add(1)
	if quiet, ok := r.hints.logNow(); ok {
		r.log.Warn("leader hint for an address the routing table does not list for the cluster ignored",
			"source", source, "cluster", cluster, "addr", addr, "refused_total", total, "not_logged", quiet)
	}
	return false
}
