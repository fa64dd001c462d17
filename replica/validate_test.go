package replica

import (
	"math"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cleavefs/cleave/wire"
)

// A forged heartbeat with the largest term, sent as a wire OpRaft frame to
// the leader of a running group from a member's id (and from an id
// outside the group), changes nothing: no panic, the term, leader and
// commit stay, writes go on, and every node restarts.
func TestForgedTermOverflowFramesChangeNothing(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	idx := c.propose(lead, "a")
	c.waitApplied(c.ids, idx)
	r := c.rep(lead)
	before := r.Status()
	g := r.Group()
	forged := []*pb.Message{
		{Type: pb.MsgHeartbeat.Enum(), From: new(others(c.ids, lead)[0]), To: new(lead), Term: new(uint64(math.MaxUint64))},
		{Type: pb.MsgHeartbeat.Enum(), From: new(uint64(99)), To: new(lead), Term: new(before.Term + 1)},
		{Type: pb.MsgApp.Enum(), From: new(others(c.ids, lead)[0]), To: new(lead), Term: new(uint64(math.MaxUint64)),
			Index: new(before.LastIndex), LogTerm: new(before.Term), Commit: new(before.Commit)},
	}
	for _, m := range forged {
		data, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if resp, ok := r.ServeWire(t.Context(), &wire.Request{Op: wire.OpRaft, Group: g.Name, Epoch: g.Epoch, Data: data}); !ok || resp != nil {
			t.Fatalf("OpRaft: served %v, answer %v; want a one-way frame", ok, resp)
		}
	}
	waitFor(t, 10*time.Second, "the forged frames counted", func() bool { return r.Stats().Invalid == uint64(len(forged)) })
	idx = c.propose(lead, "b")
	c.waitApplied(c.ids, idx)
	after := r.Status()
	if after.Term != before.Term || after.Leader != lead || after.Role != "leader" {
		t.Fatalf("after forged frames: term %d→%d, leader %d→%d (%s)", before.Term, after.Term, lead, after.Leader, after.Role)
	}
	for _, id := range c.ids {
		if err := c.rep(id).Err(); err != nil {
			t.Fatalf("node %d stopped: %v", id, err)
		}
		c.stop(id)
	}
	c.startAll()
	lead = c.waitLeader()
	idx = c.propose(lead, "c")
	c.waitApplied(c.ids, idx)
	for _, id := range c.ids {
		if term := c.rep(id).Status().Term; term > before.Term+10 {
			t.Fatalf("node %d restarted at term %d (was %d)", id, term, before.Term)
		}
	}
	c.checkSameData(t, c.data(lead), "after the forged frames and a restart", -1)
}

// validateMessage is a pure function: each row is a frame and the reason
// it must be refused, or "" for a frame an honest peer sends.
func TestValidateMessage(t *testing.T) {
	v := peerView{self: 1, term: 4, lastIndex: 10, members: map[uint64]bool{1: true, 2: true, 3: true}}
	ent := func(index, term uint64) *pb.Entry { return &pb.Entry{Index: new(index), Term: new(term)} }
	msg := func(typ pb.MessageType, term uint64, f func(m *pb.Message)) *pb.Message {
		m := &pb.Message{Type: typ.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(term)}
		if f != nil {
			f(m)
		}
		return m
	}
	snap := func(index, term uint64) *pb.Snapshot {
		return &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(index), Term: new(term), ConfState: &pb.ConfState{Voters: []uint64{1, 2, 3}}}}
	}
	tests := []struct {
		name     string
		m        *pb.Message
		snapshot bool
		want     string
	}{
		{"heartbeat", msg(pb.MsgHeartbeat, 5, func(m *pb.Message) { m.Commit = new(uint64(10)) }), false, ""},
		{"append", msg(pb.MsgApp, 5, func(m *pb.Message) {
			m.Index, m.LogTerm, m.Entries = new(uint64(10)), new(uint64(4)), []*pb.Entry{ent(11, 4), ent(12, 5)}
		}), false, ""},
		{"forwarded read index", msg(pb.MsgReadIndex, 0, func(m *pb.Message) { m.Entries = []*pb.Entry{{Data: []byte("ctx")}} }), false, ""},
		{"read index answer", msg(pb.MsgReadIndexResp, 5, func(m *pb.Message) {
			m.Index, m.Entries = new(uint64(40)), []*pb.Entry{{Data: []byte("ctx")}}
		}), false, ""},
		{"append rejected", msg(pb.MsgAppResp, 5, func(m *pb.Message) {
			m.Reject, m.Index, m.RejectHint, m.LogTerm = new(true), new(uint64(50)), new(uint64(3)), new(uint64(2))
		}), false, ""},
		{"pre-vote", msg(pb.MsgPreVote, 6, func(m *pb.Message) { m.Index, m.LogTerm = new(uint64(12)), new(uint64(5)) }), false, ""},
		{"snapshot", msg(pb.MsgSnap, 5, func(m *pb.Message) { m.Snapshot = snap(9, 5) }), true, ""},

		{"term overflow", msg(pb.MsgHeartbeat, math.MaxUint64, nil), false, "term 18446744073709551615 above"},
		{"term above bound", msg(pb.MsgVote, MaxTerm+1, nil), false, "above"},
		{"no term", msg(pb.MsgApp, 0, nil), false, "without a term"},
		{"local type", msg(pb.MsgHup, 5, nil), false, "not a type peers send"},
		{"storage type", msg(pb.MsgStorageAppend, 5, nil), false, "not a type peers send"},
		{"proposal", msg(pb.MsgProp, 5, func(m *pb.Message) { m.Entries = []*pb.Entry{{Data: []byte("x")}} }), false, "not a type peers send"},
		{"timeout now", msg(pb.MsgTimeoutNow, 5, nil), false, "not a type peers send"},
		{"transfer leader", msg(pb.MsgTransferLeader, 5, nil), false, "not a type peers send"},
		{"unknown type", msg(pb.MessageType(77), 5, nil), false, "not a type peers send"},
		{"to another", msg(pb.MsgHeartbeat, 5, func(m *pb.Message) { m.To = new(uint64(3)) }), false, "arrived at 1"},
		{"from self", msg(pb.MsgHeartbeat, 5, func(m *pb.Message) { m.From = new(uint64(1)) }), false, "from id 1"},
		{"from nobody", msg(pb.MsgHeartbeat, 5, func(m *pb.Message) { m.From = nil }), false, "from id 0"},
		{"vote from a non-member", msg(pb.MsgVote, 5, func(m *pb.Message) { m.From = new(uint64(9)) }), false, "not a member"},
		{"response from a non-member", msg(pb.MsgHeartbeatResp, 5, func(m *pb.Message) { m.From = new(uint64(9)) }), false, "not a member"},
		{"non-member at an older term", msg(pb.MsgHeartbeat, 3, func(m *pb.Message) { m.From = new(uint64(9)) }), false, "not a member"},
		{"non-member raising the term", msg(pb.MsgApp, 5, func(m *pb.Message) { m.From = new(uint64(9)) }), false, "not a member"},
		{"new leader this member has not applied yet, at its term", msg(pb.MsgHeartbeat, 4, func(m *pb.Message) { m.From = new(uint64(9)) }), false, ""},
		{"commit beyond log", msg(pb.MsgHeartbeat, 5, func(m *pb.Message) { m.Commit = new(uint64(11)) }), false, "commits beyond"},
		{"ack beyond log", msg(pb.MsgAppResp, 5, func(m *pb.Message) { m.Index = new(uint64(11)) }), false, "beyond the last index"},
		{"index above bound", msg(pb.MsgApp, 5, func(m *pb.Message) { m.Index = new(uint64(math.MaxUint64)) }), false, "above"},
		{"log term above term", msg(pb.MsgVote, 5, func(m *pb.Message) { m.LogTerm = new(uint64(6)) }), false, "log term 6 above its term 5"},
		{"entry gap", msg(pb.MsgApp, 5, func(m *pb.Message) {
			m.Index, m.LogTerm, m.Entries = new(uint64(10)), new(uint64(4)), []*pb.Entry{ent(11, 4), ent(13, 4)}
		}), false, "entry 1 has index 13, want 12"},
		{"entry term falls", msg(pb.MsgApp, 5, func(m *pb.Message) {
			m.Index, m.LogTerm, m.Entries = new(uint64(10)), new(uint64(4)), []*pb.Entry{ent(11, 3)}
		}), false, "term 3 outside [4, 5]"},
		{"entry term beyond message", msg(pb.MsgApp, 5, func(m *pb.Message) {
			m.Index, m.LogTerm, m.Entries = new(uint64(10)), new(uint64(4)), []*pb.Entry{ent(11, 6)}
		}), false, "term 6 outside [4, 5]"},
		{"entry type", msg(pb.MsgApp, 5, func(m *pb.Message) {
			m.Index, m.LogTerm, m.Entries = new(uint64(10)), new(uint64(4)), []*pb.Entry{{Index: new(uint64(11)), Term: new(uint64(5)), Type: pb.EntryType(9).Enum()}}
		}), false, "has type"},
		{"entries on a heartbeat", msg(pb.MsgHeartbeat, 5, func(m *pb.Message) { m.Entries = []*pb.Entry{ent(11, 5)} }), false, "carries 1 entries"},
		{"read index with a position", msg(pb.MsgReadIndex, 0, func(m *pb.Message) { m.Entries = []*pb.Entry{ent(3, 1)} }), false, "not a read context"},
		{"local responses", msg(pb.MsgAppResp, 5, func(m *pb.Message) { m.Responses = []*pb.Message{{}} }), false, "local responses"},
		{"snapshot on an append", msg(pb.MsgApp, 5, func(m *pb.Message) { m.Snapshot = snap(9, 5) }), false, "carries a snapshot"},
		{"forced vote", msg(pb.MsgVote, 6, func(m *pb.Message) { m.Context = []byte("CampaignTransfer") }), false, "leadership transfer"},
		{"snapshot over raft frames", msg(pb.MsgSnap, 5, func(m *pb.Message) { m.Snapshot = snap(9, 5) }), false, "outside a snapshot stream"},
		{"stream without snapshot", msg(pb.MsgApp, 5, nil), true, "outside a snapshot stream"},
		{"snapshot term beyond message", msg(pb.MsgSnap, 5, func(m *pb.Message) { m.Snapshot = snap(9, 6) }), true, "snapshot term 6"},
		{"snapshot index zero", msg(pb.MsgSnap, 5, func(m *pb.Message) { m.Snapshot = snap(0, 5) }), true, "snapshot index 0"},
		{"snapshot without configuration", msg(pb.MsgSnap, 5, func(m *pb.Message) {
			m.Snapshot = &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(9)), Term: new(uint64(5))}}
		}), true, "without a configuration"},
		{"nil", nil, false, "no message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateMessage(tt.m, v, tt.snapshot)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	// A joiner with no membership yet takes frames from any sender.
	if err := validateMessage(msg(pb.MsgHeartbeat, 5, func(m *pb.Message) { m.From = new(uint64(9)) }), peerView{self: 1}, false); err != nil {
		t.Fatalf("joiner refused its leader's heartbeat: %v", err)
	}
}
