package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/wire"
)

// memStore is an in-memory Store. fail, if set, decides per call whether
// to fail and with which code; delay, if set, is called before each op.
type memStore struct {
	mu    sync.Mutex
	files map[string][]byte
	dirs  map[string]bool
	calls atomic.Int64
	fail  func(n int64) wire.Code
	delay func(n int64)
}

func newMemStore() *memStore { return &memStore{files: map[string][]byte{}, dirs: map[string]bool{}} }

func (m *memStore) enter(op, path string) error {
	n := m.calls.Add(1)
	if m.delay != nil {
		m.delay(n)
	}
	if m.fail != nil {
		if code := m.fail(n); code != wire.OK {
			return &client.Error{Code: client.Code(code), Op: op, Path: path, Message: op + " " + path + ": injected"}
		}
	}
	return nil
}

func (m *memStore) Put(ctx context.Context, path string, data []byte) error {
	if err := m.enter("put", path); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[path] = bytes.Clone(data)
	return nil
}

func (m *memStore) Get(ctx context.Context, path string) ([]byte, error) {
	if err := m.enter("get", path); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.files[path]
	if !ok {
		return nil, &client.Error{Code: client.CodeNotFound, Op: "get", Path: path}
	}
	return d, nil
}

func (m *memStore) List(ctx context.Context, path string) (int, error) {
	if err := m.enter("ls", path); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for p := range m.files {
		if strings.HasPrefix(p, path+"/") {
			n++
		}
	}
	return n, nil
}

func (m *memStore) Scan(ctx context.Context, dir string, limit int) (int, error) {
	n, err := m.List(ctx, dir)
	return min(n, limit), err
}

func (m *memStore) Stat(ctx context.Context, path string) error {
	_, err := m.Get(ctx, path)
	return err
}

func (m *memStore) MkdirAll(ctx context.Context, path string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dirs[path] = true
	return nil
}

func testConfig() Config {
	c := DefaultConfig()
	c.Duration, c.Ops, c.Clients, c.Files, c.Roots = 0, 2000, 8, 100, 4
	return c
}

func TestRunClosedLoopCountsEveryOp(t *testing.T) {
	for _, w := range []Workload{Put, Get, Mixed, List, Stat} {
		t.Run(string(w), func(t *testing.T) {
			s := newMemStore()
			cfg := testConfig()
			cfg.Workload = w
			res, err := Run(context.Background(), cfg, s, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Ops != cfg.Ops || res.Errors != 0 {
				t.Fatalf("ops %d errors %d, want %d and 0 (errors by code %v)", res.Ops, res.Errors, cfg.Ops, res.ErrorsByCode)
			}
			if len(s.dirs) != int(cfg.Roots) {
				t.Errorf("setup made %d root directories, want %d", len(s.dirs), cfg.Roots)
			}
			var sum int64
			for _, o := range res.PerOp {
				sum += o.Ops
			}
			if sum != res.Ops {
				t.Errorf("per-op ops add up to %d, want %d", sum, res.Ops)
			}
			if w == Mixed {
				g, p := res.PerOp["get"], res.PerOp["put"]
				if g == nil || p == nil || g.Ops < 5*p.Ops {
					t.Errorf("mixed 0.9: per op %+v %+v, want about 9 gets per put", g, p)
				}
			}
			var perSec int64
			for _, s := range res.PerSecond {
				perSec += s.Ops
			}
			if perSec != res.Ops {
				t.Errorf("per-second ops add up to %d, want %d", perSec, res.Ops)
			}
		})
	}
}

func TestRunPreloadIsNotMeasured(t *testing.T) {
	s := newMemStore()
	cfg := testConfig()
	cfg.Workload, cfg.Ops = Get, 10
	res, err := Run(context.Background(), cfg, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.files) != int(cfg.Files) {
		t.Errorf("preload made %d files, want %d", len(s.files), cfg.Files)
	}
	if res.Ops != 10 || res.Preload != cfg.Files {
		t.Errorf("ops %d preload %d, want 10 and %d", res.Ops, res.Preload, cfg.Files)
	}
}

func TestRunErrorsByCode(t *testing.T) {
	s := newMemStore()
	s.fail = func(n int64) wire.Code {
		switch n % 10 {
		case 0:
			return wire.Timeout
		case 5:
			return wire.Unavailable
		}
		return wire.OK
	}
	cfg := testConfig()
	res, err := Run(context.Background(), cfg, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops+res.Errors != cfg.Ops {
		t.Fatalf("ops %d + errors %d != %d", res.Ops, res.Errors, cfg.Ops)
	}
	if res.ErrorsByCode["TIMEOUT"] != 200 || res.ErrorsByCode["UNAVAILABLE"] != 200 {
		t.Fatalf("errors by code %v, want 200 TIMEOUT and 200 UNAVAILABLE", res.ErrorsByCode)
	}
	if !strings.Contains(res.ErrorSamples["TIMEOUT"], "injected") {
		t.Errorf("error sample %q", res.ErrorSamples["TIMEOUT"])
	}
	var buf bytes.Buffer
	res.WriteTable(&buf)
	if !strings.Contains(buf.String(), "TIMEOUT 200") {
		t.Errorf("table does not list errors by code:\n%s", buf.String())
	}
}

func TestRunUnsupportedWorkload(t *testing.T) {
	cfg := testConfig()
	cfg.Workload = Stream
	_, err := Run(context.Background(), cfg, newMemStore(), nil)
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("stream: %v, want ErrNotSupported", err)
	}
	cfg.Workload = Append // memStore has no Append
	_, err = Run(context.Background(), cfg, newMemStore(), nil)
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "not supported by this SDK yet") {
		t.Fatalf("append: %v, want ErrNotSupported", err)
	}
}

// TestOpenLoopCountsFromIntendedTime: one 200 ms stall with one client at
// 1000/s must show as latency on the ~200 operations that were due during
// the stall (coordinated omission corrected), while a closed loop sees one
// slow operation only.
func TestOpenLoopCountsFromIntendedTime(t *testing.T) {
	stall := func(n int64) {
		if n == 50 {
			time.Sleep(200 * time.Millisecond) // the server's stall being simulated, not synchronisation
		}
	}
	run := func(rate float64) *Result {
		s := newMemStore()
		s.delay = stall
		cfg := testConfig()
		cfg.Clients, cfg.Ops, cfg.Rate = 1, 400, rate
		res, err := Run(context.Background(), cfg, s, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	open := run(1000)
	closed := run(0)
	// About 200 of the 400 operations were due during the stall, waiting
	// from 200 ms down to 0: p90 is about 160 ms.
	if open.Latency.P90 < 50 {
		t.Errorf("open loop p90 %.3f ms: the stall's queue is not counted (want >= 50 ms)", open.Latency.P90)
	}
	if closed.Latency.P90 > 20 {
		t.Errorf("closed loop p90 %.3f ms, want only one slow op", closed.Latency.P90)
	}
	if open.Mode != "open" || open.Rate != 1000 || closed.Mode != "closed" {
		t.Errorf("modes %q %v %q", open.Mode, open.Rate, closed.Mode)
	}
	if open.DurationS < 0.39 {
		t.Errorf("open loop of 400 ops at 1000/s took %.3fs, want >= 0.4s", open.DurationS)
	}
}

func TestRunStopsAtDuration(t *testing.T) {
	cfg := testConfig()
	cfg.Ops, cfg.Duration, cfg.Rate = 0, 300*time.Millisecond, 500
	res, err := Run(context.Background(), cfg, newMemStore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// 300 ms at 500/s: operations 0..149 are due before the end.
	if res.Ops != 150 {
		t.Errorf("ops %d, want 150", res.Ops)
	}
	if len(res.PerSecond) != 1 {
		t.Errorf("per_second has %d entries for a 0.3s run, want 1", len(res.PerSecond))
	}
}

// TestJSONShape checks the fields the issue promises in -o json.
func TestJSONShape(t *testing.T) {
	cfg := testConfig()
	res, err := Run(context.Background(), cfg, newMemStore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"workload", "clients", "ops", "errors", "ops_per_sec", "latency_ms", "per_second", "errors_by_code", "per_op"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q:\n%s", k, buf.String())
		}
	}
	lat, _ := m["latency_ms"].(map[string]any)
	for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
		v, ok := lat[k].(float64)
		if !ok || v < 0 {
			t.Errorf("latency_ms.%s = %v", k, lat[k])
		}
	}
	if lat["p50"].(float64) > lat["p99"].(float64) || lat["p99"].(float64) > lat["max"].(float64) {
		t.Errorf("percentiles out of order: %v", lat)
	}
	if ps, _ := m["per_second"].([]any); len(ps) == 0 {
		t.Errorf("per_second empty")
	}
	back, err := ReadResult(&buf)
	if err != nil || back.Ops != res.Ops || back.Latency != res.Latency {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	if _, err := ReadResult(strings.NewReader(`{"ops": 1}`)); err == nil {
		t.Error("ReadResult accepted JSON without a workload")
	}
}

func TestRecorderPercentiles(t *testing.T) {
	start := time.Now()
	r := newRecorder(start)
	for i := 1; i <= 1000; i++ { // 1..1000 ms
		r.record("put", start, start.Add(time.Duration(i)*time.Millisecond), 1, nil)
	}
	cfg := testConfig()
	res, err := r.result(&cfg, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	l := res.Latency
	near := func(got, want float64) bool { return math.Abs(got-want) <= want*0.002+0.001 }
	if !near(l.P50, 500) || !near(l.P90, 900) || !near(l.P99, 990) || !near(l.P999, 999) || !near(l.Max, 1000) {
		t.Errorf("latency %+v, want p50 500 p90 900 p99 990 p999 999 max 1000", l)
	}
	if res.OpsPerSec != 1000 {
		t.Errorf("ops/s %v, want 1000", res.OpsPerSec)
	}
	if len(res.PerOp["put"].Percentiles) != len(percentilePoints) {
		t.Errorf("percentile points %d", len(res.PerOp["put"].Percentiles))
	}
}

func TestProgressSnapshots(t *testing.T) {
	var mu sync.Mutex
	var snaps []Snapshot
	cfg := testConfig()
	cfg.Ops = 100
	_, err := Run(context.Background(), cfg, newMemStore(), func(s Snapshot) {
		mu.Lock()
		snaps = append(snaps, s)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) == 0 || snaps[len(snaps)-1].Ops != 100 {
		t.Fatalf("snapshots %+v, want a last one with 100 ops", snaps)
	}
}

// Short names for the report test's failure injection.
type wireCode = wire.Code

const (
	codeOK      = wire.OK
	codeTimeout = wire.Timeout
)

// fullStore adds Append, Upload and Download to memStore.
type fullStore struct{ *memStore }

func (f fullStore) Append(ctx context.Context, path string, data []byte) error {
	if err := f.enter("append", path); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[path] = append(f.files[path], data...)
	return nil
}

func (f fullStore) Upload(ctx context.Context, path string, r io.Reader) error {
	d, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return f.Put(ctx, path, d)
}

func (f fullStore) Download(ctx context.Context, path string, w io.Writer) error {
	d, err := f.Get(ctx, path)
	if err != nil {
		return err
	}
	_, err = w.Write(d)
	return err
}

func TestRunAppendAndStream(t *testing.T) {
	s := fullStore{newMemStore()}
	cfg := testConfig()
	cfg.Workload, cfg.Ops = Append, 500
	res, err := Run(context.Background(), cfg, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, d := range s.files {
		total += int64(len(d))
	}
	if res.PerOp["append"] == nil || res.PerOp["append"].Ops != 500 || total != 500*1024 {
		t.Fatalf("append: per op %+v, %d bytes stored; want 500 appends of 1 KiB", res.PerOp, total)
	}

	s = fullStore{newMemStore()}
	cfg = testConfig()
	cfg.Workload, cfg.Ops, cfg.Clients, cfg.Size = Stream, 40, 2, SizeDist{Min: 3 << 20, Max: 3 << 20}
	res, err = Run(context.Background(), cfg, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	up, down := res.PerOp["upload"], res.PerOp["download"]
	// Each worker alternates upload and download; the 40 tickets are
	// shared, so a worker may end on an upload.
	if up == nil || down == nil || up.Ops+down.Ops != 40 || up.Ops-down.Ops > int64(cfg.Clients) || down.Ops > up.Ops ||
		up.Bytes != up.Ops*3<<20 || down.Bytes != down.Ops*3<<20 {
		t.Fatalf("stream: upload %d ops %d bytes, download %d ops %d bytes; want alternating 3 MiB transfers",
			up.Ops, up.Bytes, down.Ops, down.Bytes)
	}
	for p, d := range s.files {
		if bytes.Equal(d[:1<<20], d[1<<20:2<<20]) {
			t.Fatalf("%s: successive 1 MiB chunks are equal (content-addressed storage would dedupe them)", p)
		}
	}
}

// TestRunDoesNotWaitForHungCalls: a Store call that ignores its context
// must not hang the run; it is counted as a TIMEOUT.
func TestRunDoesNotWaitForHungCalls(t *testing.T) {
	old := hangGrace
	hangGrace = 50 * time.Millisecond
	defer func() { hangGrace = old }()
	release := make(chan struct{})
	defer close(release)
	s := newMemStore()
	s.delay = func(n int64) {
		if n == 3 {
			<-release // ignores ctx, like a deadlocked SDK call
		}
	}
	cfg := testConfig()
	cfg.Ops, cfg.Duration, cfg.Timeout, cfg.Clients = 0, 200*time.Millisecond, 100*time.Millisecond, 2
	res, err := Run(context.Background(), cfg, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ErrorsByCode["TIMEOUT"] != 1 || !strings.Contains(res.ErrorSamples["TIMEOUT"], "ignored its context") {
		t.Fatalf("errors %v %v, want one hung TIMEOUT", res.ErrorsByCode, res.ErrorSamples)
	}
	if res.Ops == 0 {
		t.Error("the other worker's operations were not counted")
	}
}
