package replica

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// trackStep is one thing the loop tells a proposalTracker, in order.
type trackStep struct {
	stepped  []uint64    // proposal ids raft took
	appended []*pb.Entry // a Ready's Entries ...
	last     uint64      // ... written over a log whose last index was last
	landConf *pb.Entry   // the entry a stepped conf change landed at (id from its data)
	commit   []*pb.Entry // a Ready's CommittedEntries
	snapshot uint64      // a snapshot installed at this index
	stop     bool        // the loop stopped
}

func ownEntry(index, term, id uint64) *pb.Entry {
	data := binary.BigEndian.AppendUint64(nil, id)
	return &pb.Entry{Index: new(index), Term: new(term), Type: pb.EntryNormal.Enum(), Data: append(data, "cmd"...)}
}

func emptyEntry(index, term uint64) *pb.Entry {
	return &pb.Entry{Index: new(index), Term: new(term), Type: pb.EntryNormal.Enum()}
}

func confEntry(t *testing.T, typ pb.EntryType, index, term, id uint64) *pb.Entry {
	var m proto.Message = &pb.ConfChange{Id: new(id), Type: pb.ConfChangeAddNode.Enum(), NodeId: new(uint64(4))}
	if typ == pb.EntryConfChangeV2 {
		m = &pb.ConfChangeV2{}
	}
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return &pb.Entry{Index: new(index), Term: new(term), Type: typ.Enum(), Data: data}
}

// runTracker feeds steps to a tracker the way the loop does and returns
// each answer as "id:outcome": "applied@index", "lost", "unknown" (a
// snapshot or a stop after raft took it) or "stopped" (never stepped).
func runTracker(t *testing.T, unstepped []uint64, steps []trackStep) []string {
	tr := newProposalTracker()
	props := map[uint64]*proposal{}
	get := func(id uint64) *proposal {
		if props[id] == nil {
			props[id] = &proposal{id: id}
		}
		return props[id]
	}
	for _, id := range unstepped {
		tr.buf = append(tr.buf, get(id))
	}
	var out []string
	for _, s := range steps {
		var ps []*proposal
		for _, id := range s.stepped {
			ps = append(ps, get(id))
		}
		tr.stepped(ps)
		if e := s.landConf; e != nil {
			tr.land(get(confChangeID(e.GetData())), e.GetIndex(), e.GetTerm())
		}
		ds := lost(nil, tr.appended(s.appended, s.last)...)
		for _, e := range s.commit {
			ds = tr.settle(ds, e, tr.takeLanded(e.GetIndex()), nil)
		}
		for _, d := range ds {
			if d.res.err != nil {
				out = append(out, fmt.Sprintf("%d:lost", d.p.id))
			} else {
				out = append(out, fmt.Sprintf("%d:applied@%d", d.p.id, d.res.index))
			}
		}
		if s.snapshot > 0 {
			for _, p := range tr.snapshotted(s.snapshot) {
				out = append(out, fmt.Sprintf("%d:unknown", p.id))
			}
		}
		if s.stop {
			notStepped, stepped := tr.drop()
			var stop []string
			for _, p := range notStepped {
				stop = append(stop, fmt.Sprintf("%d:stopped", p.id))
			}
			for _, p := range stepped {
				stop = append(stop, fmt.Sprintf("%d:unknown", p.id))
			}
			slices.Sort(stop) // drop's order among stepped proposals is a map's
			out = append(out, stop...)
		}
	}
	return out
}

func TestProposalTracker(t *testing.T) {
	tests := []struct {
		name      string
		unstepped []uint64
		steps     []trackStep
		want      []string
	}{{
		name: "appended then committed",
		steps: []trackStep{
			{stepped: []uint64{1, 2}, appended: []*pb.Entry{ownEntry(5, 2, 1), ownEntry(6, 2, 2)}, last: 4},
			{commit: []*pb.Entry{ownEntry(5, 2, 1), ownEntry(6, 2, 2)}},
		},
		want: []string{"1:applied@5", "2:applied@6"},
	}, {
		name: "appended and committed in one Ready",
		steps: []trackStep{
			{stepped: []uint64{1}, appended: []*pb.Entry{ownEntry(5, 2, 1)}, last: 4, commit: []*pb.Entry{ownEntry(5, 2, 1)}},
		},
		want: []string{"1:applied@5"},
	}, {
		name: "committed without showing where it landed: matched by id",
		steps: []trackStep{
			{stepped: []uint64{1}},
			{commit: []*pb.Entry{emptyEntry(4, 2), ownEntry(5, 2, 1)}},
		},
		want: []string{"1:applied@5"},
	}, {
		name: "foreign entries are nobody's",
		steps: []trackStep{
			{stepped: []uint64{1}, appended: []*pb.Entry{ownEntry(5, 2, 9)}, last: 4},
			{commit: []*pb.Entry{ownEntry(5, 2, 9)}},
		},
		want: nil,
	}, {
		name: "overwritten by a later term's entry",
		steps: []trackStep{
			{stepped: []uint64{1}, appended: []*pb.Entry{ownEntry(5, 2, 1)}, last: 4},
			{appended: []*pb.Entry{ownEntry(5, 3, 9)}, last: 5},
		},
		want: []string{"1:lost"},
	}, {
		name: "log truncated after the new entries",
		steps: []trackStep{
			{stepped: []uint64{1, 2, 3}, appended: []*pb.Entry{ownEntry(5, 2, 1), ownEntry(6, 2, 2), ownEntry(7, 2, 3)}, last: 4},
			{appended: []*pb.Entry{ownEntry(5, 3, 8)}, last: 7},
		},
		want: []string{"1:lost", "2:lost", "3:lost"},
	}, {
		name: "rewritten in its own term is kept",
		steps: []trackStep{
			{stepped: []uint64{1}, appended: []*pb.Entry{ownEntry(5, 2, 1)}, last: 4},
			{appended: []*pb.Entry{ownEntry(5, 2, 1)}, last: 5},
			{commit: []*pb.Entry{ownEntry(5, 2, 1)}},
		},
		want: []string{"1:applied@5"},
	}, {
		name: "another entry committed at its index",
		steps: []trackStep{
			{stepped: []uint64{1}, appended: []*pb.Entry{ownEntry(5, 2, 1)}, last: 4},
			{commit: []*pb.Entry{ownEntry(5, 3, 9)}},
		},
		want: []string{"1:lost"},
	}, {
		name: "an empty entry committed at its index",
		steps: []trackStep{
			{stepped: []uint64{1}, appended: []*pb.Entry{ownEntry(5, 2, 1)}, last: 4},
			{commit: []*pb.Entry{emptyEntry(5, 3)}},
		},
		want: []string{"1:lost"},
	}, {
		name: "conf change committed",
		steps: []trackStep{
			{landConf: confEntry(t, pb.EntryConfChange, 5, 2, 7)},
			{commit: []*pb.Entry{confEntry(t, pb.EntryConfChange, 5, 2, 7)}},
		},
		want: []string{"7:applied@5"},
	}, {
		name: "another conf change at its index",
		steps: []trackStep{
			{landConf: confEntry(t, pb.EntryConfChange, 5, 2, 7)},
			{commit: []*pb.Entry{confEntry(t, pb.EntryConfChangeV2, 5, 2, 0)}},
		},
		want: []string{"7:lost"},
	}, {
		name: "snapshot over landed entries",
		steps: []trackStep{
			{stepped: []uint64{1, 2, 3}, appended: []*pb.Entry{ownEntry(5, 2, 1), ownEntry(6, 2, 2), ownEntry(7, 2, 3)}, last: 4},
			{snapshot: 6},
			{commit: []*pb.Entry{ownEntry(7, 2, 3)}},
		},
		want: []string{"1:unknown", "2:unknown", "3:applied@7"},
	}, {
		name:      "stop",
		unstepped: []uint64{4},
		steps: []trackStep{
			{stepped: []uint64{1, 2}, appended: []*pb.Entry{ownEntry(5, 2, 1)}, last: 4},
			{stop: true},
		},
		want: []string{"1:unknown", "2:unknown", "4:stopped"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runTracker(t, tt.unstepped, tt.steps); !slices.Equal(got, tt.want) {
				t.Errorf("answers = %q, want %q", got, tt.want)
			}
		})
	}
}
