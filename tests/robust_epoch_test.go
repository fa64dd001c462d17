package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cleavefs/cleave/internal/certs"
	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/up"
	"github.com/cleavefs/cleave/wire"
)

// staleFrame is one raft frame replayed at a node: the group it names and
// the message.
type staleFrame struct {
	group string
	epoch uint64
	msg   *raftpb.Message
}

// termJump is how far above the target's term the replayed frames are:
// a node that accepted one would show a term this high.
const termJump = 1000

// TestRobustStaleEpochFrame replays raft frames of an earlier epoch at the
// nodes of a split deployment while clients run. Its deployment (`cleave
// up --clusters 1`, of its own) splits c1 into c1 (group c1, epoch 1) and
// c2 (group c2, epoch 2) under load; the new group reuses the learners'
// raft ids, so a frame of the source group from one of those ids (what a
// learner that had not forked yet, or a delayed packet, would send) is
// addressed to a real member of c2. Then the test sends, over the wire
// protocol as a peer does (HELLO, then one-way RAFT requests):
//
//   - to every node of c2: a heartbeat, an append with an entry and a vote
//     request from another member of c2's ids, in the source's group (c1,
//     epoch 1), with a term 1000 above the node's; and a heartbeat naming
//     c2 with the source's epoch (c2, epoch 1);
//   - to every node of c1: a heartbeat and a vote request from another
//     member, naming c1 with an epoch it never had (0, 2), and a heartbeat
//     of c2's group;
//   - to every follower of c2: a heartbeat of its own group from its leader
//     at its term that declares a commit far beyond its log.
//
// Each node must drop them (NodeStatus.ForeignFrames and BadCommitFrames
// count them): its term never reaches the frames' and its leader stays,
// writes keep succeeding, the history is linearizable (unknown outcomes as
// maybe applied, every key read back) and the replicas of each cluster end
// with equal state checksums.
func TestRobustStaleEpochFrame(t *testing.T) {
	skipInShortMode(t, "robustness schedules")
	d := ownDeployment(t, "--clusters", "1")
	pool := rpc.NewPool(rpc.DialConfig{Client: "robust-epoch", Token: d.token})
	t.Cleanup(pool.Close)
	seed := scheduleSeed(t)
	before := map[string]*wire.NodeStatus{} // by address, just before the frames
	f := fault{name: "stale-epoch-frame", inject: func(t *testing.T, d *deployment, rng *rand.Rand) func() {
		out := d.split(t, "c1")
		t.Logf("split under load:\n%s", out)
		clusters := clusterAddrs(t, d)
		if len(clusters["c1"]) != 3 || len(clusters["c2"]) != 3 {
			t.Fatalf("after the split: clusters %v, want c1 and c2 of 3 nodes", clusters)
		}
		ids := map[string][]uint64{} // raft ids of each cluster's members
		for _, cl := range []string{"c1", "c2"} {
			for _, a := range clusters[cl] {
				st, err := statusOf(pool, a, false)
				if err != nil {
					t.Fatalf("status of %s: %v", a, err)
				}
				before[a] = st
				ids[cl] = append(ids[cl], st.ID)
			}
		}
		want := map[string][2]int{} // address: foreign, bad-commit frames sent
		for _, cl := range []string{"c1", "c2"} {
			for i, a := range clusters[cl] {
				st := before[a]
				other := ids[cl][(i+1)%len(ids[cl])]
				var frames []staleFrame
				if cl == "c2" {
					frames = []staleFrame{
						{"c1", 1, heartbeat(other, st.ID, st.Term+termJump, 0)},
						{"c1", 1, appendMsg(other, st.ID, st.Term+termJump, st.Commit)},
						{"c1", 1, vote(other, st.ID, st.Term+termJump)},
						{"c2", 1, heartbeat(other, st.ID, st.Term+termJump, 0)},
					}
					if st.Role == "follower" && st.Leader != 0 {
						frames = append(frames, staleFrame{"c2", 2, heartbeat(st.Leader, st.ID, st.Term, 1<<40)})
					}
				} else {
					frames = []staleFrame{
						{"c1", 0, heartbeat(other, st.ID, st.Term+termJump, 0)},
						{"c1", 2, vote(other, st.ID, st.Term+termJump)},
						{"c2", 2, heartbeat(other, st.ID, st.Term+termJump, 0)},
					}
				}
				n := sendFramesAs(t, st.PeerAddr, peerDial(t, d), frames)
				want[a] = n
				t.Logf("node %d (%s, %s, term %d, leader %d): sent %d frames of another group or epoch, %d committing beyond its log",
					st.ID, cl, st.Role, st.Term, st.Leader, n[0], n[1])
			}
		}
		for a, n := range want {
			b := before[a]
			eventually.Holds(t, 20*time.Second, fmt.Sprintf("node %d counted the frames it dropped", b.ID), func() error {
				st, err := statusOf(pool, a, false)
				if err != nil {
					return err
				}
				foreign, bad := st.ForeignFrames-b.ForeignFrames, st.BadCommitFrames-b.BadCommitFrames
				if st.Term >= b.Term+termJump {
					t.Fatalf("node %d took the term of a replayed frame: term %d (was %d), leader %d", st.ID, st.Term, b.Term, st.Leader)
				}
				return eventually.True(foreign >= uint64(n[0]) && bad >= uint64(n[1]),
					"foreign frames +%d (sent %d), bad-commit heartbeats +%d (sent %d)", foreign, n[0], bad, n[1])
			})
		}
		return nil
	}}
	ops := runScheduleRoots(t, d, f, seed, scheduleDuration(12*time.Second), 16)
	requireLinearizable(t, f.name, seed, ops)

	// No node took a replayed frame's term or its sender as leader. A
	// leader change of its own (an election on a loaded machine) shows
	// as a term a little higher, never the frames' term.
	for a, b := range before {
		st, err := statusOf(pool, a, false)
		if err != nil {
			t.Fatalf("status of node %d: %v", b.ID, err)
		}
		switch {
		case st.Term >= b.Term+termJump:
			t.Errorf("node %d: term %d, at least a replayed frame's (it was %d)", st.ID, st.Term, b.Term)
		case st.Term == b.Term && st.Leader != b.Leader:
			t.Errorf("node %d: leader %d in term %d, was %d in the same term", st.ID, st.Leader, st.Term, b.Leader)
		case st.Term != b.Term:
			t.Logf("node %d: an election of its own since the frames: term %d -> %d, leader %d -> %d", st.ID, b.Term, st.Term, b.Leader, st.Leader)
		}
	}
	requireEqualChecksums(t, pool, clusterAddrs(t, d), 30*time.Second)
}

// sendFrames sends frames to the node at addr as one-way RAFT requests on
// a connection of their own, and returns how many name another group or
// epoch than the node's and how many are heartbeats of its group that
// commit beyond its log (those with a commit of 1<<40).
func sendFrames(t *testing.T, addr, token string, frames []staleFrame) [2]int {
	t.Helper()
	return sendFramesAs(t, addr, func(uint64) rpc.DialConfig { return rpc.DialConfig{Client: "stale-frames", Token: token} }, frames)
}

// peerDial returns how to dial a peer listener of deployment d as node
// from: with that node's certificate, which `cleave up` made in DATA/certs
// (a raft frame is accepted only in its sender's own name).
func peerDial(t *testing.T, d *deployment) func(from uint64) rpc.DialConfig {
	return func(from uint64) rpc.DialConfig {
		dir := filepath.Join(d.dir, up.CertsDir)
		name := fmt.Sprintf("node-%d", from)
		r, err := certs.Load(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"), filepath.Join(dir, certs.CACert))
		if err != nil {
			t.Fatalf("certificate of %s: %v", name, err)
		}
		return rpc.DialConfig{Client: "stale-frames", Token: d.token, TLS: r.ClientConfig()}
	}
}

// sendFramesAs is sendFrames over one connection per sender, dialled with
// dial(from).
func sendFramesAs(t *testing.T, addr string, dial func(from uint64) rpc.DialConfig, frames []staleFrame) [2]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conns := map[uint64]*rpc.Conn{}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var n [2]int
	for _, f := range frames {
		from := f.msg.GetFrom()
		conn := conns[from]
		if conn == nil {
			var err error
			if conn, err = rpc.Dial(ctx, addr, dial(from)); err != nil {
				t.Fatalf("dial %s as %d: %v", addr, from, err)
			}
			conns[from] = conn
		}
		data, err := proto.Marshal(f.msg)
		if err != nil {
			t.Fatal(err)
		}
		if !conn.Send(&wire.Request{Op: wire.OpRaft, Data: data, Group: f.group, Epoch: f.epoch}) {
			t.Fatalf("send to %s: connection closed", addr)
		}
		if f.msg.GetCommit() == 1<<40 {
			n[1]++
		} else {
			n[0]++
		}
	}
	// A connection writes requests in order: once a call made after the
	// frames is answered, the frames are on the wire (closing first could
	// drop them from the send queue).
	for _, conn := range conns {
		if _, err := conn.Call(ctx, &wire.Request{Op: wire.OpStatus}); err != nil {
			t.Fatalf("status after the frames at %s: %v", addr, err)
		}
	}
	return n
}

func heartbeat(from, to, term, commit uint64) *raftpb.Message {
	return &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(from), To: proto.Uint64(to), Term: proto.Uint64(term), Commit: proto.Uint64(commit)}
}

// appendMsg appends one entry after index at, in term, and commits it.
func appendMsg(from, to, term, at uint64) *raftpb.Message {
	e := &raftpb.Entry{Type: raftpb.EntryNormal.Enum(), Term: proto.Uint64(term), Index: proto.Uint64(at + 1), Data: []byte("a replayed entry")}
	return &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(from), To: proto.Uint64(to), Term: proto.Uint64(term),
		LogTerm: proto.Uint64(term), Index: proto.Uint64(at), Entries: []*raftpb.Entry{e}, Commit: proto.Uint64(at + 1)}
}

// vote asks for a vote in term with a log that looks longer than anyone's.
func vote(from, to, term uint64) *raftpb.Message {
	return &raftpb.Message{Type: raftpb.MsgVote.Enum(), From: proto.Uint64(from), To: proto.Uint64(to), Term: proto.Uint64(term),
		LogTerm: proto.Uint64(term), Index: proto.Uint64(1 << 40)}
}
