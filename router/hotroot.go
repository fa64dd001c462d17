package router

import (
	"sync"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// A root directory lives whole in one cluster, so a root that carries most
// of its cluster's requests keeps most of them on one side of any split:
// halving the range cannot spread it. The router names such a root in the
// cluster's status (wire.ClusterStatus.HotRoot), from the per-root request
// counters the nodes report, over about the last hotRootWindow.
const (
	hotRootWindow = 30 * time.Second // how far back the counters are compared
	hotRootMinOps = 100              // fewer requests in the span: nothing is hot
	loadSampleGap = time.Second      // statuses closer than this keep no new sample
)

// nodeLoad is one node's request counters at a sample.
type nodeLoad struct {
	ops   uint64
	roots map[string]uint64
	// floor bounds the count of a root the node did not list: the
	// smallest listed when it listed wire.TopRoots (they are the busiest),
	// else 0.
	floor uint64
}

type loadSample struct {
	at    time.Time
	nodes map[uint64]nodeLoad // by raft id
}

// loadWindow keeps, per cluster, the samples of the last hotRootWindow.
// Safe for concurrent use.
type loadWindow struct {
	mu      sync.Mutex
	samples map[string][]loadSample
}

func sampleOf(nodes []wire.NodeStatus, now time.Time) loadSample {
	s := loadSample{at: now, nodes: map[uint64]nodeLoad{}}
	for _, n := range nodes {
		if n.Role == RoleDown {
			continue
		}
		nl := nodeLoad{ops: n.Ops, roots: map[string]uint64{}}
		for i, r := range n.Roots {
			nl.roots[r.Name] = r.Ops
			if len(n.Roots) >= wire.TopRoots && (i == 0 || r.Ops < nl.floor) {
				nl.floor = r.Ops
			}
		}
		s.nodes[n.ID] = nl
	}
	return s
}

// hotRoot records the cluster's counters at now and returns the root that
// carried at least half of its requests since the oldest sample of the
// window (since the nodes started when there is none), or nil. A root's
// count is a lower bound (a node lists only its busiest roots), so a root
// named hot is hot.
func (w *loadWindow) hotRoot(cluster string, nodes []wire.NodeStatus, now time.Time) *wire.HotRoot {
	cur := sampleOf(nodes, now)
	w.mu.Lock()
	if w.samples == nil {
		w.samples = map[string][]loadSample{}
	}
	ss := w.samples[cluster]
	var base loadSample
	if len(ss) > 0 {
		base = ss[0]
	}
	if len(ss) == 0 || now.Sub(ss[len(ss)-1].at) >= loadSampleGap {
		ss = append(ss, cur)
	}
	for len(ss) > 1 && now.Sub(ss[1].at) >= hotRootWindow {
		ss = ss[1:]
	}
	w.samples[cluster] = ss
	w.mu.Unlock()

	var total uint64
	perRoot := map[string]uint64{}
	for id, c := range cur.nodes {
		b, ok := base.nodes[id]
		if !ok || c.ops < b.ops { // no earlier sample, or the node restarted
			b = nodeLoad{}
		}
		total += c.ops - b.ops
		for name, n := range c.roots {
			was, listed := b.roots[name]
			if !listed {
				was = b.floor
			}
			if n > was {
				perRoot[name] += n - was
			}
		}
	}
	hot := wire.HotRoot{}
	for name, n := range perRoot {
		if n > hot.Ops || (n == hot.Ops && name < hot.Name) {
			hot.Name, hot.Ops = name, n
		}
	}
	if total < hotRootMinOps || 2*hot.Ops < total {
		return nil
	}
	hot.Total = total
	if !base.at.IsZero() {
		hot.Seconds = now.Sub(base.at).Seconds()
	}
	return &hot
}
