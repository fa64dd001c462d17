package loadgen

import (
	"context"
	"fmt"
	"strings"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

// Tabler is what pinning clients to clusters needs of a Store: the
// routing table. CleaveStore has it; it is checked at run time.
type Tabler interface {
	Table(ctx context.Context) (*client.RoutingTable, error)
}

// Pinning assigns root directories to clusters: client i of a pinned run
// uses only Roots[i mod len(Clusters)], which are owned by Clusters[i mod
// len(Clusters)].
type Pinning struct {
	Clusters []string   // cluster ids, in the routing table's order of first range
	Roots    [][]string // Roots[g]: root directory paths whose ring point cluster Clusters[g] owns
}

// pinCandidates bounds the candidate root names PinRoots tries: a cluster
// owning less than about perCluster/pinCandidates of the ring gets too
// few roots, and PinRoots says so instead of searching on.
const pinCandidates = 1 << 20

// PinRoots chooses perCluster >= 1 root directories for each cluster that
// owns a range of t: it tries the names of Namer{Prefix: prefix}.Root(0),
// Root(1), ... in turn and gives each to the cluster owning its ring point
// (ring.Point of the root's name) until every cluster has perCluster. It
// returns an error naming the cluster and its ranges if a cluster gets
// fewer within the first pinCandidates names, or if t has no ranges.
func PinRoots(t *client.RoutingTable, prefix string, perCluster int64) (*Pinning, error) {
	if perCluster < 1 {
		return nil, fmt.Errorf("pin: %d roots per cluster: want at least 1", perCluster)
	}
	if t == nil || len(t.Ranges) == 0 {
		return nil, fmt.Errorf("pin: the routing table has no ranges")
	}
	p := &Pinning{}
	index := map[string]int{} // cluster id -> its place in p
	for _, ro := range t.Ranges {
		if _, ok := index[ro.Cluster]; !ok {
			index[ro.Cluster] = len(p.Clusters)
			p.Clusters = append(p.Clusters, ro.Cluster)
		}
	}
	p.Roots = make([][]string, len(p.Clusters))
	names := Namer{Prefix: prefix}
	short := len(p.Clusters) // clusters that still need roots
	for k := int64(0); k < pinCandidates && short > 0; k++ {
		root := names.Root(k)
		g, ok := owner(t.Ranges, ring.PathPoint(root), index)
		if !ok || int64(len(p.Roots[g])) >= perCluster {
			continue
		}
		p.Roots[g] = append(p.Roots[g], root)
		if int64(len(p.Roots[g])) == perCluster {
			short--
		}
	}
	for g, roots := range p.Roots {
		if int64(len(roots)) < perCluster {
			return nil, fmt.Errorf("pin: cluster %s got %d of %d roots from the first %d names %s-NNN: its ranges %s hold too little of the ring",
				p.Clusters[g], len(roots), perCluster, pinCandidates, prefix, rangesOf(t.Ranges, p.Clusters[g]))
		}
	}
	return p, nil
}

// owner returns the index of the cluster whose range holds point pt.
func owner(rs []client.RangeOwner, pt uint64, index map[string]int) (int, bool) {
	for _, ro := range rs {
		if (wire.Range{Start: ro.Range.Start, End: ro.Range.End}).Contains(pt) {
			return index[ro.Cluster], true
		}
	}
	return 0, false
}

// rangesOf lists cluster's ranges for messages: "[0x0, 0x8000000000000000)".
func rangesOf(rs []client.RangeOwner, cluster string) string {
	var out []string
	for _, ro := range rs {
		if ro.Cluster == cluster {
			out = append(out, fmt.Sprintf("[%#x, %#x)", ro.Range.Start, ro.Range.End))
		}
	}
	return strings.Join(out, " ")
}

// pinNamer returns the Namer of client id under p: its cluster's roots.
func pinNamer(p *Pinning, prefix string, id int) Namer {
	dirs := p.Roots[id%len(p.Clusters)]
	return Namer{Prefix: prefix, Roots: int64(len(dirs)), Dirs: dirs}
}
