package cluster

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cleavefs/cleave/internal/certs"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

func TestPeerRule(t *testing.T) {
	for _, tc := range []struct {
		role, id string
		op       wire.Op
		sender   uint64
		refused  bool
	}{
		{"node", "7", wire.OpRaft, 7, false},
		{"node", "7", wire.OpSnapshot, 7, false},
		{"node", "7", wire.OpChunkFetch, 0, false},
		{"node", "7", wire.OpStatus, 0, false},
		{"router", "1", wire.OpStatus, 0, false},
		{"router", "1", wire.OpAddLearner, 0, false},
		{"router", "1", wire.OpPromote, 0, false},
		{"router", "1", wire.OpRemoveMember, 0, false},
		{"router", "1", wire.OpSplitFork, 0, false},
		{"router", "1", wire.OpSplitCleanup, 0, false},
		{"node", "x", wire.OpRaft, 0, true},
		{"node", "0", wire.OpSnapshot, 0, true},
		{"router", "1", wire.OpRaft, 0, true},
		{"router", "1", wire.OpSnapshot, 0, true},
		{"router", "1", wire.OpChunkFetch, 0, true},
		{"node", "7", wire.OpRemoveMember, 0, true},
		{"node", "7", wire.OpAddLearner, 0, true},
		{"node", "7", wire.OpSplitFork, 0, true},
		{"user", "ann", wire.OpStatus, 0, true},
		{"user", "ann", wire.OpRaft, 0, true},
		{"node", "7", wire.OpPut, 0, true},
	} {
		t.Run(tc.role+"-"+tc.id+"/"+tc.op.String(), func(t *testing.T) {
			sender, err := peerRule(tc.role, tc.id, tc.op)
			if tc.refused {
				if err == nil || !strings.Contains(err.Error(), certs.Name(tc.role, tc.id)) || !strings.Contains(err.Error(), tc.op.String()) {
					t.Fatalf("got sender %d, err %v; want a refusal naming %s and %v", sender, err, certs.Name(tc.role, tc.id), tc.op)
				}
				return
			}
			if err != nil || sender != tc.sender {
				t.Fatalf("got sender %d, err %v; want %d", sender, err, tc.sender)
			}
		})
	}
}

// peerCerts makes a CA and a certificate per name under dir and returns
// a loader for each.
func peerCerts(t *testing.T, dir string, names ...string) map[string]*certs.Reloader {
	t.Helper()
	caDir := filepath.Join(dir, "ca")
	if err := certs.NewCA(caDir, "test CA", time.Hour); err != nil {
		t.Fatal(err)
	}
	out := map[string]*certs.Reloader{}
	for _, name := range names {
		if err := certs.Issue(caDir, dir, name, []string{"127.0.0.1"}, certs.Both, time.Hour); err != nil {
			t.Fatal(err)
		}
		r, err := certs.Load(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"), filepath.Join(caDir, certs.CACert))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = r
	}
	return out
}

// TestPeerTLSChecksIdentity runs a cluster whose peer plane is on mutual
// TLS and sends, with valid certificates, what their holders may not: a
// heartbeat with a higher term that node f forges in node g's name, RAFT
// from a router's certificate, a SNAPSHOT frame in another node's name,
// REMOVE_MEMBER from a node's certificate. Each is dropped and counted or
// refused FORBIDDEN naming the identity; the leader and term stay. A
// plaintext peer connection is refused.
func TestPeerTLSChecksIdentity(t *testing.T) {
	mn := newMemberNet(t, 3)
	tl := peerCerts(t, t.TempDir(), "node-1", "node-2", "node-3", "router-1")
	for id, cfg := range mn.cfgs {
		cfg.PeerTLS = tl[certs.Name(certs.RoleNode, strconv.FormatUint(id, 10))]
		mn.cfgs[id] = cfg
	}
	for id := range mn.cfgs {
		mn.start(id)
	}
	lead := mn.leader()
	mn.put(lead, 1)
	o := others3(lead)
	f, g := o[0], o[1]
	n := mn.nodes[lead]
	before := n.Status()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if c, err := rpc.Dial(ctx, mn.peers[lead], rpc.DialConfig{Client: "plain"}); err == nil {
		c.Close()
		t.Fatalf("a plaintext dial to the TLS peer listener succeeded")
	}
	dial := func(name string) *rpc.Conn {
		c, err := rpc.Dial(ctx, mn.peers[lead], rpc.DialConfig{Client: name, TLS: tl[name].ClientConfig()})
		if err != nil {
			t.Fatalf("dial as %s: %v", name, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	grp := n.rep.get().Group()
	forged, err := proto.Marshal(&pb.Message{Type: pb.MsgHeartbeat.Enum(), From: new(g), To: new(lead), Term: new(before.Term + 1)})
	if err != nil {
		t.Fatal(err)
	}
	raft := &wire.Request{Op: wire.OpRaft, Group: grp.Name, Epoch: grp.Epoch, Data: forged}
	if !dial(certs.Name(certs.RoleNode, strconv.FormatUint(f, 10))).Send(raft) {
		t.Fatal("send RAFT as node f")
	}
	if !dial("router-1").Send(raft) {
		t.Fatal("send RAFT as router-1")
	}
	mn.waitFor("both forged frames counted", func() bool { return n.Status().InvalidFrames >= before.InvalidFrames+2 })

	asNode := dial(certs.Name(certs.RoleNode, strconv.FormatUint(f, 10)))
	for _, tc := range []struct {
		req  *wire.Request
		want string
	}{
		{&wire.Request{Op: wire.OpSnapshot, Group: grp.Name, Epoch: grp.Epoch, Snap: &wire.SnapChunk{ID: 1, From: g, To: lead}}, "sent by node"},
		{&wire.Request{Op: wire.OpRemoveMember, Member: &wire.Member{ID: g}}, "node-" + strconv.FormatUint(f, 10) + " may not send REMOVE_MEMBER"},
		{&wire.Request{Op: wire.OpSplitCleanup, Limit: 1}, "may not send SPLIT_CLEANUP"},
	} {
		resp, err := asNode.Call(ctx, tc.req)
		if err != nil || resp.Code != wire.Forbidden || !strings.Contains(resp.Message, tc.want) {
			t.Errorf("%v from node %d: %v, %v %q; want FORBIDDEN saying %q", tc.req.Op, f, err, resp.Code, resp.Message, tc.want)
		}
	}
	mn.put(lead, 2)
	after := n.Status()
	if after.Term != before.Term || after.Leader != lead || len(after.Members) != 3 {
		t.Fatalf("after the refused frames: term %d→%d, leader %d→%d, %d members", before.Term, after.Term, lead, after.Leader, len(after.Members))
	}
	resp, err := dial("router-1").Call(ctx, &wire.Request{Op: wire.OpStatus})
	if err != nil || resp.Code != wire.OK {
		t.Fatalf("STATUS as router-1: %v %v", err, resp.Err())
	}
}
