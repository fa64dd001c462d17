package loadgen

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Workload names what a run does.
type Workload string

// Workloads.
const (
	Put    Workload = "put"    // whole-file puts of Size to random files
	Get    Workload = "get"    // whole-file gets of preloaded files
	Mixed  Workload = "mixed"  // gets with probability ReadRatio, else puts
	Append Workload = "append" // appends of Size to random files
	List   Workload = "list"   // lists of the root directories (Files/Roots entries each)
	Stat   Workload = "stat"   // stats of preloaded files
	Stream Workload = "stream" // streamed upload of Size, then download of it, alternately
)

// Workloads lists every workload, in the order usage text shows them.
var Workloads = []Workload{Put, Get, Mixed, Append, List, Stat, Stream, YCSBA, YCSBB, YCSBC, YCSBD, YCSBE, YCSBF}

// ErrNotSupported is returned for a workload or option that the SDK this
// build links against does not offer yet.
var ErrNotSupported = errors.New("loadgen: not supported by this SDK yet")

// Config describes one run. Start from DefaultConfig.
type Config struct {
	Workload   Workload      // what to do; default put
	Size       SizeDist      // file size for writes; default 1KiB
	Roots      int64         // root directories the files spread over; default 16
	Files      int64         // distinct files, over all roots (YCSB: the record count); default 1000
	Dist       Dist          // how files are chosen; default "": uniform, or the YCSB workload's own (zipf; latest for ycsb-d)
	Theta      float64       // skew of zipf and latest, in (0, 1); default 0.99 (YCSB's)
	Clients    int           // concurrent workers; default 16
	Duration   time.Duration // how long to measure; default 10s unless Ops is set
	Warmup     time.Duration // run this long first without recording; default 0
	Ops        int64         // stop after this many operations (0: by Duration)
	Rate       float64       // open loop: target ops/s over all clients; 0 = closed loop
	ReadRatio  float64       // mixed: fraction of gets; default 0.9
	Stale      bool          // reads may be served stale by any replica
	Direct     bool          // cleave: the client sends file operations straight to the owning cluster (client.WithDirect)
	Seed       uint64        // randomness of sizes, keys and data; default 1
	Preload    int64         // files created before measuring; -1 (default): Files for read workloads, 0 for put/append
	Prefix     string        // root directories are named Prefix-NNN; default "loadgen"
	Timeout    time.Duration // deadline of one operation; default 10s
	Router     string        // recorded in the Result only: the addresses driven
	Target     string        // recorded in the Result only: "cleave" or "etcd"
	Label      string        // recorded in the Result only: what the system is called in summaries (default Target)
	Baseline   bool          // recorded in the Result only: the run measured a baseline build
	CPUPIDs    []int         // server processes whose CPU time is measured over the window
	ClockTicks int           // CLK_TCK of /proc/PID/stat; 0: 100
	Logger     *slog.Logger  // default: discard

	// PinClusters pins clients to clusters: with N clusters in the routing
	// table, client i uses only roots owned by the i mod N-th of them
	// (PinRoots chooses ceil(Roots/N) for each), so every cluster keeps
	// Clients/N requests in flight whichever is slow at the moment. Needs
	// a Store with a routing table (Tabler) and a workload that writes its
	// files itself: put, append or stream, without preload.
	PinClusters bool

	pin *Pinning // set by Run when PinClusters
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Workload:  Put,
		Size:      SizeDist{Min: 1 << 10, Max: 1 << 10},
		Roots:     16,
		Files:     1000,
		Theta:     DefaultTheta,
		Clients:   16,
		Duration:  10 * time.Second,
		ReadRatio: 0.9,
		Seed:      1,
		Preload:   -1,
		Prefix:    "loadgen",
		Timeout:   10 * time.Second,
		Logger:    slog.New(slog.DiscardHandler),
	}
}

// Validate reports what is wrong with c, if anything.
func (c *Config) Validate() error {
	known := false
	for _, w := range Workloads {
		known = known || w == c.Workload
	}
	switch {
	case !known:
		return fmt.Errorf("workload %q: want one of %s", c.Workload, workloadNames())
	case c.Clients < 1:
		return fmt.Errorf("clients %d: want at least 1", c.Clients)
	case c.Roots < 1:
		return fmt.Errorf("roots %d: want at least 1", c.Roots)
	case c.Files < 1:
		return fmt.Errorf("files %d: want at least 1", c.Files)
	case c.Duration <= 0 && c.Ops <= 0:
		return fmt.Errorf("want a duration or a number of operations")
	case c.Ops < 0:
		return fmt.Errorf("ops %d: negative", c.Ops)
	case c.Rate < 0:
		return fmt.Errorf("rate %g: negative", c.Rate)
	case c.ReadRatio < 0 || c.ReadRatio > 1:
		return fmt.Errorf("read ratio %g: want a fraction in [0, 1]", c.ReadRatio)
	case c.Size.Min < 0 || c.Size.Max < c.Size.Min:
		return fmt.Errorf("size %s: bad range", c.Size)
	case c.Dist != "" && c.Dist != Uniform && c.Dist != Zipf && c.Dist != Latest:
		return fmt.Errorf("distribution %q: want uniform, zipf or latest", c.Dist)
	case !(c.Theta > 0 && c.Theta < 1):
		return fmt.Errorf("zipf theta %g: want a skew in (0, 1), e.g. YCSB's 0.99", c.Theta)
	case c.Warmup < 0:
		return fmt.Errorf("warmup %v: negative", c.Warmup)
	case c.Prefix == "":
		return fmt.Errorf("prefix: empty")
	case c.Timeout <= 0:
		return fmt.Errorf("timeout %v: want > 0", c.Timeout)
	case c.ClockTicks < 0:
		return fmt.Errorf("clock ticks %d: negative", c.ClockTicks)
	}
	for _, p := range c.CPUPIDs {
		if p <= 0 {
			return fmt.Errorf("cpu pid %d: want a process id > 0", p)
		}
	}
	if c.Preload > c.Files {
		return fmt.Errorf("preload %d: more than --files %d", c.Preload, c.Files)
	}
	if c.PinClusters && (c.Workload != Put && c.Workload != Append && c.Workload != Stream || c.preloadCount() > 0) {
		return fmt.Errorf("pin clusters: workload %s with %d preloaded files: pinning needs a workload that writes its own files (put, append or stream) and no preload", c.Workload, c.preloadCount())
	}
	if isYCSB(c.Workload) && c.Preload >= 0 && c.Preload != c.Files {
		return fmt.Errorf("preload %d: workload %s loads all --records (%d) first; leave --preload unset", c.Preload, c.Workload, c.Files)
	}
	if c.needsPreload() && c.preloadCount() == 0 {
		return fmt.Errorf("workload %s reads files: want --preload > 0 (or leave it unset)", c.Workload)
	}
	return nil
}

// needsPreload reports whether the workload reads files that must exist.
func (c *Config) needsPreload() bool {
	switch c.Workload {
	case Get, Mixed, Stat:
		return true
	}
	return isYCSB(c.Workload)
}

// preloadCount is the number of files created before measuring.
func (c *Config) preloadCount() int64 {
	if c.Preload >= 0 {
		return c.Preload
	}
	switch c.Workload {
	case Get, Mixed, Stat, List:
		return c.Files
	}
	if isYCSB(c.Workload) {
		return c.Files
	}
	return 0
}

// dist returns the key distribution in effect: Dist, else the workload's.
func (c *Config) dist() Dist {
	if c.Dist != "" {
		return c.Dist
	}
	if m, ok := ycsbMixes[c.Workload]; ok {
		return m.dist
	}
	return Uniform
}

// workloadNames lists the workloads for messages: "put, get, ...".
func workloadNames() string {
	s := make([]string, len(Workloads))
	for i, w := range Workloads {
		s[i] = string(w)
	}
	return strings.Join(s, ", ")
}
