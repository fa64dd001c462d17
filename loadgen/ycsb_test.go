package loadgen

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestYCSBMixes: each YCSB workload loads its records, then issues its
// operations in YCSB's proportions, without errors: reads of ycsb-d only
// choose acknowledged files, and its inserts are new files.
func TestYCSBMixes(t *testing.T) {
	for _, tc := range []struct {
		w    Workload
		want map[string]float64
	}{
		{YCSBA, map[string]float64{"read": 0.5, "update": 0.5}},
		{YCSBB, map[string]float64{"read": 0.95, "update": 0.05}},
		{YCSBC, map[string]float64{"read": 1}},
		{YCSBD, map[string]float64{"read": 0.95, "insert": 0.05}},
		{YCSBE, map[string]float64{"scan": 0.95, "insert": 0.05}},
		{YCSBF, map[string]float64{"read": 0.5, "read-modify-write": 0.5}},
	} {
		t.Run(string(tc.w), func(t *testing.T) {
			s := newMemStore()
			cfg := testConfig()
			cfg.Workload, cfg.Ops = tc.w, 4000
			res, err := Run(context.Background(), cfg, s, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Errors != 0 || res.Ops != cfg.Ops {
				t.Fatalf("ops %d errors %d %v %v", res.Ops, res.Errors, res.ErrorsByCode, res.ErrorSamples)
			}
			if len(res.PerOp) != len(tc.want) {
				t.Errorf("operations %v, want %v", keys(res.PerOp), tc.want)
			}
			for op, p := range tc.want {
				o := res.PerOp[op]
				if o == nil {
					t.Fatalf("no %s operations", op)
				}
				within(t, op, int(o.Ops), int(res.Ops), p, 0)
			}
			files := int64(len(s.files))
			inserts := int64(0)
			if o := res.PerOp["insert"]; o != nil {
				inserts = o.Ops
			}
			if files != cfg.Files+inserts {
				t.Errorf("%d files, want %d records + %d inserts", files, cfg.Files, inserts)
			}
			if want := string(ycsbMixes[tc.w].dist); res.Dist != want || res.Theta != DefaultTheta {
				t.Errorf("dist %q theta %g, want %q %g", res.Dist, res.Theta, want, DefaultTheta)
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestYCSBNeedsScanner: ycsb-e on a store without limited listing is
// refused up front, naming what is missing.
func TestYCSBNeedsScanner(t *testing.T) {
	cfg := testConfig()
	cfg.Workload = YCSBE
	_, err := Run(context.Background(), cfg, noScan{newMemStore()}, nil)
	if err == nil || !strings.Contains(err.Error(), "ycsb-e") {
		t.Fatalf("err %v, want one naming ycsb-e", err)
	}
}

// noScan hides memStore's Scan.
type noScan struct{ Store }

// TestWarmupNotRecorded: operations begun during the warm-up run but are
// not recorded; --ops counts measured ones only, in closed and open loop.
func TestWarmupNotRecorded(t *testing.T) {
	for _, rate := range []float64{0, 2000} {
		s := newMemStore()
		var calls atomic.Int64
		s.delay = func(int64) { calls.Add(1); time.Sleep(200 * time.Microsecond) }
		cfg := testConfig()
		cfg.Workload, cfg.Ops, cfg.Clients, cfg.Rate, cfg.Warmup = Get, 300, 4, rate, 150*time.Millisecond
		res, err := Run(context.Background(), cfg, s, nil)
		if err != nil {
			t.Fatal(err)
		}
		preload := cfg.Files
		run := calls.Load() - preload // memStore's Put counts the preload too
		if res.Ops != 300 || res.Errors != 0 {
			t.Fatalf("rate %g: ops %d errors %d, want 300 measured", rate, res.Ops, res.Errors)
		}
		if run <= 300+10 {
			t.Errorf("rate %g: %d operations in all, so no warm-up ran", rate, run)
		}
		if res.WarmupS != 0.15 {
			t.Errorf("warmup_s %g", res.WarmupS)
		}
	}
}
