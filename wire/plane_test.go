package wire

import (
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestPlanes(t *testing.T) {
	tests := []struct {
		op                                             Op
		nodeClient, nodePeer, routerClient, routerPeer bool
	}{
		{OpHello, true, true, true, true},
		{OpStatus, true, true, true, true},
		{OpPut, true, false, true, false},
		{OpGet, true, false, true, false},
		{OpChunk, true, false, true, false},
		{OpTable, true, false, true, false},
		{OpRaft, false, true, false, true},
		{OpSnapshot, false, true, false, true},
		{OpChunkFetch, false, true, true, false},
		{OpAddLearner, false, true, true, true},
		{OpPromote, false, true, true, true},
		{OpRemoveMember, false, true, true, true},
		{OpSplitFork, false, true, true, false},
		{OpSplitCleanup, false, true, true, false},
		{OpSplit, true, false, true, true},
		{OpRouterInfo, true, false, false, true},
		{OpUser, true, false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.op.String(), func(t *testing.T) {
			got := [4]bool{NodePlane(tt.op, ClientPlane), NodePlane(tt.op, PeerPlane), RouterPlane(tt.op, ClientPlane), RouterPlane(tt.op, PeerPlane)}
			want := [4]bool{tt.nodeClient, tt.nodePeer, tt.routerClient, tt.routerPeer}
			if got != want {
				t.Fatalf("node client/peer, router client/peer = %v, want %v", got, want)
			}
		})
	}
	r := WrongPlane(OpRaft, ClientPlane)
	if r.Code != Forbidden || !strings.Contains(r.Message, "RAFT is served only on the peer listener") {
		t.Fatalf("WrongPlane(RAFT, client) = %v %q", r.Code, r.Message)
	}
	r = WrongPlane(OpPut, PeerPlane)
	if r.Code != Forbidden || !strings.Contains(r.Message, "PUT is served only on the client listener") {
		t.Fatalf("WrongPlane(PUT, peer) = %v %q", r.Code, r.Message)
	}
}

func TestMemberAddrs(t *testing.T) {
	tests := []struct{ addr, peer, text, wantAddr, wantPeer string }{
		{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1/127.0.0.1:2", "127.0.0.1:1", "127.0.0.1:2"},
		{"127.0.0.1:1", "127.0.0.1:1", "127.0.0.1:1", "127.0.0.1:1", "127.0.0.1:1"},
		{"127.0.0.1:1", "", "127.0.0.1:1", "127.0.0.1:1", "127.0.0.1:1"},
		{"", "127.0.0.1:2", "127.0.0.1:2", "127.0.0.1:2", "127.0.0.1:2"},
		{"[::1]:1", "[::1]:2", "[::1]:1/[::1]:2", "[::1]:1", "[::1]:2"},
	}
	for _, tt := range tests {
		text := JoinAddrs(tt.addr, tt.peer)
		a, p := SplitAddrs(text)
		if text != tt.text || a != tt.wantAddr || p != tt.wantPeer {
			t.Errorf("JoinAddrs(%q, %q) = %q, split %q %q; want %q, %q %q", tt.addr, tt.peer, text, a, p, tt.text, tt.wantAddr, tt.wantPeer)
		}
	}
	// A routing-table member written before peer addresses existed reads
	// as one address for both planes.
	old, err := msgpack.Marshal(map[string]any{"id": 3, "addr": "127.0.0.1:9"})
	if err != nil {
		t.Fatal(err)
	}
	var m Member
	if err := msgpack.Unmarshal(old, &m); err != nil {
		t.Fatal(err)
	}
	if m.Peer() != "127.0.0.1:9" || m.PeerAddr != "" {
		t.Fatalf("old member %+v: Peer() = %q", m, m.Peer())
	}
}
