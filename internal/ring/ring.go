// Package ring maps root directories to points on the 64-bit hash ring and
// checks that a set of ranges partitions the ring.
package ring

import (
	"fmt"
	"sort"

	"github.com/cespare/xxhash/v2"
	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/wire"
)

// Point returns the ring point of a root directory name: xxhash64(root).
func Point(root string) uint64 { return xxhash.Sum64String(root) }

// PathPoint returns the point of a valid path's root directory.
func PathPoint(p string) uint64 { return Point(fspath.Root(p)) }

// Even cuts the ring into n contiguous ranges of (nearly) equal size.
func Even(n int) []wire.Range {
	if n <= 0 {
		return nil
	}
	out := make([]wire.Range, n)
	step := ^uint64(0)/uint64(n) + 1
	if n == 1 {
		step = 0
	}
	for i := range out {
		out[i] = wire.Range{Start: uint64(i) * step, End: uint64(i+1) * step}
	}
	out[n-1].End = 0
	return out
}

// Mid returns the split point of r: s + (e-s)/2, computed without overflow
// when r reaches the top of the ring (End == 0 means 2^64).
func Mid(r wire.Range) uint64 {
	if r.End == 0 {
		x := ^uint64(0) - r.Start // 2^64 - Start - 1
		return r.Start + x/2 + x%2
	}
	return r.Start + (r.End-r.Start)/2
}

// CheckPartition returns an error unless rs, sorted by start, are non-empty,
// contiguous and together cover the whole ring exactly once.
func CheckPartition(rs []wire.Range) error {
	if len(rs) == 0 {
		return fmt.Errorf("no ranges")
	}
	sorted := append([]wire.Range(nil), rs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Start < sorted[j].Start })
	if sorted[0].Start != 0 {
		return fmt.Errorf("ring starts at %#x, not 0", sorted[0].Start)
	}
	for i, r := range sorted {
		last := i == len(sorted)-1
		if r.End == 0 && !last {
			return fmt.Errorf("range %v reaches the top of the ring but is not last", r)
		}
		if r.End != 0 && r.End <= r.Start {
			return fmt.Errorf("range %v is empty or reversed", r)
		}
		if last {
			if r.End != 0 {
				return fmt.Errorf("ring ends at %#x, not 2^64", r.End)
			}
		} else if next := sorted[i+1].Start; next != r.End {
			return fmt.Errorf("gap or overlap between %v and %v", r, sorted[i+1])
		}
	}
	return nil
}
