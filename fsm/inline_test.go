package fsm

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cleavefs/cleave/wire"
)

// putInline is putTiny with inline files up to the block size.
func putInline(p, data string) Command {
	c := putTiny(p, data)
	c.InlineSize = tiny
	return c
}

// chunkKeys counts the block records, chunks and chunk metadata records
// in n's DB.
func (n *node) chunkKeys() (blocks, chunks, metas int) {
	n.t.Helper()
	for _, kv := range n.dump() {
		switch k := kv[0]; {
		case bytes.HasPrefix(k, []byte(dataPrefix)):
			blocks++
		case bytes.HasPrefix(k, []byte(chunkPrefix)):
			chunks++
		case bytes.HasPrefix(k, []byte(metaPrefix)):
			metas++
		}
	}
	return blocks, chunks, metas
}

// storedEntry returns the entry of p as stored.
func (n *node) storedEntry(p string) *entry {
	n.t.Helper()
	e, err := getEntry(n.db, p)
	if err != nil || e == nil {
		n.t.Fatalf("entry of %s: %v, %v", p, e, err)
	}
	return e
}

// A PUT of at most InlineSize bytes keeps them in the entry: no block
// record, chunk or chunk metadata, and the Stat (checksum included) the
// block form gives. One byte more, and the file is stored in blocks.
func TestInlinePutKeepsContentsInEntry(t *testing.T) {
	inline, blocks := newNode(t, wholeRing), newNode(t, wholeRing)
	for _, data := range []string{"a", "abcd", "\x00\x00\x00"} {
		ri := inline.must(putInline("/r/f", data))
		rb := blocks.must(putTiny("/r/f", data))
		if *ri.Stat != *rb.Stat {
			t.Fatalf("%q: inline Stat %+v, block Stat %+v", data, *ri.Stat, *rb.Stat)
		}
		if got := inline.content("/r/f"); got != data {
			t.Fatalf("reads %q, want %q", got, data)
		}
		if e := inline.storedEntry("/r/f"); string(e.Data) != data {
			t.Fatalf("entry keeps %q, want %q", e.Data, data)
		}
		if b, c, m := inline.chunkKeys(); b+c+m != 0 {
			t.Fatalf("%q inline: %d block records, %d chunks, %d chunk metadata records; want none", data, b, c, m)
		}
		inline.leaks()
	}
	inline.must(putInline("/r/f", "abcde")) // over the block size
	if e := inline.storedEntry("/r/f"); len(e.Data) != 0 {
		t.Fatalf("a 5-byte file with 4-byte blocks is inline: %q", e.Data)
	}
	if b, c, m := inline.chunkKeys(); b != 2 || c != 2 || m != 2 {
		t.Fatalf("5 bytes in 4-byte blocks: %d block records, %d chunks, %d metadata records; want 2 each", b, c, m)
	}
	if got := inline.content("/r/f"); got != "abcde" {
		t.Fatalf("reads %q", got)
	}
	inline.must(putInline("/r/f", "xy")) // back inline: the chunks go
	if b, c, m := inline.chunkKeys(); b+c+m != 0 {
		t.Fatalf("after an inline overwrite: %d block records, %d chunks, %d metadata records; want none", b, c, m)
	}
	inline.leaks()
}

// A WRITE or APPEND to an inline file makes it a block file holding the
// right bytes, prepared as the leader proposes it or in the unprepared
// form of older entries, and the chunk accounting stays exact.
func TestInlineFileWrittenBecomesBlocks(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  Command
		want string
	}{
		{"write inside", write("/r/f", 1, "X"), "aXc"},
		{"write past the end", write("/r/f", 6, "Z"), "abc\x00\x00\x00Z"},
		{"append", appendTo("/r/f", "defgh"), "abcdefgh"},
		{"append within the block", appendTo("/r/f", "d"), "abcd"},
		{"empty write", write("/r/f", 0, ""), "abc"},
	} {
		for _, prepared := range []bool{true, false} {
			n := newNode(t, wholeRing)
			n.must(putInline("/r/f", "abc"))
			var res *Result
			if prepared {
				res = n.do(tc.cmd)
			} else {
				c := tc.cmd
				c.Time = 1_700_000_000_000_000_000
				p, err := EncodeCommand(&c)
				if err != nil {
					t.Fatal(err)
				}
				res = n.raw(p)
			}
			if res.Code != wire.OK {
				t.Fatalf("%s (prepared %v): %v %s", tc.name, prepared, res.Code, res.Message)
			}
			if got := n.content("/r/f"); got != tc.want {
				t.Fatalf("%s (prepared %v): reads %q, want %q", tc.name, prepared, got, tc.want)
			}
			if e := n.storedEntry("/r/f"); tc.cmd.Data != nil && len(tc.cmd.Data) > 0 && len(e.Data) != 0 {
				t.Fatalf("%s (prepared %v): still inline after the write", tc.name, prepared)
			}
			n.leaks()
			n.must(remove("/r/f", 0))
			if b, c, m := n.chunkKeys(); b+c+m != 0 {
				t.Fatalf("%s (prepared %v): after remove, %d block records, %d chunks, %d metadata records", tc.name, prepared, b, c, m)
			}
		}
	}
}

// COPY and RENAME carry an inline file's contents; REMOVE of it, or of a
// directory holding it, leaves nothing behind; a COMMIT replaces it.
func TestInlineFileCopyRenameRemove(t *testing.T) {
	n := newNode(t, wholeRing)
	n.must(putInline("/r/d/f", "abc"))
	n.must(putTiny("/r/big", "0123456789"))
	n.must(cp("/r/d/f", "/r/d/g", 0))
	n.must(cp("/r/d/f", "/r/big", 0)) // an inline copy over a block file
	n.must(rename("/r/d/g", "/r/h", 0))
	n.must(rename("/r/d", "/r/e", 0))
	for p, want := range map[string]string{"/r/e/f": "abc", "/r/h": "abc", "/r/big": "abc"} {
		if got := n.content(p); got != want {
			t.Fatalf("%s reads %q, want %q", p, got, want)
		}
	}
	if b, c, m := n.chunkKeys(); b+c+m != 0 {
		t.Fatalf("only inline files: %d block records, %d chunks, %d metadata records", b, c, m)
	}
	n.leaks()
	ch := n.must(Command{Op: wire.OpChunk, Path: "/r/h", Data: []byte("wxyz"), ChunkSize: tiny})
	n.must(Command{Op: wire.OpCommit, Path: "/r/h", Chunks: []string{ch.Chunk}, Size: 4, ChunkSize: tiny})
	if got := n.content("/r/h"); got != "wxyz" {
		t.Fatalf("committed over an inline file: %q", got)
	}
	n.must(remove("/r/e", wire.FlagRecursive))
	n.must(remove("/r/big", 0))
	n.leaks()
	if _, _, err := n.fsm.get("/r/e/f"); codeOf(err) != wire.NotFound {
		t.Fatalf("removed inline file: %v", err)
	}
}

// An inline file whose stored bytes no longer match its checksum is never
// returned: the read fails INTERNAL, naming the file.
func TestInlineCorruptionDetected(t *testing.T) {
	n := newNode(t, wholeRing)
	n.must(putInline("/r/f", "good"))
	e := n.storedEntry("/r/f")
	e.Data = []byte("evil")
	if err := n.db.Set(entryKey("/r/f"), encodeEntry(e), nil); err != nil {
		t.Fatal(err)
	}
	data, _, err := n.fsm.get("/r/f")
	if codeOf(err) != wire.Internal || !strings.Contains(err.Error(), "/r/f") || !strings.Contains(err.Error(), "checksum") || data != nil {
		t.Fatalf("read of corrupt inline contents: %q, %v", data, err)
	}
	c := write("/r/f", 0, "x")
	if err := n.fsm.PrepareWrite(&c); codeOf(err) != wire.Internal {
		t.Fatalf("a write prepared over corrupt inline contents: %v, want INTERNAL", err)
	}
}

// Replicas applying the same entries with inline files agree on every
// byte they store.
func TestInlineDeterminism(t *testing.T) {
	a, b := newNode(t, wholeRing), newNode(t, wholeRing)
	for _, c := range script() {
		if c.Op == wire.OpPut {
			c.InlineSize = tiny
		}
		p := leaderEntry(t, a, c)
		if ra, rb := a.raw(p), b.raw(p); !sameResult(ra, rb) {
			t.Fatalf("%v %s: %+v vs %+v", c.Op, c.Path, ra, rb)
		}
	}
	sameKeys(t, a, b)
	if a.stateSum() != b.stateSum() {
		t.Fatal("state checksums differ")
	}
}

// The apply cache keeps an inline file's entry without its contents; such
// an entry comes back unloaded, loads them on demand, and is never stored
// as it is (that would lose the file's bytes).
func TestUnloadedInlineEntry(t *testing.T) {
	n := newNode(t, wholeRing)
	n.must(putInline("/r/f", "abc"))
	b := n.db.NewIndexedBatch()
	defer b.Close()
	e, err := n.fsm.entryOf(b, "/r/f")
	if err != nil || !e.unloaded || e.Data != nil || !e.inline() {
		t.Fatalf("cached inline entry: %+v, %v; want it unloaded", e, err)
	}
	if err := n.fsm.putEntry(b, "/r/g", e); codeOf(err) != wire.Internal {
		t.Fatalf("storing an unloaded entry: %v, want INTERNAL", err)
	}
	tx := &tx{f: n.fsm, b: b}
	if err := tx.loadData("/r/f", e); err != nil || string(e.Data) != "abc" || e.unloaded {
		t.Fatalf("loadData: %+v, %v", e, err)
	}
}
