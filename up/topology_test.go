package up

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

func TestNewTopology(t *testing.T) {
	topo, err := NewTopology(3, 2, 3, "127.0.0.1:7400")
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Clusters) != 3 || topo.Replicas() != 2 {
		t.Fatalf("shape %d x %d, want 3 x 2", len(topo.Clusters), topo.Replicas())
	}
	ranges := ring.Even(3)
	id := uint64(1)
	seen := map[string]bool{}
	for i, c := range topo.Clusters {
		if want := "c" + string(rune('1'+i)); c.ID != want {
			t.Errorf("cluster %d id %q, want %q", i, c.ID, want)
		}
		if c.Range != ranges[i] {
			t.Errorf("cluster %s range %v, want %v", c.ID, c.Range, ranges[i])
		}
		for _, n := range c.Nodes {
			if n.ID != id {
				t.Errorf("node id %d, want %d", n.ID, id)
			}
			id++
			host, _, _ := net.SplitHostPort(n.Addr)
			if host != "127.0.0.1" || seen[n.Addr] {
				t.Errorf("node %d addr %q: not a fresh loopback address", n.ID, n.Addr)
			}
			seen[n.Addr] = true
		}
	}
	// Every process has its own side port, distinct from every other
	// address of the topology.
	side := map[string]bool{}
	for _, a := range topo.addrs() {
		side[a] = false
	}
	claim := func(who, a string) {
		if a == "" || side[a] {
			t.Errorf("%s side port %q: empty or shared", who, a)
		}
		side[a] = true
	}
	for _, r := range topo.Routers {
		claim("router "+r.ID, r.HTTP)
	}
	for _, c := range topo.Clusters {
		for _, n := range c.Nodes {
			claim(nodeName(c, n), n.HTTP)
		}
	}
	if len(topo.Routers) != 3 || topo.Listen() != "127.0.0.1:7400" || topo.Routers[0].ID == "" {
		t.Errorf("routers %+v", topo.Routers)
	}
	if p := topo.MetaPeers(); len(p) != 3 || p[1] != "127.0.0.1:7400/"+topo.Routers[0].Peer || topo.Routers[0].Peer == "" {
		t.Errorf("meta peers %v", p)
	}
	if _, err := NewTopology(0, 3, 1, "127.0.0.1:7400"); err == nil {
		t.Error("NewTopology(0, 3) succeeded")
	}
}

func TestTopologyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadTopology(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadTopology of an empty dir: %v, want fs.ErrNotExist", err)
	}
	topo, err := NewTopology(2, 3, 1, "127.0.0.1:7499")
	if err != nil {
		t.Fatal(err)
	}
	if err := SaveTopology(dir, topo); err != nil {
		t.Fatal(err)
	}
	got, err := LoadTopology(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, topo) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, topo)
	}
	b, _ := os.ReadFile(filepath.Join(dir, TopologyFile))
	if !strings.Contains(string(b), `"range": "9223372036854775808-18446744073709551616"`) {
		t.Errorf("up.json does not spell the top range as START-END:\n%s", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries after save, want only %s (temporary file left?)", len(entries), TopologyFile)
	}
}

func TestLoadTopologyBad(t *testing.T) {
	tests := []struct {
		name, body, wantErr string
	}{
		{"not json", "{", "unexpected end of JSON"},
		{"bad range", `{"format":1,"router":{"id":"r1","listen":"127.0.0.1:1"},"clusters":[{"id":"c1","range":"5","nodes":[{"id":1,"addr":"127.0.0.1:2"}]}]}`, `cluster "c1": range "5"`},
		{"gap", `{"format":1,"router":{"id":"r1","listen":"127.0.0.1:1"},"clusters":[{"id":"c1","range":"1-18446744073709551616","nodes":[{"id":1,"addr":"127.0.0.1:2"}]}]}`, "cluster ranges"},
		{"dup node", `{"format":1,"router":{"id":"r1","listen":"127.0.0.1:1"},"clusters":[{"id":"c1","range":"0-18446744073709551616","nodes":[{"id":1,"addr":"127.0.0.1:2"},{"id":1,"addr":"127.0.0.1:3"}]}]}`, "node id 1 is zero or repeated"},
		{"dup addr", `{"format":1,"router":{"id":"r1","listen":"127.0.0.1:1"},"clusters":[{"id":"c1","range":"0-18446744073709551616","nodes":[{"id":1,"addr":"127.0.0.1:1"}]}]}`, "already used by router"},
		{"format", `{"format":3}`, "format 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, TopologyFile), []byte(tt.body), 0o644)
			_, err := LoadTopology(dir)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), TopologyFile) {
				t.Fatalf("error %v, want one naming %s and containing %q", err, TopologyFile, tt.wantErr)
			}
		})
	}
}

func TestMismatch(t *testing.T) {
	topo, err := NewTopology(2, 3, 1, "127.0.0.1:7400")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		clusters, replicas int
		want               string
	}{
		{0, 0, ""},
		{2, 3, ""},
		{2, 0, ""},
		{0, 3, ""},
		{4, 0, "already holds 2 clusters x 3 nodes; keeping that and ignoring --clusters 4 --replicas 3"},
		{0, 5, "ignoring --clusters 2 --replicas 5"},
	} {
		got := topo.Mismatch(tt.clusters, tt.replicas)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("Mismatch(%d, %d) = %q, want %q", tt.clusters, tt.replicas, got, tt.want)
		}
	}
}

func TestPrepareTopologyReuses(t *testing.T) {
	dir := t.TempDir()
	var warnings []string
	warn := func(msg string, _ ...any) { warnings = append(warnings, msg) }
	cfg := Config{DataDir: dir, Clusters: 3, Replicas: 1, Routers: 1}
	first, err := prepareTopology(cfg, warn)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Clusters) != 3 || first.Replicas() != 1 || first.Listen() != DefaultListen {
		t.Fatalf("first start chose %d x %d on %s", len(first.Clusters), first.Replicas(), first.Listen())
	}
	if len(warnings) != 0 {
		t.Fatalf("warnings on first start: %q", warnings)
	}

	// A later start with another shape keeps the saved one and says so.
	second, err := prepareTopology(Config{DataDir: dir, Clusters: 2, Replicas: 3}, warn)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, second) {
		t.Fatalf("second start changed the topology:\n%+v\n%+v", first, second)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "already holds 3 clusters x 1 nodes") {
		t.Fatalf("warnings %q", warnings)
	}

	// Defaults say nothing; a new --listen moves the router and is saved.
	third, err := prepareTopology(Config{DataDir: dir, Listen: "127.0.0.1:7499"}, warn)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 {
		t.Fatalf("unexpected warning %q", warnings[1:])
	}
	saved, err := LoadTopology(dir)
	if err != nil {
		t.Fatal(err)
	}
	if third.Listen() != "127.0.0.1:7499" || saved.Listen() != "127.0.0.1:7499" {
		t.Fatalf("router listen %q, saved %q", third.Listen(), saved.Listen())
	}
	if !reflect.DeepEqual(saved.Clusters, first.Clusters) {
		t.Fatal("moving the router changed the clusters")
	}
}

func TestFreePorts(t *testing.T) {
	addrs, err := FreePorts(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("port %s handed out twice", a)
		}
		seen[a] = true
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("free port %s cannot be listened on: %v", a, err)
		}
		ln.Close()
	}
	// A port to avoid is never returned.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	avoid := ln.Addr().String()
	ln.Close()
	more, err := FreePorts(5, avoid)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range more {
		if a == avoid {
			t.Fatalf("FreePorts returned %s, which it was told to avoid", a)
		}
	}
}

func TestCheckPortsFree(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()

	topo, err := NewTopology(1, 1, 1, busy)
	if err != nil {
		t.Fatal(err)
	}
	err = checkPortsFree(topo)
	if err == nil || !strings.Contains(err.Error(), "r1 address "+busy) {
		t.Fatalf("error %v, want one naming the router address %s", err, busy)
	}

	free, _ := FreePorts(1, busy)
	topo.Routers[0].Listen = free[0]
	topo.Clusters[0].Nodes[0].Addr = busy
	err = checkPortsFree(topo)
	if err == nil || !strings.Contains(err.Error(), "node 1 of cluster c1: address "+busy) {
		t.Fatalf("error %v, want one naming node 1 and %s", err, busy)
	}
}

func TestFormat1TopologyReadsAsOneRouter(t *testing.T) {
	dir := t.TempDir()
	v1 := `{"format": 1, "router": {"id": "r1", "listen": "127.0.0.1:7400"},
	 "clusters": [{"id": "c1", "range": "0-18446744073709551616", "nodes": [{"id": 1, "addr": "127.0.0.1:7501"}]}]}`
	if err := os.WriteFile(filepath.Join(dir, TopologyFile), []byte(v1), 0o644); err != nil {
		t.Fatal(err)
	}
	topo, err := LoadTopology(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Routers) != 1 || topo.Listen() != "127.0.0.1:7400" || topo.MetaPeers() != nil {
		t.Fatalf("format 1 read as %+v", topo)
	}
	if got := routerDir("D", topo, topo.Routers[0]); got != filepath.Join("D", "router") {
		t.Fatalf("single router keeps its data in %s", got)
	}
}

func TestListenOfReplicatedRoutersIsFixed(t *testing.T) {
	dir := t.TempDir()
	if _, err := prepareTopology(Config{DataDir: dir, Clusters: 1, Replicas: 1, Routers: 3}, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	_, err := prepareTopology(Config{DataDir: dir, Listen: "127.0.0.1:7498"}, func(string, ...any) {})
	if err == nil || !strings.Contains(err.Error(), "meta group") {
		t.Fatalf("moving a replicated router: %v, want a refusal naming the meta group", err)
	}
}

// A cluster born of a split round-trips through up.json: pending without a
// range, then with one; it is not in the routers' bootstrap list, and the
// ranges of the settled clusters must still partition the ring.
func TestTopologySplitCluster(t *testing.T) {
	dir := t.TempDir()
	topo, err := NewTopology(1, 1, 1, "127.0.0.1:7400")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	topo.Clusters = append(topo.Clusters, ClusterSpec{ID: topo.nextClusterID(), Parent: "c1", Pending: true,
		Nodes: []NodeSpec{{ID: topo.nextNodeID(), Addr: addrs[0], Gossip: addrs[1]}}})
	if err := SaveTopology(dir, topo); err != nil {
		t.Fatal(err)
	}
	got, err := LoadTopology(dir)
	if err != nil {
		t.Fatal(err)
	}
	c2, ok := got.Cluster("c2")
	if !ok || !c2.Pending || c2.Parent != "c1" || c2.Nodes[0].ID != 2 {
		t.Fatalf("c2 = %+v", c2)
	}
	if b := got.Bootstrap(); len(b) != 1 || b[0].ID != "c1" {
		t.Fatalf("bootstrap %+v", b)
	}
	if m := got.Mismatch(1, 1); m != "" {
		t.Fatalf("mismatch after a split: %s", m)
	}
	if id := got.nextClusterID("c7"); id != "c8" {
		t.Fatalf("next cluster id %s", id)
	}
	c2.Pending = false // settled without ranges from the table: c1 and c2 overlap
	c2.Range = wire.Range{Start: 1 << 63}
	if err := got.Validate(); err == nil {
		t.Fatal("overlapping ranges accepted")
	}
	c1, _ := got.Cluster("c1")
	c1.Range = wire.Range{End: 1 << 63}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	ch := nodeChildren(Config{DataDir: dir, LogLevel: "info"}, got, *c2)
	if args := strings.Join(ch[0].args, " "); !strings.Contains(args, "--join") || strings.Contains(args, "--range") || !strings.Contains(args, "1=") {
		t.Fatalf("new node args %s", args)
	}
}

// TestBusySidePortMoves checks that a saved side port another process has
// taken since is replaced by a free one (a side port is nobody's identity),
// and that free ones stay.
func TestBusySidePortMoves(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	topo, err := NewTopology(1, 2, 1, "127.0.0.1:7400")
	if err != nil {
		t.Fatal(err)
	}
	kept := topo.Clusters[0].Nodes[1].HTTP
	topo.Clusters[0].Nodes[0].HTTP = busy
	changed, err := topo.moveBusySidePorts()
	if err != nil || !changed {
		t.Fatalf("moveBusySidePorts = %v, %v; want a change", changed, err)
	}
	if got := topo.Clusters[0].Nodes[0].HTTP; got == busy || got == "" {
		t.Errorf("busy side port %s replaced by %q", busy, got)
	}
	if topo.Clusters[0].Nodes[1].HTTP != kept {
		t.Errorf("a free side port moved: %s -> %s", kept, topo.Clusters[0].Nodes[1].HTTP)
	}
	if err := topo.Validate(); err != nil {
		t.Errorf("topology after the move: %v", err)
	}
	if changed, err := topo.moveBusySidePorts(); err != nil || changed {
		t.Errorf("second moveBusySidePorts = %v, %v; want no change", changed, err)
	}

	// A start finds its router's saved side port taken: it moves and is saved.
	dir := t.TempDir()
	topo.Routers[0].HTTP = busy
	if err := SaveTopology(dir, topo); err != nil {
		t.Fatal(err)
	}
	if _, err := prepareTopology(Config{DataDir: dir}, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	saved, err := LoadTopology(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := saved.Routers[0].HTTP; got == busy || got == "" {
		t.Errorf("saved router side port %q, want a free one instead of %s", got, busy)
	}
}
