package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
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

// SizeDist is the size of the files a workload writes: fixed (Min ==
// Max), uniform in [Min, Max], lognormal (Median, Sigma, capped at Max) or
// drawn from a weighted histogram read from a file. Build it with
// ParseSize, or as a literal {Min, Max} for fixed and uniform sizes.
type SizeDist struct {
	Min, Max int64 // the smallest and largest size a draw can have

	kind    string // "" (fixed or uniform), "lognormal" or "hist"
	median  int64
	sigma   float64
	buckets []sizeBucket // hist: in file order
	total   float64      // hist: sum of the weights
	spec    string       // lognormal, hist: the text parsed, for String
}

// sizeBucket is one line of a size histogram: sizes uniform in [lo, hi],
// drawn with weight w; cum is the sum of the weights up to and including it.
type sizeBucket struct {
	lo, hi int64
	w, cum float64
}

// ParseSize parses a size distribution:
//
//	1KiB                       fixed
//	1KiB-64KiB                 uniform in the range
//	lognormal:4KiB,1.5[,1MiB]  lognormal with median 4KiB and sigma 1.5,
//	                           capped at 1MiB (default: median·e^(3·sigma))
//	hist:FILE                  a histogram: one "SIZE WEIGHT" or
//	                           "MIN-MAX WEIGHT" per line, # comments
//
// Sizes take package bytesize's forms: 1KB is 1000 bytes, 1KiB is 1024.
func ParseSize(s string) (SizeDist, error) {
	switch kind, rest, _ := strings.Cut(s, ":"); kind {
	case "lognormal":
		return parseLognormal(s, rest)
	case "hist":
		return readSizeHist(rest)
	}
	return parseRange(s)
}

// parseRange parses "1KiB" or "1KiB-64KiB".
func parseRange(s string) (SizeDist, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	min, err := parseBytes(strings.TrimSpace(lo))
	if err != nil {
		return SizeDist{}, err
	}
	if !isRange {
		return SizeDist{Min: min, Max: min}, nil
	}
	max, err := parseBytes(strings.TrimSpace(hi))
	if err != nil {
		return SizeDist{}, err
	}
	if max < min {
		return SizeDist{}, fmt.Errorf("size %q: the upper bound is below the lower", s)
	}
	return SizeDist{Min: min, Max: max}, nil
}

// parseLognormal parses the arguments of "lognormal:MEDIAN,SIGMA[,MAX]".
func parseLognormal(s, args string) (SizeDist, error) {
	bad := func(what string) (SizeDist, error) {
		return SizeDist{}, fmt.Errorf("size %q: %s; want lognormal:MEDIAN,SIGMA[,MAX], e.g. lognormal:4KiB,1.5", s, what)
	}
	parts := strings.Split(args, ",")
	if len(parts) < 2 || len(parts) > 3 {
		return bad(fmt.Sprintf("%d arguments", len(parts)))
	}
	med, err := parseBytes(strings.TrimSpace(parts[0]))
	if err != nil || med < 1 {
		return bad(fmt.Sprintf("median %q is not a size of at least 1 byte", parts[0]))
	}
	sigma, err := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
	if err != nil || !(sigma > 0) || sigma > 10 {
		return bad(fmt.Sprintf("sigma %q is not a number in (0, 10]", parts[1]))
	}
	capped := min(float64(med)*math.Exp(3*sigma), maxSize)
	if len(parts) == 3 {
		c, err := parseBytes(strings.TrimSpace(parts[2]))
		if err != nil || c < med {
			return bad(fmt.Sprintf("cap %q is not a size at least the median", parts[2]))
		}
		capped = float64(c)
	}
	d := SizeDist{Min: 0, Max: int64(capped), kind: "lognormal", median: med, sigma: sigma}
	d.spec = fmt.Sprintf("lognormal:%s,%g,%s", bytesize.Format(med), sigma, bytesize.Format(d.Max))
	return d, nil
}

// String writes d the way ParseSize reads it.
func (d SizeDist) String() string {
	if d.spec != "" {
		return d.spec
	}
	if d.Min == d.Max {
		return bytesize.Format(d.Min)
	}
	return bytesize.Format(d.Min) + "-" + bytesize.Format(d.Max)
}

// Sample draws one size, in [Min, Max].
func (d SizeDist) Sample(r *rand.Rand) int64 {
	switch d.kind {
	case "lognormal":
		v := float64(d.median) * math.Exp(d.sigma*r.NormFloat64())
		return min(int64(math.Round(v)), d.Max)
	case "hist":
		x := r.Float64() * d.total
		i, _ := slices.BinarySearchFunc(d.buckets, x, func(b sizeBucket, x float64) int {
			if b.cum <= x {
				return -1
			}
			return 1
		})
		b := d.buckets[min(i, len(d.buckets)-1)]
		return b.lo + r.Int64N(b.hi-b.lo+1)
	}
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
	Zipf    Dist = "zipf"    // YCSB's scrambled zipfian: a few hot files scattered over the key space, a long tail
	Latest  Dist = "latest"  // YCSB's latest: zipfian from the newest file down
)

// ParseDist parses "uniform", "zipf", "latest" or "" (the workload's own:
// uniform, or YCSB's for the ycsb workloads).
func ParseDist(s string) (Dist, error) {
	switch d := Dist(strings.ToLower(strings.TrimSpace(s))); d {
	case "", Uniform, Zipf, Latest:
		return d, nil
	}
	return "", fmt.Errorf("distribution %q: want uniform, zipf or latest", s)
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
