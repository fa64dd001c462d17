package up

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cleavefs/cleave/internal/atomicfile"
	"github.com/cleavefs/cleave/internal/ports"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

// TopologyFile is the name of the file, inside the data directory, that
// records the deployment chosen on the first start.
const TopologyFile = "up.json"

// topologyFormat is the version of the up.json layout. Format 1 had one
// router ("router"); format 2 has a list ("routers"). Format 1 files are
// read as a single router keeping its table file.
const topologyFormat = 2

// Topology is the deployment `cleave up` runs: routers and clusters of
// nodes, each with a fixed loopback address. It is chosen on the first start
// in a data directory and reused on every later start, so that every node
// finds its data (and its Raft peers) again.
type Topology struct {
	Format   int           `json:"format"`           // layout version, 2
	Routers  []RouterSpec  `json:"routers"`          // the router processes; the first serves --listen
	Router   *RouterSpec   `json:"router,omitempty"` // format 1 only: the single router
	Clusters []ClusterSpec `json:"clusters"`         // in ring order: cluster i owns ring.Even(n)[i]
}

// RouterSpec is one router process of a topology. With more than one, the
// routers form the meta group: RaftID is its member id there.
type RouterSpec struct {
	ID     string `json:"id"`                // router id, "r1"
	RaftID uint64 `json:"raft_id,omitempty"` // member id in the meta group
	Listen string `json:"listen"`            // client address, HOST:PORT
	Peer   string `json:"peer,omitempty"`    // peer address (meta group, router to router), HOST:PORT
	Gossip string `json:"gossip,omitempty"`  // gossip pool address (UDP and TCP)
	HTTP   string `json:"http,omitempty"`    // HTTP side port: status page, /metrics, /healthz
}

// Listen returns the client address of the first router, the one
// `cleave up --listen` names.
func (t *Topology) Listen() string {
	if len(t.Routers) == 0 {
		return ""
	}
	return t.Routers[0].Listen
}

// addrs returns every address the topology's processes listen on: each
// router's and node's client, peer, gossip and side-port address.
func (t *Topology) addrs() []string {
	var used []string
	for _, r := range t.Routers {
		used = append(used, r.Listen, r.Peer, r.Gossip, r.HTTP)
	}
	for _, c := range t.Clusters {
		for _, n := range c.Nodes {
			used = append(used, n.Addr, n.Peer, n.Gossip, n.HTTP)
		}
	}
	return used
}

// RouterAddrs returns every router's address, the first first.
func (t *Topology) RouterAddrs() []string {
	out := make([]string, len(t.Routers))
	for i, r := range t.Routers {
		out[i] = r.Listen
	}
	return out
}

// MetaPeers returns the meta group's members as raft id -> addresses
// (wire.JoinAddrs: client and peer); empty for a single router, which
// keeps its table in a file.
func (t *Topology) MetaPeers() map[uint64]string {
	if len(t.Routers) < 2 {
		return nil
	}
	p := make(map[uint64]string, len(t.Routers))
	for _, r := range t.Routers {
		p[r.RaftID] = wire.JoinAddrs(r.Listen, r.Peer)
	}
	return p
}

// GossipSeeds returns the routers' gossip addresses: every process joins
// the pool through them.
func (t *Topology) GossipSeeds() []string {
	var out []string
	for _, r := range t.Routers {
		if r.Gossip != "" {
			out = append(out, r.Gossip)
		}
	}
	return out
}

// assignPorts gives every process without a gossip, peer or side-port
// address a free one and reports whether it changed anything (older
// up.json files have none).
func (t *Topology) assignPorts() (bool, error) {
	var slots []*string
	add := func(p *string) {
		if *p == "" {
			slots = append(slots, p)
		}
	}
	for i := range t.Routers {
		add(&t.Routers[i].Gossip)
		add(&t.Routers[i].Peer)
		add(&t.Routers[i].HTTP)
	}
	for i := range t.Clusters {
		for j := range t.Clusters[i].Nodes {
			add(&t.Clusters[i].Nodes[j].Gossip)
			add(&t.Clusters[i].Nodes[j].Peer)
			add(&t.Clusters[i].Nodes[j].HTTP)
		}
	}
	if len(slots) == 0 {
		return false, nil
	}
	used := t.addrs()
	addrs, err := FreePorts(len(slots), used...)
	if err != nil {
		return false, err
	}
	for i, p := range slots {
		*p = addrs[i]
	}
	return true, nil
}

// moveBusySidePorts gives every process whose saved side port another
// process has taken a free one, and reports whether it changed anything.
// Unlike client and peer addresses, a side port is nobody's identity:
// moving it loses nothing, and keeps that child from failing to start.
func (t *Topology) moveBusySidePorts() (bool, error) {
	var busy []*string
	check := func(p *string) {
		if *p != "" && portFree(*p) != nil {
			busy = append(busy, p)
		}
	}
	for i := range t.Routers {
		check(&t.Routers[i].HTTP)
	}
	for i := range t.Clusters {
		for j := range t.Clusters[i].Nodes {
			check(&t.Clusters[i].Nodes[j].HTTP)
		}
	}
	if len(busy) == 0 {
		return false, nil
	}
	addrs, err := FreePorts(len(busy), t.addrs()...)
	if err != nil {
		return false, err
	}
	for i, p := range busy {
		*p = addrs[i]
	}
	return true, nil
}

// upgrade turns a format-1 topology into format 2 in memory.
func (t *Topology) upgrade() {
	if t.Format == 1 && t.Router != nil {
		t.Routers = []RouterSpec{*t.Router}
		t.Router = nil
		t.Format = topologyFormat
	}
}

// ClusterSpec is one cluster of a topology.
//
// A cluster born of a split (Parent set) is not in the routers' bootstrap
// list: its nodes start empty with --join, as learners of Parent, and leave
// it at the SPLIT entry (docs/split.md). While its split runs it is Pending
// and owns no range; once the split is done, Range is what the routing
// table gave it, and Parent's Range is updated to the lower half.
type ClusterSpec struct {
	ID      string     `json:"-"` // "c1", "c2", ...
	Range   wire.Range `json:"-"` // owned range (at bootstrap, or after the last split); written as "range": "START-END"
	Nodes   []NodeSpec `json:"-"` // the members, by raft id
	Parent  string     `json:"-"` // the cluster it was split from; "" for a bootstrap cluster
	Pending bool       `json:"-"` // its split has not finished: no range yet
}

// NodeSpec is one storage node of a cluster.
type NodeSpec struct {
	ID     uint64 `json:"id"`               // raft id, unique across the deployment
	Addr   string `json:"addr"`             // client address, HOST:PORT
	Peer   string `json:"peer,omitempty"`   // peer address (raft, membership, split), HOST:PORT
	Gossip string `json:"gossip,omitempty"` // gossip pool address (UDP and TCP)
	HTTP   string `json:"http,omitempty"`   // HTTP side port: /metrics, /healthz, /readyz
	Join   bool   `json:"join,omitempty"`   // added to a running cluster (a replacement): starts with --join
}

type clusterSpecJSON struct {
	ID      string     `json:"id"`
	Range   string     `json:"range,omitempty"`
	Nodes   []NodeSpec `json:"nodes"`
	Parent  string     `json:"split_from,omitempty"`
	Pending bool       `json:"pending,omitempty"`
}

// MarshalJSON writes the range as "START-END" (see wire.FormatRange); a pending
// cluster has none.
func (c ClusterSpec) MarshalJSON() ([]byte, error) {
	j := clusterSpecJSON{ID: c.ID, Nodes: c.Nodes, Parent: c.Parent, Pending: c.Pending}
	if !c.Pending {
		j.Range = wire.FormatRange(c.Range)
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *ClusterSpec) UnmarshalJSON(b []byte) error {
	var j clusterSpecJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var r wire.Range
	if !j.Pending {
		var err error
		if r, err = wire.ParseRange(j.Range); err != nil {
			return fmt.Errorf("cluster %q: %w", j.ID, err)
		}
	}
	*c = ClusterSpec{ID: j.ID, Range: r, Nodes: j.Nodes, Parent: j.Parent, Pending: j.Pending}
	return nil
}

// Info returns the cluster as the router's bootstrap table names it.
func (c ClusterSpec) Info() wire.ClusterInfo {
	ci := wire.ClusterInfo{ID: c.ID, Members: make([]wire.Member, len(c.Nodes))}
	for i, n := range c.Nodes {
		ci.Members[i] = wire.Member{ID: n.ID, Addr: n.Addr, PeerAddr: n.Peer}
	}
	return ci
}

// Peers returns the cluster's members as raft id -> addresses
// (wire.JoinAddrs: client and peer), as `cleave node --peers` reads them.
func (c ClusterSpec) Peers() map[uint64]string {
	p := make(map[uint64]string, len(c.Nodes))
	for _, n := range c.Nodes {
		p[n.ID] = wire.JoinAddrs(n.Addr, n.Peer)
	}
	return p
}

// processes is how many processes run the deployment: its routers and
// the nodes of every cluster, pending ones included.
func (t *Topology) processes() int {
	n := len(t.Routers)
	for _, c := range t.Clusters {
		n += len(c.Nodes)
	}
	return n
}

// Replicas returns the number of nodes per cluster (that of the first).
func (t *Topology) Replicas() int {
	if len(t.Clusters) == 0 {
		return 0
	}
	return len(t.Clusters[0].Nodes)
}

// Validate reports what is wrong with t, if anything.
func (t *Topology) Validate() error {
	if t.Format != topologyFormat {
		return fmt.Errorf("format %d, want %d", t.Format, topologyFormat)
	}
	if len(t.Routers) == 0 {
		return fmt.Errorf("no routers")
	}
	addrs := map[string]string{}
	raftIDs := map[uint64]bool{}
	for _, r := range t.Routers {
		if r.ID == "" {
			return fmt.Errorf("a router has no id")
		}
		if err := claimAddrs(addrs, "router "+r.ID, r.Listen, r.Peer, r.HTTP); err != nil {
			return fmt.Errorf("router %s: %v", r.ID, err)
		}
		if len(t.Routers) > 1 && (r.RaftID == 0 || raftIDs[r.RaftID]) {
			return fmt.Errorf("router %s: raft id %d is zero or repeated", r.ID, r.RaftID)
		}
		raftIDs[r.RaftID] = true
	}
	if len(t.Clusters) == 0 {
		return fmt.Errorf("no clusters")
	}
	ids := map[string]bool{}
	nodes := map[uint64]bool{}
	ranges := make([]wire.Range, 0, len(t.Clusters))
	for _, c := range t.Clusters {
		if c.ID == "" || ids[c.ID] {
			return fmt.Errorf("cluster id %q is empty or repeated", c.ID)
		}
		ids[c.ID] = true
		if len(c.Nodes) == 0 {
			return fmt.Errorf("cluster %q has no nodes", c.ID)
		}
		for _, n := range c.Nodes {
			if n.ID == 0 || nodes[n.ID] {
				return fmt.Errorf("cluster %q: node id %d is zero or repeated", c.ID, n.ID)
			}
			nodes[n.ID] = true
			if err := claimAddrs(addrs, "node "+strconv.FormatUint(n.ID, 10), n.Addr, n.Peer, n.HTTP); err != nil {
				return fmt.Errorf("cluster %q: node %d: %v", c.ID, n.ID, err)
			}
		}
		if !c.Pending {
			ranges = append(ranges, c.Range)
		}
	}
	for _, c := range t.Clusters {
		if c.Parent != "" && !ids[c.Parent] {
			return fmt.Errorf("cluster %q: split from unknown cluster %q", c.ID, c.Parent)
		}
		if c.Parent == "" && c.Pending {
			return fmt.Errorf("cluster %q: pending but not split from any cluster", c.ID)
		}
	}
	if err := ring.CheckPartition(ranges); err != nil {
		return fmt.Errorf("cluster ranges: %v", err)
	}
	return nil
}

// claimAddrs records a process's client address and its other addresses
// (peer, side port; those set) in used, by owner, and says which is
// malformed or taken.
func claimAddrs(used map[string]string, owner, addr string, more ...string) error {
	for i, a := range append([]string{addr}, more...) {
		if i > 0 && a == "" {
			continue
		}
		if err := CheckAddr(a); err != nil {
			return err
		}
		if other, dup := used[a]; dup {
			return fmt.Errorf("address %s already used by %s", a, other)
		}
		used[a] = owner
	}
	return nil
}

// Cluster returns the cluster named id.
func (t *Topology) Cluster(id string) (*ClusterSpec, bool) {
	for i := range t.Clusters {
		if t.Clusters[i].ID == id {
			return &t.Clusters[i], true
		}
	}
	return nil, false
}

// Bootstrap returns the clusters the routers were started with, in ring
// order: those not born of a split. Their list never changes, so every
// router gets the same --cluster flags on every start.
func (t *Topology) Bootstrap() []ClusterSpec {
	var out []ClusterSpec
	for _, c := range t.Clusters {
		if c.Parent == "" {
			out = append(out, c)
		}
	}
	return out
}

// nextNodeID returns a raft id above every node id of t.
func (t *Topology) nextNodeID() uint64 {
	var id uint64
	for _, c := range t.Clusters {
		for _, n := range c.Nodes {
			id = max(id, n.ID)
		}
	}
	return id + 1
}

// nextClusterID returns "cN" for the smallest N above every cN of t and of
// taken (the new clusters of past splits, abandoned ones included).
func (t *Topology) nextClusterID(taken ...string) string {
	n := 0
	for _, c := range t.Clusters {
		taken = append(taken, c.ID)
	}
	for _, id := range taken {
		if v, err := strconv.Atoi(strings.TrimPrefix(id, "c")); err == nil && strings.HasPrefix(id, "c") {
			n = max(n, v)
		}
	}
	return "c" + strconv.Itoa(n+1)
}

// Mismatch returns a message saying how the requested shape differs from
// t, or "" if it does not. Zero means "not requested" and never differs.
func (t *Topology) Mismatch(clusters, replicas int) string {
	boot := len(t.Bootstrap()) // splits add clusters; --clusters shapes the first start
	if (clusters == 0 || clusters == boot) && (replicas == 0 || replicas == t.Replicas()) {
		return ""
	}
	return fmt.Sprintf("the data directory already holds %d clusters x %d nodes; keeping that and ignoring --clusters %d --replicas %d (start with an empty --data directory for a new shape)",
		boot, t.Replicas(), orDefault(clusters, boot), orDefault(replicas, t.Replicas()))
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// NewTopology chooses a fresh topology: clusters c1..cN over ring.Even(N),
// each with replicas nodes, node ids 1..N*R in order, every node on a free
// loopback port, and routers r1..rM (raft ids 1..M), the first on
// routerListen and the others on free ports.
func NewTopology(clusters, replicas, routers int, routerListen string) (*Topology, error) {
	if clusters <= 0 || replicas <= 0 || routers <= 0 {
		return nil, fmt.Errorf("need at least one router and one cluster of one node, got %d routers, %d x %d", routers, clusters, replicas)
	}
	addrs, err := FreePorts(clusters*replicas+routers-1, routerListen)
	if err != nil {
		return nil, err
	}
	t := &Topology{Format: topologyFormat}
	for i := range routers {
		listen := routerListen
		if i > 0 {
			listen = addrs[clusters*replicas+i-1]
		}
		t.Routers = append(t.Routers, RouterSpec{ID: "r" + strconv.Itoa(i+1), RaftID: uint64(i + 1), Listen: listen})
	}
	ranges := ring.Even(clusters)
	id := uint64(1)
	for i := range clusters {
		c := ClusterSpec{ID: "c" + strconv.Itoa(i+1), Range: ranges[i]}
		for range replicas {
			c.Nodes = append(c.Nodes, NodeSpec{ID: id, Addr: addrs[id-1]})
			id++
		}
		t.Clusters = append(t.Clusters, c)
	}
	if _, err := t.assignPorts(); err != nil {
		return nil, err
	}
	return t, t.Validate()
}

// FreePorts returns n distinct free addresses on 127.0.0.1, none equal to
// any of avoid, chosen below the kernel's ephemeral range (internal/ports)
// so that no outgoing connection takes one before its process binds it.
func FreePorts(n int, avoid ...string) ([]string, error) { return ports.Free(n, avoid...) }

// LoadTopology reads DIR/up.json. If there is none, the error satisfies
// errors.Is(err, fs.ErrNotExist).
func LoadTopology(dir string) (*Topology, error) {
	path := filepath.Join(dir, TopologyFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t Topology
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	t.upgrade()
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &t, nil
}

// SaveTopology writes t to DIR/up.json atomically: a temporary file is
// written and synced, then renamed over the old one, and the directory synced.
func SaveTopology(dir string, t *Topology) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("save topology: %w", err)
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if err := atomicfile.WriteFile(filepath.Join(dir, TopologyFile), b, 0o644); err != nil {
		return fmt.Errorf("save topology: %w", err)
	}
	return nil
}

// isNotExist reports whether err says a file is missing.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
