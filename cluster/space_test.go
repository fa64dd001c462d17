package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cleavefs/cleave/fsm"
	"github.com/cleavefs/cleave/internal/testvol"
	"github.com/cleavefs/cleave/wire"
)

// The default watermark is max(256 MiB, 2% of the volume); a positive
// MinFreeBytes replaces it and a negative one turns it off.
func TestWatermarkRule(t *testing.T) {
	for _, c := range []struct {
		min  int64
		size uint64
		want uint64
	}{
		{0, 1 << 30, 256 << 20},
		{0, 100 << 30, 2 << 30},
		{64 << 20, 100 << 30, 64 << 20},
		{-1, 100 << 30, 0},
	} {
		if got := watermarkFor(c.min, c.size); got != c.want {
			t.Errorf("watermarkFor(%d, %d) = %d, want %d", c.min, c.size, got, c.want)
		}
	}
}

// setWatermark makes n's guard use min from its next sample on, as if the
// node had been started with it.
func setWatermark(n *Node, min int64) {
	n.space.mu.Lock()
	n.space.min, n.space.at = min, time.Time{}
	n.space.mu.Unlock()
}

// Below the watermark the leader refuses every write that adds data with
// NO_SPACE, naming itself, its free bytes and the watermark, and applies
// nothing; reads and removes keep working; once the disk is above the
// watermark again, writes resume without a restart.
func TestWatermarkRefusesWritesThatAddData(t *testing.T) {
	mn := newMemberNet(t, 1)
	cfg := mn.cfgs[1]
	cfg.MinFreeBytes = -1
	mn.cfgs[1] = cfg
	mn.start(1)
	mn.leader()
	n := mn.nodes[1]
	for _, req := range []*wire.Request{
		{Op: wire.OpPut, Path: "/a/f", Data: []byte("hello"), Flags: wire.FlagParents},
		{Op: wire.OpMkdir, Path: "/a/d"},
	} {
		if resp := mn.call(1, req); resp.Code != wire.OK {
			t.Fatalf("%v %s: %v", req.Op, req.Path, resp.Err())
		}
	}
	setWatermark(n, 1<<62)
	for _, req := range []*wire.Request{
		{Op: wire.OpPut, Path: "/a/g", Data: []byte("x")},
		{Op: wire.OpMkdir, Path: "/a/e"},
		{Op: wire.OpWrite, Path: "/a/f", Data: []byte("x")},
		{Op: wire.OpAppend, Path: "/a/f", Data: []byte("x")},
		{Op: wire.OpCopy, Path: "/a/f", To: "/a/h"},
		{Op: wire.OpRename, Path: "/a/f", To: "/a/i"},
		{Op: wire.OpChunk, Path: "/a/j", Data: []byte("x")},
		{Op: wire.OpCommit, Path: "/a/j"},
	} {
		resp := mn.call(1, req)
		if resp.Code != wire.NoSpace || !strings.Contains(resp.Message, "node 1") || !strings.Contains(resp.Message, "watermark") {
			t.Errorf("%v %s below the watermark: %v, want NO_SPACE naming the node and the watermark", req.Op, req.Path, resp.Err())
		}
	}
	if resp := mn.call(1, &wire.Request{Op: wire.OpGet, Path: "/a/f"}); resp.Code != wire.OK || string(resp.Data) != "hello" {
		t.Errorf("GET /a/f below the watermark: %q, %v", resp.Data, resp.Err())
	}
	if resp := mn.call(1, &wire.Request{Op: wire.OpList, Path: "/a"}); resp.Code != wire.OK || len(resp.Entries) != 2 {
		t.Errorf("LIST /a below the watermark: %+v, %v; want f and d only", resp.Entries, resp.Err())
	}
	if resp := mn.call(1, &wire.Request{Op: wire.OpRemove, Path: "/a/d"}); resp.Code != wire.OK {
		t.Errorf("REMOVE /a/d below the watermark: %v", resp.Err())
	}
	st := mn.call(1, &wire.Request{Op: wire.OpStatus}).Node
	if st == nil || !slices.Contains(st.Conditions, wire.ConditionNoSpace) || st.FreeBytes == 0 || st.MinFreeBytes != 1<<62 {
		t.Fatalf("status below the watermark: %+v; want the no_space condition, free bytes and the watermark", st)
	}
	setWatermark(n, -1)
	if resp := mn.call(1, &wire.Request{Op: wire.OpPut, Path: "/a/g", Data: []byte("x")}); resp.Code != wire.OK {
		t.Errorf("PUT once above the watermark: %v", resp.Err())
	}
	if st := mn.call(1, &wire.Request{Op: wire.OpStatus}).Node; len(st.Conditions) != 0 {
		t.Errorf("conditions above the watermark: %v", st.Conditions)
	}
}

// A background error of the storage engine shows in the status (the error,
// its time and the storage_error condition) and in the metrics, as does
// the free space.
func TestStorageErrorInStatusAndMetrics(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := fsm.NewStorageHealth(log)
	o := &pebble.Options{}
	h.Listen(o)
	g := newSpaceGuard(t.TempDir(), 1<<62, log)
	var ns wire.NodeStatus
	reportStorage(&ns, g, h)
	if ns.StorageError != "" || slices.Contains(ns.Conditions, wire.ConditionStorageError) {
		t.Fatalf("status before any error: %q %v", ns.StorageError, ns.Conditions)
	}
	o.EventListener.BackgroundError(errors.New("flush: no space left on device"))
	o.EventListener.WriteStallBegin(pebble.WriteStallBeginInfo{Reason: "memtable count limit reached"})
	ns = wire.NodeStatus{}
	reportStorage(&ns, g, h)
	if !strings.Contains(ns.StorageError, "no space left") || ns.StorageErrorAt == "" {
		t.Errorf("status after a background error: %q at %q", ns.StorageError, ns.StorageErrorAt)
	}
	for _, c := range []string{wire.ConditionNoSpace, wire.ConditionStorageError, wire.ConditionWriteStall} {
		if !slices.Contains(ns.Conditions, c) {
			t.Errorf("conditions %v lack %s", ns.Conditions, c)
		}
	}
	reg := prometheus.NewRegistry()
	registerStorageMetrics(reg, g, h)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	for name, want := range map[string]float64{
		"cleave_node_storage_background_errors_total": 1,
		"cleave_node_storage_write_stalls_total":      1,
		"cleave_node_no_space":                        1,
		"cleave_node_min_free_bytes":                  1 << 62,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v (all: %v)", name, got[name], want, got)
		}
	}
	if got["cleave_node_free_bytes"] == 0 {
		t.Errorf("cleave_node_free_bytes is 0")
	}
}

// The storage is stuck once writes have stalled for storageStuckAfter while
// background errors keep coming; a stall alone, or errors that stopped
// before it, are not.
func TestStorageStuck(t *testing.T) {
	now := time.Now()
	stalled := now.Add(-storageStuckAfter - time.Second)
	for _, c := range []struct {
		name  string
		r     fsm.StorageReport
		stuck bool
	}{
		{"healthy", fsm.StorageReport{}, false},
		{"stalled briefly with errors", fsm.StorageReport{Stalled: true, StalledSince: now.Add(-time.Second), LastError: "e", LastErrorAt: now}, false},
		{"stalled long, no error since", fsm.StorageReport{Stalled: true, StalledSince: stalled, LastError: "e", LastErrorAt: stalled.Add(-time.Second)}, false},
		{"stalled long, errors since", fsm.StorageReport{Stalled: true, StalledSince: stalled, LastError: "no space left on device", LastErrorAt: now}, true},
	} {
		why := storageStuck(c.r, now)
		if (why != "") != c.stuck || c.stuck && !strings.Contains(why, "no space left on device") {
			t.Errorf("%s: %q, want stuck %v", c.name, why, c.stuck)
		}
	}
}

// A volume filling faster than the guard's refresh period is sampled again
// once the writes admitted since its last sample could have taken half
// the headroom above the watermark: a burst of large writes is refused at
// the watermark instead of running on until the disk is full.
func TestWatermarkHoldsUnderAFastBurst(t *testing.T) {
	vol := testvol.Tmpfs(t, 64<<20)
	g := newSpaceGuard(vol, 32<<20, slog.New(slog.NewTextHandler(io.Discard, nil)))
	const size = 1 << 20
	for i := 0; ; i++ {
		resp := g.refuse(wire.OpPut, size, 1)
		if resp != nil {
			if resp.Code != wire.NoSpace {
				t.Fatalf("write %d: %v, want NO_SPACE", i, resp.Err())
			}
			free, watermark, _ := g.sample()
			t.Logf("refused after %d writes of 1 MiB (2 MiB on disk each): %d bytes free, watermark %d", i, free, watermark)
			return
		}
		// Each admitted write lands on the volume twice, as a node's log
		// and state hold it.
		if err := os.WriteFile(filepath.Join(vol, fmt.Sprintf("w%03d", i)), make([]byte, 2*size), 0o644); err != nil {
			t.Fatalf("write %d was admitted, then could not land on the volume: %v", i, err)
		}
	}
}
