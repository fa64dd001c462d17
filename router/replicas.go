package router

import (
	"sync"

	"github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"

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
