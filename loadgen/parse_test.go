package loadgen

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in       string
		min, max int64
		err      bool
	}{
		{"1KiB", 1024, 1024, false},
		{"1kib", 1024, 1024, false},
		{"512", 512, 512, false},
		{"0", 0, 0, false},
		{"10B", 10, 10, false},
		{"1KB", 1000, 1000, false},
		{"1.5KiB", 1536, 1536, false},
		{"64MiB", 64 << 20, 64 << 20, false},
		{"1K", 1024, 1024, false},
		{"2GB", 2e9, 2e9, false},
		{"1KiB-64KiB", 1024, 64 << 10, false},
		{" 1KiB - 4KiB ", 1024, 4096, false},
		{"64KiB-1KiB", 0, 0, true},
		{"", 0, 0, true},
		{"KiB", 0, 0, true},
		{"-1", 0, 0, true},
		{"1XB", 0, 0, true},
		{"2TiB", 0, 0, true},
		{"NaN", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d, err := ParseSize(tt.in)
			if tt.err {
				if err == nil {
					t.Fatalf("ParseSize(%q) = %+v, want an error", tt.in, d)
				}
				return
			}
			if err != nil || d.Min != tt.min || d.Max != tt.max {
				t.Fatalf("ParseSize(%q) = %+v, %v; want {%d %d}", tt.in, d, err, tt.min, tt.max)
			}
			// String round-trips.
			back, err := ParseSize(d.String())
			if err != nil || back != d {
				t.Fatalf("ParseSize(%q.String() = %q) = %+v, %v", tt.in, d.String(), back, err)
			}
		})
	}
}

func TestSizeSampleStaysInRange(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	d := SizeDist{Min: 1024, Max: 64 << 10}
	seenLow, seenHigh := false, false
	for range 10000 {
		n := d.Sample(r)
		if n < d.Min || n > d.Max {
			t.Fatalf("sample %d outside [%d, %d]", n, d.Min, d.Max)
		}
		seenLow = seenLow || n < 8<<10
		seenHigh = seenHigh || n > 56<<10
	}
	if !seenLow || !seenHigh {
		t.Fatalf("samples do not cover the range (low %v, high %v)", seenLow, seenHigh)
	}
	if got := (SizeDist{Min: 7, Max: 7}).Sample(r); got != 7 {
		t.Fatalf("fixed size sampled %d, want 7", got)
	}
}

func TestParseDist(t *testing.T) {
	for in, want := range map[string]Dist{"uniform": Uniform, "zipf": Zipf, "ZIPF": Zipf, " uniform ": Uniform} {
		if got, err := ParseDist(in); err != nil || got != want {
			t.Errorf("ParseDist(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseDist("normal"); err == nil {
		t.Error("ParseDist(normal): want an error")
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		err  bool
	}{
		{"0", 0, false},
		{"5000", 5000, false},
		{"5000/s", 5000, false},
		{"600/m", 10, false},
		{"2/ms", 2000, false},
		{"2.5/s", 2.5, false},
		{"-1/s", 0, true},
		{"x/s", 0, true},
		{"10/h", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if (err != nil) != tt.err || (!tt.err && math.Abs(got-tt.want) > 1e-9) {
			t.Errorf("ParseRate(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// TestSchedule checks the open-loop arithmetic: operation i is due at
// start + i/rate, and DueBy counts the operations due by a time.
func TestSchedule(t *testing.T) {
	start := time.Unix(1000, 0)
	s := NewSchedule(start, 4000) // every 250 µs
	if s.Interval != 250*time.Microsecond {
		t.Fatalf("interval %v, want 250µs", s.Interval)
	}
	if got := s.Due(0); !got.Equal(start) {
		t.Errorf("Due(0) = %v, want the start", got)
	}
	if got := s.Due(4000); !got.Equal(start.Add(time.Second)) {
		t.Errorf("Due(4000) = %v, want start + 1s", got)
	}
	tests := []struct {
		at   time.Duration
		want int64
	}{
		{-time.Millisecond, 0},
		{0, 1},
		{249 * time.Microsecond, 1},
		{250 * time.Microsecond, 2},
		{time.Second, 4001},
		{10 * time.Second, 40001},
	}
	for _, tt := range tests {
		if got := s.DueBy(start.Add(tt.at)); got != tt.want {
			t.Errorf("DueBy(start+%v) = %d, want %d", tt.at, got, tt.want)
		}
	}
	// A fractional interval is truncated to whole nanoseconds, never 0.
	if iv := NewSchedule(start, 3).Interval; iv != 333333333 {
		t.Errorf("rate 3/s: interval %v, want 333.333333ms", iv)
	}
	if iv := NewSchedule(start, 1e12).Interval; iv != 1 {
		t.Errorf("rate 1e12/s: interval %v, want 1ns", iv)
	}
}

func TestKeys(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n = 1000
	counts := func(d Dist) []int {
		k := NewKeys(d, n, r)
		c := make([]int, n)
		for range 100000 {
			i := k.Next()
			if i < 0 || i >= n {
				t.Fatalf("%s: index %d outside [0, %d)", d, i, n)
			}
			c[i]++
		}
		return c
	}
	u := counts(Uniform)
	z := counts(Zipf)
	// Uniform: no index gets more than 3x its share; zipf: index 0 gets far more.
	for i, c := range u {
		if c > 300 {
			t.Fatalf("uniform: index %d drawn %d times of 100000 (share 100)", i, c)
		}
	}
	if z[0] < 10000 {
		t.Fatalf("zipf: hottest index drawn %d times of 100000, want a strong skew", z[0])
	}
	if k := NewKeys(Zipf, 1, r); k.Next() != 0 {
		t.Fatal("a single key must always be 0")
	}
}

func TestNamer(t *testing.T) {
	n := Namer{Prefix: "lg", Roots: 4}
	if got := n.File(9); got != "/lg-001/f00000002" {
		t.Errorf("File(9) = %q", got)
	}
	if got := n.Root(3); got != "/lg-003" {
		t.Errorf("Root(3) = %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	if err := ok.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"unknown workload", func(c *Config) { c.Workload = "scan" }},
		{"no clients", func(c *Config) { c.Clients = 0 }},
		{"no end", func(c *Config) { c.Duration = 0 }},
		{"ratio", func(c *Config) { c.ReadRatio = 1.5 }},
		{"get without preload", func(c *Config) { c.Workload = Get; c.Preload = 0 }},
		{"preload above files", func(c *Config) { c.Preload = c.Files + 1 }},
		{"negative rate", func(c *Config) { c.Rate = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			if err := c.Validate(); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}
