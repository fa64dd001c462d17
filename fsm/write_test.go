package fsm

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/wire"
	"github.com/cockroachdb/pebble/v2"
)

// leaderEntry is the log entry the leader, whose state machine is lead,
// proposes for c.
func leaderEntry(t *testing.T, lead *node, c Command) []byte {
	t.Helper()
	if c.Time == 0 {
		c.Time = 1_700_000_000_000_000_000 + int64(lead.index+1)
	}
	if err := lead.fsm.PrepareWrite(&c); err != nil {
		t.Fatal(err)
	}
	p, err := EncodeCommand(&c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAppendOverCorruptPartialBlockOnOneReplica: two replicas hold the
// same file, whose last block is partial; one replica's copy of that
// block's chunk is corrupt. The same APPEND entry must leave both with the
// same state: the bytes the append keeps come from the entry, not from
// each replica's disk.
func TestAppendOverCorruptPartialBlockOnOneReplica(t *testing.T) {
	a, b := newNode(t, wholeRing), newNode(t, wholeRing)
	for _, n := range []*node{a, b} {
		n.must(putTiny("/r/f", "abc")) // 3 bytes, block size 4: block 0 is partial
	}
	h := ChunkOf([]byte("abc"))
	if err := b.db.Set(chunkKey(h), []byte("abX"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	entry := leaderEntry(t, a, appendTo("/r/f", "d"))
	ra, rb := a.raw(entry), b.raw(entry)
	if ra.Code != wire.OK || rb.Code != wire.OK {
		t.Fatalf("replica A: %v %q; replica B: %v %q; want both OK", ra.Code, ra.Message, rb.Code, rb.Message)
	}
	if *ra.Stat != *rb.Stat {
		t.Fatalf("replica A: %+v; replica B: %+v", *ra.Stat, *rb.Stat)
	}
	sa, sb := a.stateSum(), b.stateSum()
	if sa != sb {
		t.Fatalf("state after the same entry: replica A %s, replica B %s", sa, sb)
	}
	if got := b.content("/r/f"); got != "abcd" {
		t.Fatalf("replica B reads %q, want %q", got, "abcd")
	}
}

// TestUnpreparedAppendOverCorruptBlock: an entry in the unprepared form of
// older logs still reads the kept bytes in apply; over a corrupt chunk it
// fails INTERNAL (the replica then stops, splitGate) and writes no block.
func TestUnpreparedAppendOverCorruptBlock(t *testing.T) {
	n := newNode(t, wholeRing)
	n.must(putTiny("/r/f", "abc"))
	h := ChunkOf([]byte("abc"))
	if err := n.db.Set(chunkKey(h), []byte("abX"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	c := appendTo("/r/f", "d")
	c.Time = 1_700_000_000_000_000_000
	p, err := EncodeCommand(&c)
	if err != nil {
		t.Fatal(err)
	}
	b := n.db.NewIndexedBatch()
	defer b.Close()
	res := n.fsm.Apply(b, n.index+1, p)
	if res.Code != wire.Internal || !strings.Contains(res.Message, "failed verification") {
		t.Fatalf("unprepared APPEND over a corrupt block: %v %q, want INTERNAL", res.Code, res.Message)
	}
	if b.Count() != 0 {
		t.Fatalf("the failed APPEND left %d writes in the batch", b.Count())
	}
}

// TestPreparedWriteOnChangedFile: a prepared write whose file changed
// between the leader's read and the apply is answered Retry, applies
// nothing and records nothing for its session; prepared again, it applies
// once, and a retry of the same (session, seq) gets the stored result.
func TestPreparedWriteOnChangedFile(t *testing.T) {
	n := newNode(t, wholeRing)
	n.must(putTiny("/r/f", "abc"))
	stale := appendTo("/r/f", "X")
	stale.Session, stale.Seq = 9, 1
	if err := n.fsm.PrepareWrite(&stale); err != nil {
		t.Fatal(err)
	}
	n.must(appendTo("/r/f", "de")) // changes the file after the read
	before := n.content("/r/f")
	res := n.do(stale)
	if !res.Retry || res.Code != wire.Unavailable {
		t.Fatalf("prepared APPEND on a changed file: %v %q retry=%v, want a retryable UNAVAILABLE", res.Code, res.Message, res.Retry)
	}
	if got := n.content("/r/f"); got != before {
		t.Fatalf("after the refused APPEND the file is %q, want %q", got, before)
	}
	again := appendTo("/r/f", "X")
	again.Session, again.Seq = 9, 1
	first := n.must(again)
	if got := n.content("/r/f"); got != "abcdeX" {
		t.Fatalf("after the APPEND prepared again: %q", got)
	}
	dup := n.must(again)
	if *dup.Stat != *first.Stat || n.content("/r/f") != "abcdeX" {
		t.Fatalf("retry of the same seq: %+v (first %+v), file %q", *dup.Stat, *first.Stat, n.content("/r/f"))
	}
	n.leaks()
}

// TestSparseWriteApplyIsCheap: a WRITE far past the end of a file costs
// the blocks it writes, not the blocks of the hole before them, and so
// does every later write to that file. The cost is counted (block records
// and checksum terms the apply touched), not timed; the time is logged.
func TestSparseWriteApplyIsCheap(t *testing.T) {
	n := newNode(t, wholeRing)
	for i, off := range []int64{1 << 46, 1<<46 + 5, 7, 1<<46 + DefaultChunkSize} {
		start := time.Now()
		res := n.must(Command{Op: wire.OpWrite, Path: "/r/sparse", Offset: off, Data: []byte("x"), Flags: parents})
		d := time.Since(start)
		t.Logf("write %d (1 byte at offset %d): applied in %v, cost %d", i, off, d, res.cost)
		if res.cost > 8 {
			t.Errorf("write %d (1 byte at offset %d) touched %d block records and checksum terms, want at most 8", i, off, res.cost)
		}
	}
	if st, err := n.fsm.Stat("/r/sparse"); err != nil || st.Size != 1<<46+DefaultChunkSize+1 {
		t.Fatalf("Stat: %+v, %v", st, err)
	}
}

// stateSum is the node's state checksum (what STATUS reports).
func (n *node) stateSum() string {
	n.t.Helper()
	sum, err := hashState(n.db, false)
	if err != nil {
		n.t.Fatal(err)
	}
	return sum
}

// TestTreeOpLimit: RENAME and recursive REMOVE of a directory act on its
// whole subtree in one entry; above maxTreeEntries entries they are
// refused TOO_LARGE with a message naming the limit, and change nothing.
func TestTreeOpLimit(t *testing.T) {
	n := newNode(t, wholeRing)
	n.must(mkdir("/r/big", parents))
	// Fill the directory in a few batches (one entry per command).
	for done := 0; done < maxTreeEntries; {
		n.index++
		b := n.db.NewIndexedBatch()
		for k := 0; k < 1000 && done < maxTreeEntries; k++ {
			c := Command{Op: wire.OpPut, Path: fmt.Sprintf("/r/big/f%05d", done), Time: 1_700_000_000_000_000_000}
			p, _ := EncodeCommand(&c)
			if res := n.fsm.Apply(b, n.index, p); res.Code != wire.OK {
				t.Fatalf("PUT %s: %v %s", c.Path, res.Code, res.Message)
			}
			done++
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	before := n.stateSum()
	limit := fmt.Sprint(maxTreeEntries)
	for _, c := range []Command{remove("/r/big", wire.FlagRecursive), rename("/r/big", "/r/moved", 0)} {
		res := n.do(c)
		if res.Code != wire.TooLarge || !strings.Contains(res.Message, limit) {
			t.Errorf("%v of a tree of %d entries: %v %q, want TOO_LARGE naming the limit %s", c.Op, maxTreeEntries+1, res.Code, res.Message, limit)
		}
	}
	if after := n.stateSum(); after != before {
		t.Errorf("a refused tree op changed the state")
	}
	// One entry fewer: at the limit, both work.
	n.must(remove("/r/big/f00000", 0))
	n.must(rename("/r/big", "/r/moved", 0))
	n.must(remove("/r/moved", wire.FlagRecursive))
	if ok, _ := n.fsm.Exists("/r/moved"); ok {
		t.Fatalf("/r/moved still exists")
	}
}
