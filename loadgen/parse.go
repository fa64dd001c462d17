package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// units are the size suffixes ParseSize accepts, longest first so "KiB" is
// tried before "B". Binary (KiB) and decimal (KB) suffixes both exist;
// "K" alone means KiB, as in dd.
var units = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30},
	{"B", 1},
}

// ParseBytes parses a byte count such as "1KiB", "64MiB", "1.5KB" or "512".
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("size %q: empty", s)
	}
	mult := int64(1)
	for _, u := range units {
		if len(t) > len(u.suffix) && strings.EqualFold(t[len(t)-len(u.suffix):], u.suffix) {
			// "kb" and "KB" are decimal, "kib" binary: EqualFold keeps that
			// distinction because the suffixes differ in the "i".
			mult, t = u.mult, strings.TrimSpace(t[:len(t)-len(u.suffix)])
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (B, KiB, MiB, GiB, KB, MB, GB)", s)
	}
	if f < 0 {
		return 0, fmt.Errorf("size %q: negative", s)
	}
	v := f * float64(mult)
	if v > float64(1<<40) {
		return 0, fmt.Errorf("size %q: above 1 TiB", s)
	}
	return int64(math.Round(v)), nil
}

// FormatBytes writes n the short way: "1KiB", "64MiB", "1500B".
func FormatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10) + "B"
}

// SizeDist is the size of the files a workload writes: a fixed Min (when
// Min == Max) or uniform in [Min, Max].
type SizeDist struct {
	Min, Max int64
}

// ParseSize parses "1KiB" (fixed) or "1KiB-64KiB" (uniform in the range).
func ParseSize(s string) (SizeDist, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	min, err := ParseBytes(lo)
	if err != nil {
		return SizeDist{}, err
	}
	if !isRange {
		return SizeDist{Min: min, Max: min}, nil
	}
	max, err := ParseBytes(hi)
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
		return FormatBytes(d.Min)
	}
	return FormatBytes(d.Min) + "-" + FormatBytes(d.Max)
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
