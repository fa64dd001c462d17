package router

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

// metaRouters starts n real routers forming a meta group on 127.0.0.1.
type metaRouters struct {
	t     *testing.T
	dirs  []string
	addrs map[uint64]string // client addresses
	peers map[uint64]string // peer addresses: the meta group's members
	lns   []net.Listener
	rs    []*Router
}

func startMetaRouters(t *testing.T, n int) *metaRouters {
	t.Helper()
	m := &metaRouters{t: t, addrs: map[uint64]string{}, peers: map[uint64]string{}}
	for i := 1; i <= n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		m.lns = append(m.lns, ln)
		m.addrs[uint64(i)] = ln.Addr().String()
		pl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		m.peers[uint64(i)] = pl.Addr().String()
		pl.Close() // the router listens there itself
		m.dirs = append(m.dirs, t.TempDir())
	}
	m.rs = make([]*Router, n)
	for i := range n {
		m.start(i, m.lns[i])
	}
	t.Cleanup(func() {
		for _, r := range m.rs {
			if r != nil {
				r.Close()
			}
		}
	})
	return m
}

func (m *metaRouters) start(i int, ln net.Listener) {
	m.t.Helper()
	cfg := DefaultConfig()
	cfg.ID = "r" + strconv.Itoa(i+1)
	cfg.DataDir = m.dirs[i]
	cfg.Bootstrap = control.BootstrapTable(twoClusters())
	cfg.Meta = &control.MetaConfig{RaftID: uint64(i + 1), Peers: m.peers, TickInterval: 20 * time.Millisecond}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := New(cfg)
	if err != nil {
		m.t.Fatal(err)
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", m.addrs[uint64(i+1)]); err != nil {
			m.t.Fatal(err)
		}
	}
	go r.Serve(ln)
	m.rs[i] = r
}

// leader waits for a router that leads the meta group.
func (m *metaRouters) leader() int {
	m.t.Helper()
	lead := -1
	eventually.Holds(m.t, 10*time.Second, "a meta leader", func() error {
		for i, r := range m.rs {
			if r != nil && r.meta.Replica().Status().Role == "leader" {
				lead = i
				return nil
			}
		}
		return errors.New("no router leads the meta group")
	})
	return lead
}

// waitVersion waits until every running router routes with version v.
func (m *metaRouters) waitVersion(v uint64) {
	m.t.Helper()
	eventually.Holds(m.t, 10*time.Second, "every router at version "+strconv.FormatUint(v, 10), func() error {
		var at []string
		ok := true
		for i, r := range m.rs {
			if r != nil {
				cur := r.Table().Current().Version
				ok = ok && cur == v
				at = append(at, "router "+strconv.Itoa(i+1)+" at version "+strconv.FormatUint(cur, 10))
			}
		}
		return eventually.True(ok, "%s", strings.Join(at, ", "))
	})
}

// splitFirst cuts the first range in half and gives the upper half to
// cluster "cb", as a split will.
func splitFirst(t *wire.TableInfo) error {
	r := t.Ranges[0]
	mid := ring.Mid(r.Range)
	t.Ranges[0].Range.End = mid
	t.Ranges = append(t.Ranges, wire.RangeOwner{Range: wire.Range{Start: mid, End: r.Range.End}, Cluster: "cb"})
	t.Clusters = append(t.Clusters, wire.ClusterInfo{ID: "cb", Members: []wire.Member{{ID: 9, Addr: "127.0.0.1:9"}}})
	return nil
}

func TestMetaGroupReplicatesTheTable(t *testing.T) {
	m := startMetaRouters(t, 3)
	l := m.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m.waitVersion(1)

	// A change on the leader reaches every router, as one version.
	if err := m.rs[l].Table().Update(ctx, splitFirst); err != nil {
		t.Fatal(err)
	}
	m.waitVersion(2)
	for _, r := range m.rs {
		if err := ring.CheckPartition(rangesOf(r.Table().Current())); err != nil {
			t.Fatalf("replicated table is not a partition: %v", err)
		}
	}

	// A follower refuses to change the table.
	f := (l + 1) % 3
	err := m.rs[f].Table().Update(ctx, func(*wire.TableInfo) error { return nil })
	if !errors.Is(err, control.ErrNotMetaLeader) {
		t.Fatalf("Update on a follower = %v, want control.ErrNotMetaLeader", err)
	}

	// Status lists the three routers, one of them the leader.
	st := m.rs[f].Handle(ctx, &wire.Request{Op: wire.OpStatus}).Status
	leaders := 0
	for _, rs := range st.Routers {
		if rs.Error != "" {
			t.Fatalf("router %d in status: %s", rs.RaftID, rs.Error)
		}
		if rs.Leader {
			leaders++
		}
	}
	if len(st.Routers) != 3 || leaders != 1 {
		t.Fatalf("status routers = %+v, want 3 with one leader", st.Routers)
	}

	// The leader dies: another takes over and changes go on.
	m.rs[l].Close()
	m.rs[l] = nil
	l2 := m.leader()
	if err := m.rs[l2].Table().Update(ctx, func(t *wire.TableInfo) error {
		t.Clusters = append(t.Clusters, wire.ClusterInfo{ID: "cc", Members: []wire.Member{{ID: 10, Addr: "127.0.0.1:10"}}})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m.waitVersion(3)

	// The old leader restarts from its disk and catches up.
	m.start(l, nil)
	m.waitVersion(3)
	if _, ok := control.Cluster(m.rs[l].Table().Current(), "cc"); !ok {
		t.Fatal("restarted router lacks the change made while it was down")
	}
}

func TestMetaRefresh(t *testing.T) {
	m := startMetaRouters(t, 3)
	l := m.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.rs[l].Table().Update(ctx, splitFirst); err != nil {
		t.Fatal(err)
	}
	f := (l + 1) % 3
	if err := m.rs[f].meta.Refresh(ctx, 2); err != nil {
		t.Fatalf("Refresh to the committed version: %v", err)
	}
	if v := m.rs[f].Table().Current().Version; v != 2 {
		t.Fatalf("after Refresh the follower routes with version %d", v)
	}
	if err := m.rs[f].meta.Refresh(ctx, 5); err == nil {
		t.Fatal("Refresh to a version nobody committed succeeded")
	}
}

// twoClusters is the bootstrap of the meta group tests.
func twoClusters() []wire.ClusterInfo {
	return []wire.ClusterInfo{
		{ID: "c1", Members: members("127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003")},
		{ID: "c2", Members: members("127.0.0.1:7011", "127.0.0.1:7012", "127.0.0.1:7013")},
	}
}

func rangesOf(t *wire.TableInfo) []wire.Range {
	var rs []wire.Range
	for _, o := range t.Ranges {
		rs = append(rs, o.Range)
	}
	return rs
}
