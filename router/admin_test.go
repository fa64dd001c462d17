package router

import (
	"slices"
	"testing"

	"github.com/cleavefs/cleave/wire"
)

func TestVoterMembers(t *testing.T) {
	for _, tc := range []struct {
		name string
		ms   []wire.MemberStatus
		old  []wire.Member
		want []wire.Member
	}{
		{"learners left out, sorted by id",
			[]wire.MemberStatus{{ID: 4, Addr: "d:1", Voter: true}, {ID: 5, Addr: "e:1"}, {ID: 1, Addr: "a:1", Voter: true}},
			nil,
			[]wire.Member{{ID: 1, Addr: "a:1"}, {ID: 4, Addr: "d:1"}}},
		{"missing address kept from the table",
			[]wire.MemberStatus{{ID: 1, Voter: true}, {ID: 3, Addr: "c:2", Voter: true}},
			[]wire.Member{{ID: 1, Addr: "a:1"}, {ID: 2, Addr: "b:1"}, {ID: 3, Addr: "c:1"}},
			[]wire.Member{{ID: 1, Addr: "a:1"}, {ID: 3, Addr: "c:2"}}},
		{"no voters", []wire.MemberStatus{{ID: 2, Addr: "b:1"}}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mergeAddrs(VoterMembers(tc.ms), tc.old)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
