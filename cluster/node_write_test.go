package cluster

import (
	"bytes"
	"fmt"
	"github.com/cleavefs/cleave/fsm"
	"testing"
	"time"

	"github.com/cleavefs/cleave/wire"
	"github.com/cockroachdb/pebble/v2"
)

// TestAppendRepairsCorruptBlockOnLeader: the leader's copy of the chunk of
// a file's partial last block is corrupt. An APPEND must still succeed with
// the right bytes (the leader repairs the chunk from a peer before it
// proposes), no replica stops, and all end with the same state.
func TestAppendRepairsCorruptBlockOnLeader(t *testing.T) {
	mn := newMemberNet(t, 3)
	for id := uint64(1); id <= 3; id++ {
		cfg := mn.cfgs[id]
		cfg.InlineSize = -1 // the file's bytes in a chunk, not in its entry
		mn.cfgs[id] = cfg
		mn.start(id)
	}
	lead := mn.leader()
	if resp := mn.call(lead, &wire.Request{Op: wire.OpPut, Path: "/r/f", Data: []byte("abc"), Flags: wire.FlagParents}); resp.Code != wire.OK {
		t.Fatalf("PUT: %v", resp.Err())
	}
	mn.waitSameState(1, 2, 3)
	if err := mn.nodes[lead].db.Set(chunkKey(fsm.ChunkOf([]byte("abc"))), []byte("abX"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	resp := mn.call(lead, &wire.Request{Op: wire.OpAppend, Path: "/r/f", Data: []byte("d"), Session: 7, Seq: 1})
	if resp.Code != wire.OK || resp.Stat.Size != 4 {
		t.Fatalf("APPEND over the leader's corrupt block: %v %+v, want OK, size 4", resp.Err(), resp.Stat)
	}
	for id, n := range mn.nodes {
		if err := n.FailErr(); err != nil {
			t.Fatalf("node %d stopped: %v", id, err)
		}
	}
	mn.waitSameState(1, 2, 3)
	for id := range mn.nodes {
		got := mn.call(id, &wire.Request{Op: wire.OpGet, Path: "/r/f", Flags: wire.FlagStale})
		if got.Code != wire.OK || !bytes.Equal(got.Data, []byte("abcd")) {
			t.Fatalf("GET on node %d: %v %q, want abcd", id, got.Err(), got.Data)
		}
	}
}

// TestSparseWriteDoesNotStallCluster: a 1-byte WRITE at offset 2^46 and a
// PUT of another file sent at the same time. Neither waits for long (5 s
// on a busy machine; writing every block up to 2^46 would take hours): the
// sparse write's apply costs the one block it writes, so whichever is
// applied second is not held up behind the other.
func TestSparseWriteDoesNotStallCluster(t *testing.T) {
	mn := newMemberNet(t, 3)
	for id := uint64(1); id <= 3; id++ {
		mn.start(id)
	}
	if resp := mn.callLeader(0, &wire.Request{Op: wire.OpMkdir, Path: "/r"}); resp.Code != wire.OK {
		t.Fatalf("MKDIR: %v", resp.Err())
	}
	type timed struct {
		resp *wire.Response
		d    time.Duration
	}
	sparse := make(chan timed, 1)
	start := time.Now()
	go func() {
		resp := mn.callLeader(0, &wire.Request{Op: wire.OpWrite, Path: "/r/sparse", Offset: 1 << 46, Data: []byte("x")})
		sparse <- timed{resp, time.Since(start)}
	}()
	if resp := mn.callLeader(0, &wire.Request{Op: wire.OpPut, Path: "/r/other", Data: []byte("y")}); resp.Code != wire.OK {
		t.Fatalf("PUT: %v", resp.Err())
	}
	put := time.Since(start)
	s := <-sparse
	if s.resp.Code != wire.OK || s.resp.Stat.Size != 1<<46+1 {
		t.Fatalf("sparse WRITE: %v %+v", s.resp.Err(), s.resp.Stat)
	}
	t.Logf("WRITE at 2^46 answered after %v, the PUT sent with it after %v", s.d, put)
	if d := max(s.d, put); d > 5*time.Second {
		t.Errorf("WRITE at 2^46 and a PUT sent with it: the slower took %v", d)
	}
}

// TestWriteEntryFitsFrame: a WRITE whose data nearly fills a frame, at an
// offset near the end of a block, would carry the kept bytes of two partial blocks
// too; the leader refuses it TOO_LARGE instead of proposing an entry no
// follower can receive.
func TestWriteEntryFitsFrame(t *testing.T) {
	mn := newMemberNet(t, 3)
	for id := uint64(1); id <= 3; id++ {
		mn.start(id)
	}
	lead := mn.leader()
	if resp := mn.call(lead, &wire.Request{Op: wire.OpPut, Path: "/r/f", Data: bytes.Repeat([]byte("a"), 3*fsm.DefaultChunkSize), Flags: wire.FlagParents}); resp.Code != wire.OK {
		t.Fatalf("PUT: %v", resp.Err())
	}
	big := bytes.Repeat([]byte("b"), wire.DefaultMaxFrame-frameSlack-4096)
	resp := mn.call(lead, &wire.Request{Op: wire.OpWrite, Path: "/r/f", Offset: fsm.DefaultChunkSize - 10, Data: big})
	if resp.Code != wire.TooLarge {
		t.Fatalf("WRITE of %d bytes 10 bytes before a block end: %v, want TOO_LARGE", len(big), resp.Err())
	}
	if resp := mn.call(lead, &wire.Request{Op: wire.OpWrite, Path: "/r/f", Offset: fsm.DefaultChunkSize - 10, Data: big[:fsm.DefaultChunkSize]}); resp.Code != wire.OK {
		t.Fatalf("WRITE of 1 MiB: %v", resp.Err())
	}
	mn.waitSameState(1, 2, 3)
}

// TestWriteWithoutQuorumAnswersAtDeadline: a write the leader cannot
// commit (both followers are down) is never answered by its replica; the
// node answers TIMEOUT (outcome unknown) when the request's deadline
// ends, and serves the next request as before.
func TestWriteWithoutQuorumAnswersAtDeadline(t *testing.T) {
	mn, lead, _, _ := startThree(t, false)
	for _, id := range others3(lead) {
		mn.stop(id)
	}
	const deadline = 300 * time.Millisecond
	for i := range 3 {
		start := time.Now()
		resp := mn.call(lead, &wire.Request{Op: wire.OpPut, Path: fmt.Sprintf("/q/f%d", i), Data: []byte("x"), Flags: wire.FlagParents, TimeoutMs: uint32(deadline.Milliseconds())})
		took := time.Since(start)
		if resp.Code != wire.Timeout {
			t.Fatalf("put %d without a quorum: %v, want TIMEOUT", i, resp.Err())
		}
		if took < deadline {
			t.Fatalf("put %d answered after %v, before its %v deadline", i, took, deadline)
		}
	}
}

// TestReadWithoutQuorumAnswersAtDeadline: a linearizable read on a leader
// whose followers are down waits for a ReadIndex round that cannot
// return; the node answers TIMEOUT when the request's deadline ends, and
// a stale read is still served.
func TestReadWithoutQuorumAnswersAtDeadline(t *testing.T) {
	mn, lead, _, _ := startThree(t, false)
	if resp := mn.call(lead, &wire.Request{Op: wire.OpPut, Path: "/q/f", Data: []byte("x"), Flags: wire.FlagParents}); resp.Code != wire.OK {
		t.Fatalf("put: %v", resp.Err())
	}
	for _, id := range others3(lead) {
		mn.stop(id)
	}
	const deadline = 300 * time.Millisecond
	for _, op := range []wire.Op{wire.OpGet, wire.OpStat, wire.OpExists} {
		start := time.Now()
		resp := mn.call(lead, &wire.Request{Op: op, Path: "/q/f", TimeoutMs: uint32(deadline.Milliseconds())})
		took := time.Since(start)
		if resp.Code != wire.Timeout {
			t.Fatalf("%v without a quorum: %v, want TIMEOUT", op, resp.Err())
		}
		if took < deadline {
			t.Fatalf("%v answered after %v, before its %v deadline", op, took, deadline)
		}
	}
	if resp := mn.call(lead, &wire.Request{Op: wire.OpGet, Path: "/q/f", Flags: wire.FlagStale}); resp.Code != wire.OK || string(resp.Data) != "x" {
		t.Fatalf("stale get: %v %q", resp.Err(), resp.Data)
	}
}
