package replica

import (
	"slices"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
)

func TestHoldNotices(t *testing.T) {
	app := testAppend
	hb := func(to uint64) *pb.Message {
		return &pb.Message{Type: pb.MsgHeartbeat.Enum(), To: new(to), Term: new(uint64(3))}
	}
	n2, n3, n2Later := app(2, 3, 0), app(3, 3, 0), app(2, 3, 0)
	e2, e3, e2NewTerm := app(2, 3, 1), app(3, 3, 2), app(2, 4, 1)
	hb2, hb3 := hb(2), hb(3)
	vote := &pb.Message{Type: pb.MsgVoteResp.Enum(), To: new(uint64(2)), Term: new(uint64(4))}
	// One Ready each: whether the node leads, whether a tick came before
	// it, its messages; what it sends and what stays held after it.
	type ready struct {
		leading, tick bool
		in, sent      []*pb.Message
		held          []*pb.Message
	}
	for _, tc := range []struct {
		name       string
		readies    []ready
		superseded uint64
	}{
		{"a notice is held", []ready{
			{true, false, []*pb.Message{n2}, nil, []*pb.Message{n2}},
		}, 0},
		{"the other messages keep their order around it", []ready{
			{true, false, []*pb.Message{e3, n2, hb3}, []*pb.Message{e3, hb3}, []*pb.Message{n2}},
		}, 0},
		{"a later append to the peer drops it", []ready{
			{true, false, []*pb.Message{n2}, nil, []*pb.Message{n2}},
			{true, false, []*pb.Message{hb3, e2}, []*pb.Message{hb3, e2}, nil},
		}, 1},
		{"a later notice replaces it", []ready{
			{true, false, []*pb.Message{n2}, nil, []*pb.Message{n2}},
			{true, false, []*pb.Message{n2Later}, nil, []*pb.Message{n2Later}},
		}, 1},
		{"another message to the peer sends it first", []ready{
			{true, false, []*pb.Message{n2, n3}, nil, []*pb.Message{n2, n3}},
			{true, false, []*pb.Message{e3, hb2}, []*pb.Message{n2, e3, hb2}, nil},
		}, 1},
		{"an append of a later term does not supersede it", []ready{
			{true, false, []*pb.Message{n2}, nil, []*pb.Message{n2}},
			{true, false, []*pb.Message{e2NewTerm}, []*pb.Message{n2, e2NewTerm}, nil},
		}, 0},
		{"another peer's messages leave it held", []ready{
			{true, false, []*pb.Message{n2}, nil, []*pb.Message{n2}},
			{true, false, []*pb.Message{e3, hb3}, []*pb.Message{e3, hb3}, []*pb.Message{n2}},
		}, 0},
		{"after a tick the next Ready sends every held notice", []ready{
			{true, false, []*pb.Message{n2, n3}, nil, []*pb.Message{n2, n3}},
			{true, true, nil, []*pb.Message{n2, n3}, nil},
		}, 0},
		{"and holds its own", []ready{
			{true, false, []*pb.Message{n2}, nil, []*pb.Message{n2}},
			{true, true, []*pb.Message{hb3, n3}, []*pb.Message{n2, hb3}, []*pb.Message{n3}},
		}, 0},
		{"a node that stops leading drops them", []ready{
			{true, false, []*pb.Message{n2}, nil, []*pb.Message{n2}},
			{false, true, []*pb.Message{vote}, []*pb.Message{vote}, nil},
		}, 0},
		{"a follower holds nothing", []ready{
			{false, false, []*pb.Message{n2}, []*pb.Message{n2}, nil},
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Replica{}
			for i, rd := range tc.readies {
				if rd.tick {
					r.held.due = len(r.held.msgs) > 0 // as tick does
				}
				in := slices.Clone(rd.in)
				got := r.holdNotices(rd.leading, in)
				if !slices.Equal(got, rd.sent) {
					t.Fatalf("Ready %d sent %v, want %v", i, got, rd.sent)
				}
				if !slices.Equal(r.held.msgs, rd.held) {
					t.Fatalf("Ready %d left held %v, want %v", i, r.held.msgs, rd.held)
				}
				if !slices.Equal(in, rd.in) {
					t.Fatalf("Ready %d: its own slice was changed", i)
				}
			}
			if got := r.stats.superseded.Load(); got != tc.superseded {
				t.Fatalf("counted %d superseded, want %d", got, tc.superseded)
			}
		})
	}
}
