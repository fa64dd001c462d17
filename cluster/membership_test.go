package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/ports"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

// memberNet runs real nodes over loopback TCP.
type memberNet struct {
	t     *testing.T
	root  string
	addrs map[uint64]string // client addresses
	peers map[uint64]string // peer addresses
	cfgs  map[uint64]Config
	nodes map[uint64]*Node
}

// freeAddr returns a loopback address that was free a moment ago, below
// the kernel's ephemeral range so no outgoing connection takes it before
// the node binds it.
func freeAddr(t *testing.T) string {
	t.Helper()
	addrs, err := ports.Free(1)
	if err != nil {
		t.Fatal(err)
	}
	return addrs[0]
}

func newMemberNet(t *testing.T, voters int) *memberNet {
	mn := &memberNet{t: t, root: t.TempDir(), addrs: map[uint64]string{}, peers: map[uint64]string{}, cfgs: map[uint64]Config{}, nodes: map[uint64]*Node{}}
	peers := map[uint64]string{}
	for i := 1; i <= voters; i++ {
		id := uint64(i)
		mn.addrs[id], mn.peers[id] = freeAddr(t), freeAddr(t)
		peers[id] = mn.peers[id]
	}
	for id := range peers {
		mn.cfgs[id] = mn.config(id, peers, false)
	}
	t.Cleanup(func() {
		for id := range mn.nodes {
			mn.stop(id)
		}
	})
	return mn
}

func (mn *memberNet) config(id uint64, peers map[uint64]string, join bool) Config {
	cfg := DefaultConfig()
	cfg.NodeID, cfg.ClusterID, cfg.Listen = id, "c1", mn.addrs[id]
	cfg.Peers = peers
	cfg.Clients = map[uint64]string{}
	for pid := range peers {
		cfg.Clients[pid] = mn.addrs[pid]
	}
	cfg.DataDir = filepath.Join(mn.root, strconv.FormatUint(id, 10))
	cfg.TickInterval = 10 * time.Millisecond
	cfg.ElectionTicks = 100 // 1–2 s (production: 0.5–1 s): fewer spurious elections on busy CI cores, where a write sent to a deposed leader fails
	// Idle, elections after 2–4 s (the default, 10 ticks, would make it
	// 10–20 s): these nodes have no gossip to wake them when one stops.
	cfg.IdleTickInterval = 2 * cfg.TickInterval
	cfg.ScrubRate = 0
	cfg.LogRetention = 20
	cfg.Join = join
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(&testWriter{mn.t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return cfg
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimSpace(p)))
	return len(p), nil
}

// addJoiner prepares a new node that starts with an empty disk and Join;
// its Peers are itself and the running nodes (how to reach the leader
// before the snapshot brings the member list).
func (mn *memberNet) addJoiner(id uint64) {
	mn.addrs[id], mn.peers[id] = freeAddr(mn.t), freeAddr(mn.t)
	peers := map[uint64]string{id: mn.peers[id]}
	for nid := range mn.nodes {
		peers[nid] = mn.peers[nid]
	}
	mn.cfgs[id] = mn.config(id, peers, true)
}

// joinVoter starts node id empty with Join and makes it a voter through
// leader lead's AddLearner and Promote.
func (mn *memberNet) joinVoter(lead, id uint64) {
	mn.t.Helper()
	mn.addJoiner(id)
	mn.start(id)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := mn.nodes[lead].AddLearner(ctx, id, mn.addrs[id], mn.peers[id]); err != nil {
		mn.t.Fatalf("AddLearner(%d): %v", id, err)
	}
	if err := mn.nodes[lead].Promote(ctx, id); err != nil {
		mn.t.Fatalf("Promote(%d): %v", id, err)
	}
}

func (mn *memberNet) start(id uint64) {
	mn.t.Helper()
	n, err := Start(mn.cfgs[id])
	if err != nil {
		mn.t.Fatalf("start node %d: %v", id, err)
	}
	mn.nodes[id] = n
}

func (mn *memberNet) stop(id uint64) {
	if n := mn.nodes[id]; n != nil {
		n.Close()
		delete(mn.nodes, id)
	}
}

func (mn *memberNet) waitFor(what string, cond func() bool) {
	mn.t.Helper()
	eventually.Holds(mn.t, 20*time.Second, what, func() error { return eventually.True(cond(), "not yet") })
}

func (mn *memberNet) leader() uint64 {
	mn.t.Helper()
	var lead uint64
	mn.waitFor("a leader", func() bool {
		for id, n := range mn.nodes {
			if n.Status().Role == "leader" {
				lead = id
				return true
			}
		}
		return false
	})
	return lead
}

// call sends req to node id over TCP, as a router or the CLI would: on
// the listener that serves req's op.
func (mn *memberNet) call(id uint64, req *wire.Request) *wire.Response {
	mn.t.Helper()
	if !wire.NodePlane(req.Op, wire.ClientPlane) {
		return mn.dialCall(mn.peers[id], req)
	}
	return mn.dialCall(mn.addrs[id], req)
}

// callLeader sends req, which must be safe to repeat, to node lead (0:
// the current leader), and again to the next leader while the answer is
// NOT_LEADER or UNAVAILABLE (leadership moved under it, as it may on busy
// CI cores), ten tries in all.
func (mn *memberNet) callLeader(lead uint64, req *wire.Request) *wire.Response {
	mn.t.Helper()
	var resp *wire.Response
	for range 10 {
		if lead == 0 {
			lead = mn.leader()
		}
		resp = mn.call(lead, req)
		if resp.Code != wire.NotLeader && resp.Code != wire.Unavailable {
			break
		}
		lead = 0
	}
	return resp
}

// dialCall sends req to addr on a connection of its own.
func (mn *memberNet) dialCall(addr string, req *wire.Request) *wire.Response {
	mn.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := rpc.Dial(ctx, addr, rpc.DialConfig{Client: "membership-test"})
	if err != nil {
		mn.t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	resp, err := c.Call(ctx, req)
	if err != nil {
		mn.t.Fatalf("%v to %s: %v", req.Op, addr, err)
	}
	return resp
}

// put writes file i through the leader, following leader changes (a PUT
// replaces the whole file, so a retry is harmless).
func (mn *memberNet) put(lead uint64, i int) {
	mn.t.Helper()
	resp := mn.callLeader(lead, &wire.Request{Op: wire.OpPut, Path: fmt.Sprintf("/r%d/f%d", i%5, i), Data: bytes.Repeat([]byte{byte(i)}, 300), Flags: wire.FlagParents})
	if resp.Code != wire.OK {
		mn.t.Fatalf("put %d: %v", i, resp.Err())
	}
}

// stateSum is a checksum over every key outside the replica's own ("r/",
// except the replicated member addresses), with the applied index read
// from the same Pebble snapshot: two sums taken at one index must match.
func stateSum(t *testing.T, db *pebble.DB) (sum string, applied uint64) {
	t.Helper()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	h := sha256.New()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if bytes.Equal(k, []byte("r/applied")) {
			applied = binary.BigEndian.Uint64(it.Value())
		}
		if bytes.HasPrefix(k, []byte("r/")) && !bytes.HasPrefix(k, []byte("r/member/")) {
			continue
		}
		fmt.Fprintf(h, "%q=%q\n", k, it.Value())
	}
	return hex.EncodeToString(h.Sum(nil)), applied
}

// compareState waits until lead and every node of ids hold state taken at
// one applied index, and fails the test for each node whose state then
// differs from lead's; whose names lead in the message. Comparing at one
// index keeps an entry the leader applies between two reads (a member
// address, a session expiry) from passing for a divergence.
func (mn *memberNet) compareState(lead *Node, ids []uint64, whose string) {
	mn.t.Helper()
	var want string
	var sums map[uint64]string
	mn.waitFor("every node applied the same index", func() bool {
		var at uint64
		want, at = stateSum(mn.t, lead.db)
		sums = map[uint64]string{}
		for _, id := range ids {
			sum, applied := stateSum(mn.t, mn.nodes[id].db)
			if applied != at {
				return false
			}
			sums[id] = sum
		}
		return true
	})
	for _, id := range ids {
		if sums[id] != want {
			mn.t.Errorf("node %d state %s differs from %s %s", id, sums[id], whose, want)
		}
	}
}

// waitSameState checks that ids hold the current leader's state.
func (mn *memberNet) waitSameState(ids ...uint64) {
	mn.t.Helper()
	mn.compareState(mn.nodes[mn.leader()], ids, "the leader's")
}

func (mn *memberNet) member(id uint64) *wire.Member {
	return &wire.Member{ID: id, Addr: mn.addrs[id], PeerAddr: mn.peers[id]}
}

// A node with an empty disk joins over TCP (ADD_LEARNER → snapshot →
// PROMOTE), a dead node is replaced, and the membership with its addresses
// survives a restart of every node started from its original flags.
func TestNodeJoinReplaceAndRestart(t *testing.T) {
	mn := newMemberNet(t, 3)
	for id := uint64(1); id <= 3; id++ {
		mn.start(id)
	}
	lead := mn.leader()
	for i := range 80 {
		mn.put(lead, i)
	}
	mn.waitFor("log compaction on the leader", func() bool { return mn.nodes[lead].Status().LogFirst > 30 })

	// Join node 4 with an empty disk.
	mn.addJoiner(4)
	mn.start(4)
	if resp := mn.call(others3(lead)[0], &wire.Request{Op: wire.OpAddLearner, Member: mn.member(4)}); resp.Code != wire.NotLeader || resp.Leader != mn.addrs[lead] {
		t.Fatalf("ADD_LEARNER on a follower: %v (leader %q), want NOT_LEADER naming %s", resp.Err(), resp.Leader, mn.addrs[lead])
	}
	if resp := mn.call(lead, &wire.Request{Op: wire.OpAddLearner, Member: mn.member(4)}); resp.Code != wire.OK {
		t.Fatalf("ADD_LEARNER: %v", resp.Err())
	}
	resp := mn.call(lead, &wire.Request{Op: wire.OpPromote, Member: &wire.Member{ID: 4}})
	if resp.Code != wire.OK {
		t.Fatalf("PROMOTE: %v", resp.Err())
	}
	if ms := resp.Node.Members; len(ms) != 4 || ms[3].ID != 4 || !ms[3].Voter || ms[3].Addr != mn.addrs[4] || ms[3].PeerAddr != mn.peers[4] {
		t.Fatalf("members after PROMOTE: %+v", ms)
	}
	mn.put(lead, 100)
	mn.waitSameState(1, 2, 3, 4)
	if st := mn.nodes[4].Status(); st.Range != (wire.Range{}) || st.LogFirst < 30 {
		t.Errorf("joined node status: range %v, log first %d (want the snapshot's state and log start)", st.Range, st.LogFirst)
	}

	// Replace a dead follower (its disk is lost) with node 5.
	dead := others3(lead)[0]
	mn.stop(dead)
	if resp := mn.call(lead, &wire.Request{Op: wire.OpRemoveMember, Member: &wire.Member{ID: dead}}); resp.Code != wire.OK {
		t.Fatalf("REMOVE_MEMBER %d: %v", dead, resp.Err())
	}
	mn.joinVoter(lead, 5)
	for i := 101; i < 140; i++ {
		mn.put(lead, i)
	}
	live := []uint64{}
	for id := range mn.nodes {
		live = append(live, id)
	}
	mn.waitSameState(live...)

	// Restart everyone from the original flags: nodes 1..3 know only each
	// other from flags, 4 and 5 the nodes running when they joined; the
	// rest comes from replicated state.
	for _, id := range live {
		mn.stop(id)
	}
	for _, id := range live {
		mn.start(id)
	}
	lead = mn.leader()
	mn.put(lead, 200)
	mn.waitSameState(live...)
	for _, id := range live {
		ms := mn.nodes[id].Members()
		if len(ms) != 4 {
			t.Errorf("node %d members after restart: %+v", id, ms)
		}
		for _, m := range ms {
			if m.Addr != mn.addrs[m.ID] || m.PeerAddr != mn.peers[m.ID] || !m.Voter || m.ID == dead {
				t.Errorf("node %d: member %+v after restart (want %s, voter)", id, m, mn.addrs[m.ID])
			}
		}
	}
}

func others3(lead uint64) []uint64 {
	var out []uint64
	for id := uint64(1); id <= 3; id++ {
		if id != lead {
			out = append(out, id)
		}
	}
	return out
}

// A follower that was down while the leader compacted past it catches up by
// snapshot over TCP.
func TestFollowerBehindLogGetsSnapshot(t *testing.T) {
	mn := newMemberNet(t, 3)
	for id := uint64(1); id <= 3; id++ {
		mn.start(id)
	}
	lead := mn.leader()
	f := others3(lead)[0]
	mn.put(lead, 0)
	mn.waitSameState(1, 2, 3)
	mn.stop(f)
	for i := 1; i < 80; i++ {
		mn.put(lead, i)
	}
	// Past it on both live members: either may lead when it returns.
	mn.waitFor("compaction past the follower", func() bool {
		for _, id := range others3(f) {
			if mn.nodes[id].Status().LogFirst <= 40 {
				return false
			}
		}
		return true
	})
	mn.start(f)
	mn.waitSameState(1, 2, 3)
	// The state is in the DB as soon as the snapshot is ingested; the
	// status that shows the log's new start is published after.
	mn.waitFor("the follower's log to start past the compaction (a snapshot installed)", func() bool {
		return mn.nodes[f].Status().LogFirst > 40
	})
	// It serves the data.
	resp := mn.call(f, &wire.Request{Op: wire.OpGet, Path: "/r4/f79", Flags: wire.FlagStale})
	if resp.Code != wire.OK || !bytes.Equal(resp.Data, bytes.Repeat([]byte{79}, 300)) {
		t.Fatalf("stale GET on the restored follower: %v, %d bytes", resp.Err(), len(resp.Data))
	}
}
