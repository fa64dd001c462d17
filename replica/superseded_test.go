package replica

import (
	"slices"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
)

func TestDropSupersededAppends(t *testing.T) {
	app := func(to, term uint64, ents int) *pb.Message {
		m := &pb.Message{Type: pb.MsgApp.Enum(), To: new(to), Term: new(term), Commit: new(uint64(7))}
		for i := range ents {
			m.Entries = append(m.Entries, &pb.Entry{Index: new(uint64(8 + i))})
		}
		return m
	}
	hb := &pb.Message{Type: pb.MsgHeartbeat.Enum(), To: new(uint64(2)), Term: new(uint64(3))}
	emptyTo2, emptyTo2Again, entsTo2 := app(2, 3, 0), app(2, 3, 0), app(2, 3, 2)
	emptyTo3, entsTo3 := app(3, 3, 0), app(3, 3, 1)
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
		{"nothing to drop", []*pb.Message{hb, emptyTo2}, []*pb.Message{hb, emptyTo2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			got := dropSupersededAppends(in)
			if len(got) != len(tc.want) {
				t.Fatalf("kept %d messages, want %d: %v", len(got), len(tc.want), got)
			}
			for i := range got {
				if got[i].GetType() != tc.want[i].GetType() || got[i].GetTo() != tc.want[i].GetTo() ||
					got[i].GetTerm() != tc.want[i].GetTerm() || len(got[i].Entries) != len(tc.want[i].Entries) {
					t.Fatalf("message %d is %v, want %v", i, got[i], tc.want[i])
				}
			}
			if !slices.Equal(in, tc.in) {
				t.Fatal("the Ready's own slice was changed")
			}
		})
	}
}
