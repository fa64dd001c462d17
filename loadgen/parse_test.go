package loadgen

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cleavefs/cleave/internal/bytesize"
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
			if err != nil || back.String() != d.String() || back.Min != d.Min || back.Max != d.Max {
				t.Fatalf("ParseSize(%q.String() = %q) = %+v, %v", tt.in, d.String(), back, err)
			}
		})
	}
}

// TestSizeLognormal: median and sigma are what the samples show (half
// below the median, 84% below median·e^sigma), the cap holds, and bad
// arguments are named.
func TestSizeLognormal(t *testing.T) {
	d, err := ParseSize("lognormal:4KiB,1")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(4096 * math.Exp(3)); d.Max != want || d.String() != "lognormal:4KiB,1,"+bytesize.Format(want) {
		t.Errorf("default cap %d (%s), want %d", d.Max, d, want)
	}
	r := rand.New(rand.NewPCG(9, 9))
	const draws = 100_000
	below, belowSigma := 0, 0
	for range draws {
		n := d.Sample(r)
		if n < 0 || n > d.Max {
			t.Fatalf("sample %d outside [0, %d]", n, d.Max)
		}
		if n <= 4096 {
			below++
		}
		if float64(n) <= 4096*math.E {
			belowSigma++
		}
	}
	within(t, "below the median", below, draws, 0.5, 0.001)
	within(t, "below median·e^sigma", belowSigma, draws, 0.8413, 0.001)
	c, err := ParseSize("lognormal:1KiB,2,2KiB")
	if err != nil || c.Max != 2048 {
		t.Fatalf("capped: %+v %v", c, err)
	}
	for _, bad := range []string{"lognormal:", "lognormal:4KiB", "lognormal:4KiB,x", "lognormal:4KiB,-1", "lognormal:0,1", "lognormal:4KiB,1,1KiB", "lognormal:4KiB,1,2,3"} {
		_, err := ParseSize(bad)
		if err == nil || !strings.Contains(err.Error(), "lognormal:MEDIAN,SIGMA") {
			t.Errorf("ParseSize(%q): %v, want an error showing the form", bad, err)
		}
	}
}

// TestSizeHistogramFile: sizes come in the file's proportions, ranges are
// drawn uniformly within, and parse errors name the file and line.
func TestSizeHistogramFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sizes.txt")
	os.WriteFile(p, []byte("# size weight\n1KiB 70\n\n64KiB-128KiB 20  # a range\n1MiB 10\n0 0\n"), 0o644)
	d, err := ParseSize("hist:" + p)
	if err != nil {
		t.Fatal(err)
	}
	if d.Min != 0 || d.Max != 1<<20 || d.String() != "hist:"+p {
		t.Errorf("hist: min %d max %d %q", d.Min, d.Max, d)
	}
	r := rand.New(rand.NewPCG(4, 4))
	const draws = 100_000
	var small, mid, big int
	for range draws {
		switch n := d.Sample(r); {
		case n == 1024:
			small++
		case n >= 64<<10 && n <= 128<<10:
			mid++
		case n == 1<<20:
			big++
		default:
			t.Fatalf("sample %d is in no bucket", n)
		}
	}
	within(t, "1KiB", small, draws, 0.7, 0)
	within(t, "64KiB-128KiB", mid, draws, 0.2, 0)
	within(t, "1MiB", big, draws, 0.1, 0)

	for _, tc := range []struct{ body, want string }{
		{"1KiB 70\n2KiB\n", "line 2: 1 fields"},
		{"1KiB 70\nlots 3\n", "line 2:"},
		{"1KiB x\n", "line 1: weight \"x\""},
		{"1KiB -2\n", "line 1: weight \"-2\""},
		{"# nothing\n", "no bucket with a weight above 0"},
		{"4KiB-1KiB 1\n", "line 1: size \"4KiB-1KiB\""},
	} {
		os.WriteFile(p, []byte(tc.body), 0o644)
		_, err := ParseSize("hist:" + p)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: %v, want an error naming %s and %q", tc.body, err, p, tc.want)
		}
	}
	if _, err := ParseSize("hist:" + filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := ParseSize("hist:"); err == nil || !strings.Contains(err.Error(), "hist:FILE") {
		t.Errorf("no file: %v", err)
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
