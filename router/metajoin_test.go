package router

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/replica"
	"github.com/cleavefs/cleave/wire"
)

// A router started with an empty store and MetaConfig.Join (`cleave router
// --join`) joins a running meta group: ADD_LEARNER with FlagMetaGroup, sent
// to a follower (which passes it on to the meta leader), adds it; the
// current table reaches it; PROMOTE makes it a voter; REMOVE_MEMBER takes an
// original router out, and the remaining three still replicate changes.
func TestRouterJoinsAndLeavesMetaGroup(t *testing.T) {
	m := startMetaRouters(t, 3)
	l := m.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := m.rs[l].Table().Update(ctx, splitFirst); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peer := pl.Addr().String()
	pl.Close() // the router listens there itself
	peers := maps.Clone(m.peers)
	peers[4] = peer
	cfg := DefaultConfig()
	cfg.ID, cfg.DataDir = "r4", t.TempDir()
	cfg.Meta = &control.MetaConfig{RaftID: 4, Peers: peers, Join: true, TickInterval: 20 * time.Millisecond}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	r4, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go r4.Serve(ln)
	t.Cleanup(func() { r4.Close() })
	if v := r4.Table().Current().Version; v != 0 {
		t.Fatalf("a joining router starts with table version %d, want 0 (no table until the leader's snapshot)", v)
	}

	f := (l + 1) % 3 // a follower
	c := dialRouter(t, m.addrs[uint64(f+1)])
	if resp := call(t, c, &wire.Request{Op: wire.OpAddLearner, Flags: wire.FlagMetaGroup, Member: &wire.Member{ID: 4, Addr: ln.Addr().String()}}); resp.Code != wire.Invalid || !strings.Contains(resp.Message, "peer address") {
		t.Fatalf("ADD_LEARNER of a router without its peer address: %v, want INVALID naming it", resp.Err())
	}
	resp := call(t, c, &wire.Request{Op: wire.OpAddLearner, Flags: wire.FlagMetaGroup, Member: &wire.Member{ID: 4, Addr: ln.Addr().String(), PeerAddr: peer}})
	if resp.Code != wire.OK || resp.Status == nil || len(resp.Status.Routers) != 4 {
		t.Fatalf("ADD_LEARNER of router 4: %v %+v, want OK listing 4 routers", resp.Err(), resp.Status)
	}
	m.rs = append(m.rs, r4)
	m.waitVersion(m.rs[l].Table().Current().Version)

	eventually.Holds(t, 20*time.Second, "router 4 promoted", func() error {
		resp := call(t, c, &wire.Request{Op: wire.OpPromote, Flags: wire.FlagMetaGroup, Member: &wire.Member{ID: 4}})
		return resp.Err()
	})
	members := m.rs[m.leader()].meta.Replica().Members()
	if !slices.ContainsFunc(members, func(mm replica.Member) bool { return mm.ID == 4 && mm.Voter }) {
		t.Fatalf("router 4 is not a voter of the meta group after PROMOTE: %+v", members)
	}

	// Take out a router other than the new one, through the new one.
	out := (l + 2) % 3
	c4 := dialRouter(t, ln.Addr().String())
	if resp := call(t, c4, &wire.Request{Op: wire.OpRemoveMember, Flags: wire.FlagMetaGroup, Member: &wire.Member{ID: uint64(out + 1)}}); resp.Code != wire.OK || len(resp.Status.Routers) != 3 {
		t.Fatalf("REMOVE_MEMBER of router %d: %v %+v, want OK listing 3 routers", out+1, resp.Err(), resp.Status)
	}
	m.rs[out].Close()
	m.rs[out] = nil
	eventually.Holds(t, 20*time.Second, "a table change after the removal", func() error {
		lead := m.leader()
		return m.rs[lead].Table().Update(ctx, func(t *wire.TableInfo) error {
			t.Clusters = append(t.Clusters, wire.ClusterInfo{ID: "cc", Members: []wire.Member{{ID: 10, Addr: "127.0.0.1:10"}}})
			return nil
		})
	})
	m.waitVersion(m.rs[m.leader()].Table().Current().Version)
	if _, ok := control.Cluster(r4.Table().Current(), "cc"); !ok {
		t.Fatal("the joined router lacks the change made after the removal")
	}
}

// The meta group's membership ops refuse a router without a meta group.
func TestMetaMemberNeedsMetaGroup(t *testing.T) {
	_, c := startRouter(t, twoClusters(), nil)
	resp := call(t, c, &wire.Request{Op: wire.OpAddLearner, Flags: wire.FlagMetaGroup, Member: &wire.Member{ID: 4, Addr: "127.0.0.1:1", PeerAddr: "127.0.0.1:2"}})
	if resp.Code != wire.Invalid || !strings.Contains(resp.Message, "no meta group") {
		t.Fatalf("ADD_LEARNER to a router with a table file: %v, want INVALID saying it has no meta group", resp.Err())
	}
}

// dialRouter opens a connection to a router's client address.
func dialRouter(t *testing.T, addr string) *rpc.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := rpc.Dial(ctx, addr, rpc.DialConfig{Client: "test"})
	if err != nil {
		t.Fatal(errors.Join(errors.New("dial "+addr), err))
	}
	t.Cleanup(func() { c.Close() })
	return c
}
