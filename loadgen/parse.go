package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/cleavefs/cleave/internal/bytesize"
)

// maxSize caps a workload's file size: larger is a typo, not a benchmark.
const maxSize = 1 << 40

// parseBytes reads one size (package bytesize's forms: 1KB is 1000 bytes,
// 1KiB and 1K are 1024) up to 1 TiB.
func parseBytes(s string) (int64, error) {
	n, err := bytesize.Parse(s)
	if err != nil {
		return 0, err
	}
	if n > maxSize {
		return 0, fmt.Errorf("%q is too large a workload size: above 1 TiB", s)
	}
	return n, nil
}

// SizeDist is the size of the files a workload writes: a fixed Min (when
// Min == Max) or uniform in [Min, Max].
type SizeDist struct {
	Min, Max int64
}

// ParseSize parses "1KiB" (fixed) or "1KiB-64KiB" (uniform in the range).
// Sizes take package bytesize's forms: 1KB is 1000 bytes, 1KiB is 1024.
func ParseSize(s string) (SizeDist, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	min, err := parseBytes(lo)
	if err != nil {
		return SizeDist{}, err
	}
	if !isRange {
		return SizeDist{Min: min, Max: min}, nil
	}
	max, err := parseBytes(hi)
	if err != nil {
		return SizeDist{}, err
	}
	if max < min {
		return SizeDist{}, fmt.Errorf("size %q: the upper bound is below the lower", s)
	}
	return SizeDist{Min: min, Max: max}, nil
}

// String writes d the way ParseSize reads it.
func (d SizeDist) String() string {
	if d.Min == d.Max {
		return bytesize.Format(d.Min)
	}
	return bytesize.Format(d.Min) + "-" + bytesize.Format(d.Max)
}

// Sample draws one size.
func (d SizeDist) Sample(r *rand.Rand) int64 {
	if d.Max <= d.Min {
		return d.Min
	}
	return d.Min + r.Int64N(d.Max-d.Min+1)
}

// Dist is how keys (files) are chosen.
type Dist string

// Key distributions.
const (
	Uniform Dist = "uniform" // every file equally likely
	Zipf    Dist = "zipf"    // a few hot files, a long tail (s = 1.1, like YCSB's default skew)
)

// ParseDist parses "uniform" or "zipf".
func ParseDist(s string) (Dist, error) {
	switch d := Dist(strings.ToLower(strings.TrimSpace(s))); d {
	case Uniform, Zipf:
		return d, nil
	}
	return "", fmt.Errorf("distribution %q: want uniform or zipf", s)
}

// ParseRate parses an operation rate: "5000", "5000/s", "300/m" or "0"
// (no limit: closed loop). The result is in operations per second.
func ParseRate(s string) (float64, error) {
	t := strings.TrimSpace(s)
	per := time.Second
	if num, unit, ok := strings.Cut(t, "/"); ok {
		t = num
		switch strings.TrimSpace(unit) {
		case "s", "sec":
		case "m", "min":
			per = time.Minute
		case "ms":
			per = time.Millisecond
		default:
			return 0, fmt.Errorf("rate %q: unit %q: want /s, /m or /ms", s, unit)
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Errorf("rate %q: want a non-negative number of operations, e.g. 5000/s", s)
	}
	return f * float64(time.Second) / float64(per), nil
}

// Schedule is the open-loop send schedule: operation i is due at
// Start + i*Interval. It is what makes latency honest under overload: the
// clock for operation i starts at its due time whether or not a worker was
// free to send it then.
type Schedule struct {
	Start    time.Time
	Interval time.Duration // 1s / rate; > 0
}

// NewSchedule returns the schedule of rate operations per second from start.
// rate must be > 0; rates above 1e9/s are treated as 1e9/s.
func NewSchedule(start time.Time, rate float64) Schedule {
	iv := time.Duration(float64(time.Second) / rate)
	if iv < 1 {
		iv = 1
	}
	return Schedule{Start: start, Interval: iv}
}

// Due returns when operation i (from 0) is due.
func (s Schedule) Due(i int64) time.Time {
	return s.Start.Add(time.Duration(i) * s.Interval)
}

// DueBy returns how many operations are due by t (the count of i with
// Due(i) <= t).
func (s Schedule) DueBy(t time.Time) int64 {
	d := t.Sub(s.Start)
	if d < 0 {
		return 0
	}
	return int64(d/s.Interval) + 1
}
