package cluster

import (
	"slices"
	"strings"
	"testing"
	"time"

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
