package replica

import (
	"slices"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
)

// testAppend is an append to peer to in term, with commit 7 and ents
// entries from index 8.
func testAppend(to, term uint64, ents int) *pb.Message {
	m := &pb.Message{Type: pb.MsgApp.Enum(), To: new(to), Term: new(term), Commit: new(uint64(7))}
	for i := range ents {
		m.Entries = append(m.Entries, &pb.Entry{Index: new(uint64(8 + i))})
	}
	return m
}

func TestDropSuperseded(t *testing.T) {
	app := testAppend
	ack := func(to, term, index uint64, reject bool) *pb.Message {
		return &pb.Message{Type: pb.MsgAppResp.Enum(), To: new(to), Term: new(term), Index: new(index), Reject: new(reject)}
	}
	hb := &pb.Message{Type: pb.MsgHeartbeat.Enum(), To: new(uint64(2)), Term: new(uint64(3))}
	emptyTo2, emptyTo2Again, entsTo2 := app(2, 3, 0), app(2, 3, 0), app(2, 3, 2)
	emptyTo3, entsTo3 := app(3, 3, 0), app(3, 3, 1)
	ack5, ack7, ack7Again, reject7 := ack(1, 3, 5, false), ack(1, 3, 7, false), ack(1, 3, 7, false), ack(1, 3, 7, true)
	for _, tc := range []struct {
		name string
		in   []*pb.Message
		want []*pb.Message
	}{
		{"an empty append before one with entries", []*pb.Message{emptyTo2, hb, entsTo2}, []*pb.Message{hb, entsTo2}},
		{"two empty appends", []*pb.Message{emptyTo2, emptyTo2Again}, []*pb.Message{emptyTo2Again}},
		{"per peer", []*pb.Message{emptyTo2, emptyTo3, entsTo2, entsTo3}, []*pb.Message{entsTo2, entsTo3}},
		{"entries are never dropped", []*pb.Message{entsTo2, emptyTo2}, []*pb.Message{entsTo2, emptyTo2}},
		{"another peer's append does not supersede", []*pb.Message{emptyTo2, entsTo3}, []*pb.Message{emptyTo2, entsTo3}},
		{"another term's append does not supersede", []*pb.Message{emptyTo2, app(2, 4, 1)}, []*pb.Message{emptyTo2, app(2, 4, 1)}},
		{"an acknowledgement before a further one", []*pb.Message{ack5, ack7}, []*pb.Message{ack7}},
		{"an acknowledgement before an equal one", []*pb.Message{ack7, ack7Again}, []*pb.Message{ack7Again}},
		{"a later acknowledgement that goes less far", []*pb.Message{ack7, ack5}, []*pb.Message{ack7, ack5}},
		{"a rejection is never dropped", []*pb.Message{reject7, ack7}, []*pb.Message{reject7, ack7}},
		{"nor supersedes", []*pb.Message{ack5, reject7}, []*pb.Message{ack5, reject7}},
		{"another term's acknowledgement does not supersede", []*pb.Message{ack5, ack(1, 4, 7, false)}, []*pb.Message{ack5, ack(1, 4, 7, false)}},
		{"nothing to drop", []*pb.Message{hb, emptyTo2}, []*pb.Message{hb, emptyTo2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			got := dropSuperseded(in)
			if len(got) != len(tc.want) {
				t.Fatalf("kept %d messages, want %d: %v", len(got), len(tc.want), got)
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if g.GetType() != w.GetType() || g.GetTo() != w.GetTo() || g.GetTerm() != w.GetTerm() ||
					g.GetIndex() != w.GetIndex() || g.GetReject() != w.GetReject() || len(g.Entries) != len(w.Entries) {
					t.Fatalf("message %d is %v, want %v", i, g, w)
				}
			}
			if !slices.Equal(in, tc.in) {
				t.Fatal("the Ready's own slice was changed")
			}
		})
	}
}
