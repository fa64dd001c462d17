package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
)

// sample is one recorded operation for the merge tests.
type sample struct {
	op   string
	sec  int           // second of the run it ends in
	lat  time.Duration // latency
	code client.Code   // CodeOK: success
}

// samples returns a deterministic varied set: several kinds, seconds,
// latencies over four decades, failures of two codes.
func samples(seed int) []sample {
	var out []sample
	ops := []string{"read", "update", "insert"}
	for i := range 3000 {
		x := i*7919 + seed*104729
		s := sample{op: ops[x%3], sec: x % 4, lat: time.Duration(50+x%97_000) * time.Microsecond}
		switch x % 53 {
		case 0:
			s.code = client.CodeTimeout
		case 1:
			s.code = client.CodeNotFound
		}
		out = append(out, s)
	}
	return out
}

// recordAll records ss into a recorder started at start and returns the
// Result of a 4 s run of clients workers.
func recordAll(t *testing.T, start time.Time, clients int, ss ...[]sample) *Result {
	t.Helper()
	r := newRecorder(start)
	for _, set := range ss {
		for _, s := range set {
			ended := start.Add(time.Duration(s.sec)*time.Second + s.lat)
			var err error
			if s.code != client.CodeOK {
				err = &client.Error{Code: s.code, Op: s.op, Message: s.op + ": " + s.code.String()}
			}
			r.record(s.op, ended.Add(-s.lat), ended, 100, err)
		}
	}
	cfg := testConfig()
	cfg.Workload, cfg.Clients, cfg.Duration, cfg.Ops = YCSBA, clients, 4*time.Second, 0
	res, err := r.result(&cfg, 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// jsonRoundTrip writes res as JSON and reads it back, as merge does files.
func jsonRoundTrip(t *testing.T, res *Result) *Result {
	t.Helper()
	var b bytes.Buffer
	if err := res.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	back, err := ReadResult(&b)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// TestMergeEqualsOneRun: merging the JSON results of two runs gives what
// one run recording both sample sets gives — every count, percentile,
// per-second figure, error count and raw histogram.
func TestMergeEqualsOneRun(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, b := samples(1), samples(2)
	ra := jsonRoundTrip(t, recordAll(t, start, 4, a))
	rb := jsonRoundTrip(t, recordAll(t, start, 4, b))
	ra.Host, rb.Host = "h1", "h2"
	one := recordAll(t, start, 8, a, b)
	one.Host = "h1,h2"

	m, err := Merge(ra, rb)
	if err != nil {
		t.Fatal(err)
	}
	if m.Merged != 2 {
		t.Errorf("merged %d, want 2", m.Merged)
	}
	flat := *m
	flat.Merged = 0
	got, _ := json.MarshalIndent(&flat, "", " ")
	want, _ := json.MarshalIndent(one, "", " ")
	if !bytes.Equal(got, want) {
		t.Fatalf("merge differs from one run over both sets:\n%s", firstDiff(string(got), string(want)))
	}
	if one.Errors == 0 || one.PerOp["read"].ErrorsByCode["TIMEOUT"] == 0 || one.PerOp["read"].ErrorLatency.P50 == 0 {
		t.Fatalf("the samples exercise no failures: %+v", one.PerOp["read"])
	}
	// Merging is associative: a merged result merges again.
	m3, err := Merge(jsonRoundTrip(t, m), jsonRoundTrip(t, recordAll(t, start, 4, samples(3))))
	if err != nil || m3.Merged != 3 || m3.Ops+m3.Errors != 9000 {
		t.Fatalf("merge of a merge: %v, merged %d, ops+errors %d", err, m3.Merged, m3.Ops+m3.Errors)
	}
}

// firstDiff shows the first differing line of two texts.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return "line " + itoa(int64(i+1)) + ":\n got " + al[i] + "\nwant " + bl[i]
		}
	}
	return "lengths differ"
}

func TestMergeRefuses(t *testing.T) {
	start := time.Now()
	ra := recordAll(t, start, 1, samples(1))
	other := recordAll(t, start, 1, samples(2))
	other.Workload = "ycsb-b"
	old := recordAll(t, start, 1, samples(2))
	old.Hist = ""
	bad := recordAll(t, start, 1, samples(2))
	bad.PerOp["read"].Hist = "not base64!"
	for name, tc := range map[string]struct {
		rs   []*Result
		want string
	}{
		"none":           {nil, "no results"},
		"other workload": {[]*Result{ra, other}, "result 2 is ycsb-b"},
		"no histograms":  {[]*Result{ra, old}, "result 2 has no raw histograms"},
		"bad histogram":  {[]*Result{ra, bad}, "result 2 read: raw histogram"},
	} {
		_, err := Merge(tc.rs...)
		if !errors.Is(err, ErrNotMergeable) && !strings.Contains(fmtErr(err), tc.want) || !strings.Contains(fmtErr(err), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
}

func fmtErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestFailedOpsLatencyRecorded: a failed operation's latency goes to its
// kind's error histogram and its code is counted per kind; the success
// figures do not see it.
func TestFailedOpsLatencyRecorded(t *testing.T) {
	start := time.Now()
	r := newRecorder(start)
	r.record("get", start, start.Add(2*time.Millisecond), 10, nil)
	for range 3 {
		r.record("get", start, start.Add(900*time.Millisecond), 0, &client.Error{Code: client.CodeTimeout, Op: "get"})
	}
	cfg := testConfig()
	res, err := r.result(&cfg, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	g := res.PerOp["get"]
	if g.Ops != 1 || g.Errors != 3 || g.ErrorsByCode["TIMEOUT"] != 3 {
		t.Fatalf("get: %+v", g)
	}
	if g.ErrorLatency.P50 < 899 || g.ErrorLatency.P50 > 901 {
		t.Errorf("failed gets' p50 %.3f ms, want 900", g.ErrorLatency.P50)
	}
	if g.Latency.Max > 2.01 || res.Latency.Max > 2.01 {
		t.Errorf("failed latency leaked into the success figures: %+v / %+v", g.Latency, res.Latency)
	}
}
