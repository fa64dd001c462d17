package ring

import (
	"testing"

	"github.com/cleavefs/cleave/wire"
)

func TestEvenIsPartition(t *testing.T) {
	for n := 1; n <= 7; n++ {
		rs := Even(n)
		if err := CheckPartition(rs); err != nil {
			t.Fatalf("Even(%d) = %v: %v", n, rs, err)
		}
	}
	if rs := Even(2); rs[1].Start != 1<<63 {
		t.Fatalf("Even(2) cuts at %#x, want 2^63", rs[1].Start)
	}
}

func TestMid(t *testing.T) {
	tests := []struct {
		r    wire.Range
		want uint64
	}{
		{wire.Range{Start: 0, End: 0}, 1 << 63},
		{wire.Range{Start: 1 << 63, End: 0}, 1<<63 + 1<<62},
		{wire.Range{Start: 0, End: 1 << 63}, 1 << 62},
		{wire.Range{Start: 10, End: 20}, 15},
	}
	for _, tt := range tests {
		if got := Mid(tt.r); got != tt.want {
			t.Errorf("Mid(%v) = %#x, want %#x", tt.r, got, tt.want)
		}
	}
}

func TestCheckPartitionRejects(t *testing.T) {
	bad := [][]wire.Range{
		nil,
		{{Start: 1, End: 0}},
		{{Start: 0, End: 10}},
		{{Start: 0, End: 10}, {Start: 11, End: 0}},
		{{Start: 0, End: 10}, {Start: 5, End: 0}},
		{{Start: 0, End: 0}, {Start: 5, End: 0}},
	}
	for _, rs := range bad {
		if CheckPartition(rs) == nil {
			t.Errorf("CheckPartition(%v) = nil, want error", rs)
		}
	}
}
