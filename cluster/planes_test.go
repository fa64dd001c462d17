package cluster

import (
	"strings"
	"testing"

	"github.com/cleavefs/cleave/wire"
)

// TestPlanesRefuseOtherOps sends each peer op to a node's client listener
// and a data op to its peer listener: each is answered FORBIDDEN naming
// the listener that serves it, and changes nothing. STATUS is served on
// both.
func TestPlanesRefuseOtherOps(t *testing.T) {
	mn := newMemberNet(t, 3)
	for id := range mn.cfgs {
		mn.start(id)
	}
	lead := mn.leader()
	n := mn.nodes[lead]
	if n.Addr() != mn.addrs[lead] || n.PeerAddr() != mn.peers[lead] || n.Addr() == n.PeerAddr() {
		t.Fatalf("node %d: Addr %s PeerAddr %s, want %s and %s", lead, n.Addr(), n.PeerAddr(), mn.addrs[lead], mn.peers[lead])
	}
	peerOps := []*wire.Request{
		{Op: wire.OpRemoveMember, Member: &wire.Member{ID: others3(lead)[0]}},
		{Op: wire.OpAddLearner, Member: &wire.Member{ID: 9, Addr: "127.0.0.1:1"}},
		{Op: wire.OpPromote, Member: &wire.Member{ID: 9}},
		{Op: wire.OpSplitFork, Split: &wire.SplitSpec{Cluster: "c1", NewCluster: "c2", Abandon: true}},
		{Op: wire.OpSplitCleanup, Limit: 1},
		{Op: wire.OpChunkFetch, Chunks: []string{"sha256:00"}},
		{Op: wire.OpSnapshot, Snap: &wire.SnapChunk{ID: 1, From: 2, To: lead}},
	}
	for _, req := range peerOps {
		resp := mn.dialCall(mn.addrs[lead], req)
		if resp.Code != wire.Forbidden || !strings.Contains(resp.Message, req.Op.String()+" is served only on the peer listener") {
			t.Errorf("%v on the client listener: %v %q, want FORBIDDEN naming the peer listener", req.Op, resp.Code, resp.Message)
		}
	}
	resp := mn.dialCall(mn.peers[lead], &wire.Request{Op: wire.OpPut, Path: "/a/b", Data: []byte("x"), Flags: wire.FlagParents})
	if resp.Code != wire.Forbidden || !strings.Contains(resp.Message, "PUT is served only on the client listener") {
		t.Errorf("PUT on the peer listener: %v %q, want FORBIDDEN naming the client listener", resp.Code, resp.Message)
	}
	for _, addr := range []string{mn.addrs[lead], mn.peers[lead]} {
		resp := mn.dialCall(addr, &wire.Request{Op: wire.OpStatus})
		if resp.Code != wire.OK || resp.Node == nil || len(resp.Node.Members) != 3 {
			t.Fatalf("STATUS at %s: %v %+v, want OK with 3 members", addr, resp.Err(), resp.Node)
		}
		if st := resp.Node; st.Addr != mn.addrs[lead] || st.PeerAddr != mn.peers[lead] {
			t.Errorf("STATUS at %s: addr %s peer_addr %s", addr, st.Addr, st.PeerAddr)
		}
		for _, m := range resp.Node.Members {
			if m.Addr != mn.addrs[m.ID] || m.PeerAddr != mn.peers[m.ID] {
				t.Errorf("member %+v: want addr %s peer_addr %s", m, mn.addrs[m.ID], mn.peers[m.ID])
			}
		}
	}
	if resp := mn.dialCall(mn.addrs[lead], &wire.Request{Op: wire.OpPut, Path: "/a/b", Data: []byte("x"), Flags: wire.FlagParents}); resp.Code != wire.OK {
		t.Fatalf("PUT on the client listener: %v", resp.Err())
	}
}

func TestConfigPlanes(t *testing.T) {
	base := DefaultConfig()
	base.NodeID, base.ClusterID, base.DataDir = 1, "c1", "/tmp/x"
	base.Listen = "127.0.0.1:7001"
	base.Peers = map[uint64]string{1: "127.0.0.1:7101"}
	if c := base.withDefaults(); c.PeerListen != "127.0.0.1:7101" || c.Validate() != nil {
		t.Fatalf("PeerListen %q (want this node's peer address), Validate %v", c.PeerListen, c.Validate())
	}
	same := base
	same.Peers = map[uint64]string{1: "127.0.0.1:7001"}
	if err := same.withDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "separate ports") {
		t.Fatalf("one address for both planes: %v, want an error saying the planes need separate ports", err)
	}
	stray := base
	stray.Clients = map[uint64]string{2: "127.0.0.1:7002"}
	if err := stray.withDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "node 2, which is not in peers") {
		t.Fatalf("client address of a non-member: %v", err)
	}
}
