package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
	"github.com/cockroachdb/pebble/v2"
)

// tiny is the block size the tests give files, so multi-block logic runs
// on a few bytes.
const tiny = 4

func write(p string, off int64, data string) Command {
	return Command{Op: wire.OpWrite, Path: p, Offset: off, Data: []byte(data), ChunkSize: tiny}
}
func appendTo(p, data string) Command {
	return Command{Op: wire.OpAppend, Path: p, Data: []byte(data), ChunkSize: tiny}
}
func rename(from, to string, f wire.Flags) Command {
	return Command{Op: wire.OpRename, Path: from, To: to, Flags: f}
}
func cp(from, to string, f wire.Flags) Command {
	return Command{Op: wire.OpCopy, Path: from, To: to, Flags: f}
}
func putTiny(p, data string) Command {
	return Command{Op: wire.OpPut, Path: p, Data: []byte(data), ChunkSize: tiny, Flags: parents}
}

// treeSum is the checksum of data with block size bs, computed from the
// definition in chunk.go, independently of the block map.
func treeSum(data []byte, bs int) string {
	if len(data) <= bs {
		s := sha256.Sum256(data)
		return "sha256:" + hex.EncodeToString(s[:])
	}
	acc := new(big.Int)
	for i := 0; i < len(data); i += bs {
		block := data[i:min(len(data), i+bs)]
		if bytes.Count(block, []byte{0}) == len(block) {
			continue // all zeros: a hole
		}
		d := sha256.Sum256(block)
		term := sha256.Sum256(append(binary.BigEndian.AppendUint64(nil, uint64(i/bs)), d[:]...))
		acc.Add(acc, new(big.Int).SetBytes(term[:]))
	}
	acc.Mod(acc, new(big.Int).Lsh(big.NewInt(1), 256))
	var a [32]byte
	acc.FillBytes(a[:])
	s := sha256.Sum256(append(binary.BigEndian.AppendUint64(nil, uint64(len(data))), a[:]...))
	return "sha256-sum:" + strconv.Itoa(bs) + ":" + hex.EncodeToString(s[:])
}

// content reads a file and checks its checksum against its bytes.
func (n *node) content(p string) string {
	n.t.Helper()
	data, st, err := n.fsm.get(p)
	if err != nil {
		n.t.Fatalf("Get(%s): %v", p, err)
	}
	if st.Size != int64(len(data)) {
		n.t.Fatalf("Get(%s): size %d, %d bytes", p, st.Size, len(data))
	}
	bs := int(DefaultChunkSize)
	if _, rest, ok := strings.Cut(st.Checksum, "sha256-sum:"); ok {
		bs, _ = strconv.Atoi(rest[:strings.IndexByte(rest, ':')])
	} else if len(data) > 0 && len(data) <= tiny {
		bs = tiny
	}
	if want := treeSum(data, bs); st.Checksum != want {
		n.t.Fatalf("Get(%s) = %q: checksum %s, want %s", p, data, st.Checksum, want)
	}
	return string(data)
}

// leaks checks that chunk bookkeeping matches the block maps exactly: every
// stored chunk is referenced as often as its count says (or pending), and
// no block points at a missing chunk.
func (n *node) leaks() {
	n.t.Helper()
	refs := map[ChunkID]int64{}
	metas := map[ChunkID]chunkMeta{}
	chunks := map[ChunkID]bool{}
	for _, kv := range n.dump() {
		k, v := kv[0], kv[1]
		switch {
		case bytes.HasPrefix(k, []byte(dataPrefix)):
			refs[ChunkID(v)]++
		case bytes.HasPrefix(k, []byte(chunkPrefix)):
			chunks[ChunkID(k[len(chunkPrefix):])] = true
		case bytes.HasPrefix(k, []byte(metaPrefix)):
			m, err := getMeta(n.db, ChunkID(k[len(metaPrefix):]))
			if err != nil {
				n.t.Fatal(err)
			}
			metas[ChunkID(k[len(metaPrefix):])] = *m
		}
	}
	for h, m := range metas {
		if !chunks[h] {
			n.t.Errorf("chunk %v has metadata but no bytes", h)
		}
		if m.Refs != refs[h] {
			n.t.Errorf("chunk %v counts %d references, the block maps hold %d", h, m.Refs, refs[h])
		}
		if m.Refs == 0 && m.Touched == 0 {
			n.t.Errorf("chunk %v is unreferenced and was never uploaded: leaked", h)
		}
	}
	for h := range chunks {
		if _, ok := metas[h]; !ok {
			n.t.Errorf("chunk %v has bytes but no metadata", h)
		}
	}
	for h := range refs {
		if !chunks[h] {
			n.t.Errorf("a block points at missing chunk %v", h)
		}
	}
}

func (n *node) countPrefix(p string) int {
	c := 0
	for _, kv := range n.dump() {
		if bytes.HasPrefix(kv[0], []byte(p)) {
			c++
		}
	}
	return c
}

func TestOps(t *testing.T) {
	base := []Command{
		mkdir("/d", 0),
		mkdir("/d/sub", 0),
		put("/d/sub/f", "x", 0),
		mkdir("/d/empty", 0),
		putTiny("/d/big", "0123456789"), // three blocks of 4
		put("/file", "contents", 0),
		put("/other/g", "other root", parents),
	}
	tests := []struct {
		name  string
		cmd   Command
		want  wire.Code
		msg   string
		check map[string]string // path → contents afterwards ("<dir>" for a directory, "" absent ok only via gone)
		gone  []string
	}{
		// write
		{name: "write inside", cmd: write("/d/big", 2, "ab"), check: map[string]string{"/d/big": "01ab456789"}},
		{name: "write across blocks", cmd: write("/d/big", 3, "XYZWV"), check: map[string]string{"/d/big": "012XYZWV89"}},
		{name: "write extends", cmd: write("/d/big", 8, "abcdef"), check: map[string]string{"/d/big": "01234567abcdef"}},
		{name: "write sparse", cmd: write("/d/big", 13, "Z"), check: map[string]string{"/d/big": "0123456789\x00\x00\x00Z"}},
		{name: "write far sparse", cmd: write("/d/big", 30, "Z"), check: map[string]string{"/d/big": "0123456789" + strings.Repeat("\x00", 20) + "Z"}},
		{name: "write creates", cmd: write("/d/new", 2, "hi"), check: map[string]string{"/d/new": "\x00\x00hi"}},
		{name: "write creates -p", cmd: Command{Op: wire.OpWrite, Path: "/d/x/y/new", Data: []byte("hi"), Flags: parents}, check: map[string]string{"/d/x/y/new": "hi", "/d/x/y": "<dir>"}},
		{name: "write missing parent", cmd: write("/d/nope/new", 0, "x"), want: wire.NotFound, msg: `"/d/nope"`},
		{name: "write dir", cmd: write("/d", 0, "x"), want: wire.IsDir},
		{name: "write /", cmd: write("/", 0, "x"), want: wire.IsDir},
		{name: "write parent is file", cmd: write("/file/x", 0, "x"), want: wire.NotDir},
		{name: "write negative offset", cmd: write("/file", -1, "x"), want: wire.Invalid, msg: "negative offset"},
		{name: "write too far", cmd: write("/file", maxFileSize, "x"), want: wire.TooLarge},
		{name: "write if-version wrong", cmd: Command{Op: wire.OpWrite, Path: "/file", Data: []byte("x"), IfVersion: 1}, want: wire.Conflict, msg: "not 1"},
		{name: "write if-version right", cmd: Command{Op: wire.OpWrite, Path: "/file", Data: []byte("C"), IfVersion: 6}, check: map[string]string{"/file": "Contents"}},
		{name: "write empty keeps", cmd: write("/file", 100, ""), check: map[string]string{"/file": "contents"}},
		// append
		{name: "append", cmd: appendTo("/d/big", "ab"), check: map[string]string{"/d/big": "0123456789ab"}},
		{name: "append fills block", cmd: appendTo("/d/big", "abcdefg"), check: map[string]string{"/d/big": "0123456789abcdefg"}},
		{name: "append creates", cmd: appendTo("/d/log", "one"), check: map[string]string{"/d/log": "one"}},
		{name: "append missing parent", cmd: appendTo("/d/nope/log", "x"), want: wire.NotFound},
		{name: "append dir", cmd: appendTo("/d/sub", "x"), want: wire.IsDir},
		{name: "append with offset", cmd: Command{Op: wire.OpAppend, Path: "/file", Offset: 3, Data: []byte("x")}, want: wire.Invalid, msg: "takes no offset"},
		{name: "append if-absent exists", cmd: Command{Op: wire.OpAppend, Path: "/file", Data: []byte("x"), Flags: wire.FlagIfAbsent}, want: wire.Conflict},
		// put preconditions
		{name: "put if-absent new", cmd: Command{Op: wire.OpPut, Path: "/d/n", Data: []byte("v"), Flags: wire.FlagIfAbsent}, check: map[string]string{"/d/n": "v"}},
		{name: "put if-absent exists", cmd: Command{Op: wire.OpPut, Path: "/file", Data: []byte("v"), Flags: wire.FlagIfAbsent}, want: wire.Conflict, msg: "if-absent"},
		{name: "put if-version", cmd: Command{Op: wire.OpPut, Path: "/file", Data: []byte("v"), IfVersion: 6}, check: map[string]string{"/file": "v"}},
		{name: "put if-version stale", cmd: Command{Op: wire.OpPut, Path: "/file", Data: []byte("v"), IfVersion: 5}, want: wire.Conflict, msg: "at version 6, not 5"},
		{name: "put if-version missing", cmd: Command{Op: wire.OpPut, Path: "/d/nope", Data: []byte("v"), IfVersion: 5}, want: wire.Conflict, msg: "does not exist"},
		{name: "put multi-block", cmd: putTiny("/d/m", "abcdefghij"), check: map[string]string{"/d/m": "abcdefghij"}},
		// rename
		{name: "rename file", cmd: rename("/d/sub/f", "/d/f2", 0), check: map[string]string{"/d/f2": "x"}, gone: []string{"/d/sub/f"}},
		{name: "rename multi-block file", cmd: rename("/d/big", "/d/sub/big", 0), check: map[string]string{"/d/sub/big": "0123456789"}, gone: []string{"/d/big"}},
		{name: "rename replaces file", cmd: rename("/d/sub/f", "/d/big", 0), check: map[string]string{"/d/big": "x"}, gone: []string{"/d/sub/f"}},
		{name: "rename dir", cmd: rename("/d", "/dd", 0), want: wire.CrossRoot},
		{name: "rename dir within root", cmd: rename("/d/sub", "/d/moved", 0), check: map[string]string{"/d/moved/f": "x", "/d/moved": "<dir>"}, gone: []string{"/d/sub", "/d/sub/f"}},
		{name: "rename dir onto empty dir", cmd: rename("/d/sub", "/d/empty", 0), check: map[string]string{"/d/empty/f": "x"}, gone: []string{"/d/sub"}},
		{name: "rename dir onto non-empty dir", cmd: rename("/d/empty", "/d/sub", 0), want: wire.NotEmpty, msg: `"/d/sub"`},
		{name: "rename dir onto file", cmd: rename("/d/sub", "/d/big", 0), want: wire.NotDir},
		{name: "rename file onto dir", cmd: rename("/d/big", "/d/sub", 0), want: wire.IsDir},
		{name: "rename into itself", cmd: rename("/d/sub", "/d/sub/deeper", 0), want: wire.Invalid, msg: "into itself"},
		{name: "rename root into itself", cmd: rename("/d", "/d/x", 0), want: wire.Invalid, msg: "into itself"},
		{name: "rename onto ancestor", cmd: rename("/d/sub/f", "/d", 0), want: wire.IsDir},
		{name: "rename dir onto ancestor", cmd: rename("/d/sub", "/d", 0), want: wire.NotEmpty},
		{name: "rename missing", cmd: rename("/d/nope", "/d/x", 0), want: wire.NotFound},
		{name: "rename missing dest parent", cmd: rename("/d/big", "/d/nope/x", 0), want: wire.NotFound},
		{name: "rename -p", cmd: rename("/d/big", "/d/a/b/x", parents), check: map[string]string{"/d/a/b/x": "0123456789"}},
		{name: "rename dest parent is file", cmd: rename("/d/big", "/file/x", 0), want: wire.CrossRoot},
		{name: "rename dest under file", cmd: rename("/d/big", "/d/sub/f/x", 0), want: wire.NotDir},
		{name: "rename cross root", cmd: rename("/d/big", "/other/big", 0), want: wire.CrossRoot, msg: "different roots"},
		{name: "rename if-absent", cmd: rename("/d/sub/f", "/d/big", wire.FlagIfAbsent), want: wire.Conflict},
		{name: "rename if-version", cmd: Command{Op: wire.OpRename, Path: "/d/big", To: "/d/b2", IfVersion: 1}, want: wire.Conflict},
		{name: "rename same", cmd: rename("/d/big", "/d/big", 0), check: map[string]string{"/d/big": "0123456789"}},
		{name: "rename /", cmd: rename("/", "/x", 0), want: wire.Invalid},
		{name: "rename bad dest", cmd: rename("/file", "/a//b", 0), want: wire.Invalid, msg: "destination"},
		// copy
		{name: "copy", cmd: cp("/d/big", "/d/copy", 0), check: map[string]string{"/d/copy": "0123456789", "/d/big": "0123456789"}},
		{name: "copy replaces", cmd: cp("/d/big", "/d/sub/f", 0), check: map[string]string{"/d/sub/f": "0123456789"}},
		{name: "copy if-absent", cmd: cp("/d/big", "/d/sub/f", wire.FlagIfAbsent), want: wire.Conflict},
		{name: "copy onto dir", cmd: cp("/d/big", "/d/sub", 0), want: wire.IsDir},
		{name: "copy dir", cmd: cp("/d/sub", "/d/x", 0), want: wire.IsDir, msg: "copies one file"},
		{name: "copy missing", cmd: cp("/d/nope", "/d/x", 0), want: wire.NotFound},
		{name: "copy cross root", cmd: cp("/d/big", "/other/x", 0), want: wire.CrossRoot},
		{name: "copy onto itself", cmd: cp("/d/big", "/d/big", 0), want: wire.Invalid},
		{name: "copy missing parent", cmd: cp("/d/big", "/d/no/x", 0), want: wire.NotFound},
		{name: "copy -p", cmd: cp("/d/big", "/d/no/x", parents), check: map[string]string{"/d/no/x": "0123456789"}},
		// chunk and commit
		{name: "chunk empty", cmd: Command{Op: wire.OpChunk, Path: "/d/up"}, want: wire.Invalid},
		{name: "chunk too large", cmd: Command{Op: wire.OpChunk, Path: "/d/up", Data: []byte("12345"), ChunkSize: tiny}, want: wire.TooLarge, msg: "chunk size is 4"},
		{name: "chunk bad path", cmd: Command{Op: wire.OpChunk, Path: "d", Data: []byte("1")}, want: wire.Invalid},
		{name: "commit missing chunk", cmd: Command{Op: wire.OpCommit, Path: "/d/up", Chunks: []string{ChunkOf([]byte("nope")).String()}, Size: 4}, want: wire.NotFound, msg: "upload it with CHUNK"},
		{name: "commit bad name", cmd: Command{Op: wire.OpCommit, Path: "/d/up", Chunks: []string{"md5:00"}, Size: 4}, want: wire.Invalid, msg: "64 lowercase hex"},
		{name: "commit empty", cmd: Command{Op: wire.OpCommit, Path: "/d/up"}, check: map[string]string{"/d/up": ""}},
		{name: "commit empty with size", cmd: Command{Op: wire.OpCommit, Path: "/d/up", Size: 3}, want: wire.Invalid, msg: "add up"},
		{name: "commit negative size", cmd: Command{Op: wire.OpCommit, Path: "/d/up", Size: -1}, want: wire.Invalid},
		{name: "commit onto dir", cmd: Command{Op: wire.OpCommit, Path: "/d/sub"}, want: wire.IsDir},
		{name: "commit if-absent", cmd: Command{Op: wire.OpCommit, Path: "/file", Flags: wire.FlagIfAbsent}, want: wire.Conflict},
		// remove releases chunks
		{name: "remove multi-block", cmd: remove("/d/big", 0), gone: []string{"/d/big"}},
		{name: "remove -r tree", cmd: remove("/d", recursive), gone: []string{"/d", "/d/big", "/d/sub/f"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, res := applyCase(t, base, tt.cmd, tt.want, tt.msg)
			for p, want := range tt.check {
				if want == "<dir>" {
					if st, err := n.fsm.Stat(p); err != nil || st.Type != wire.TypeDir {
						t.Errorf("Stat(%s) = %+v, %v; want a dir", p, st, err)
					}
					continue
				}
				if got := n.content(p); got != want {
					t.Errorf("%s = %q, want %q", p, got, want)
				}
			}
			for _, p := range tt.gone {
				if ok, err := n.fsm.Exists(p); ok || err != nil {
					t.Errorf("Exists(%q) = %v, %v; want false", p, ok, err)
				}
			}
			if tt.want == wire.OK && res.Stat != nil && res.Stat.Version != n.index && tt.cmd.Path != tt.cmd.To && tt.cmd.Op != wire.OpMkdir {
				t.Errorf("result version %d, want the entry's index %d", res.Stat.Version, n.index)
			}
			n.leaks()
		})
	}
}

func TestRangeRead(t *testing.T) {
	n := newNode(t, wholeRing)
	n.must(putTiny("/f", "0123456789"))
	tests := []struct {
		off, length, max int64
		want             string
		code             wire.Code
	}{
		{0, 0, -1, "0123456789", wire.OK},
		{3, 4, -1, "3456", wire.OK},
		{3, 0, -1, "3456789", wire.OK},
		{8, 100, -1, "89", wire.OK},
		{10, 5, -1, "", wire.OK},
		{1000, 0, -1, "", wire.OK},
		{0, 0, 5, "", wire.TooLarge},
		{2, 5, 5, "23456", wire.OK},
		{-1, 0, -1, "", wire.Invalid},
		{0, -1, -1, "", wire.Invalid},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d+%d/%d", tt.off, tt.length, tt.max), func(t *testing.T) {
			data, st, err := n.fsm.Read("/f", tt.off, tt.length, tt.max)
			if codeOf(err) != tt.code {
				t.Fatalf("err %v, want %v", err, tt.code)
			}
			if err == nil && (string(data) != tt.want || st.Size != 10) {
				t.Fatalf("Read = %q %+v, want %q", data, st, tt.want)
			}
		})
	}
	// A range read touches only its blocks: corrupt block 0 and read block 2.
	h := ChunkOf([]byte("0123"))
	if err := n.db.Set(chunkKey(h), []byte("0124"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if data, _, err := n.fsm.Read("/f", 8, 2, -1); err != nil || string(data) != "89" {
		t.Fatalf("Read of an intact block = %q, %v", data, err)
	}
	if _, _, err := n.fsm.Read("/f", 2, 4, -1); codeOf(err) != wire.Internal || !strings.Contains(err.Error(), h.String()) {
		t.Fatalf("Read over a corrupt block: %v", err)
	}
}

func TestUploadCommit(t *testing.T) {
	n := newNode(t, wholeRing)
	n.must(mkdir("/up", 0))
	n.must(put("/up/f", "old contents", 0))
	parts := []string{"abcd", "efgh", "ij"}
	var names []string
	for _, p := range parts {
		res := n.must(Command{Op: wire.OpChunk, Path: "/up/f", Data: []byte(p), ChunkSize: tiny})
		if res.Chunk != ChunkOf([]byte(p)).String() || res.Stat.Size != int64(len(p)) {
			t.Fatalf("CHUNK result %+v", res)
		}
		names = append(names, res.Chunk)
	}
	// Uploading does not change the file.
	if got := n.content("/up/f"); got != "old contents" {
		t.Fatalf("before commit: %q", got)
	}
	bad := []struct {
		chunks []string
		size   int64
		msg    string
	}{
		{names, 9, "add up to 10 bytes, not size 9"},
		{[]string{names[2], names[0]}, 6, "every chunk but the last"},
		{[]string{names[0], names[2], names[1]}, 10, "every chunk but the last"},
	}
	for _, b := range bad {
		res := n.do(Command{Op: wire.OpCommit, Path: "/up/f", Chunks: b.chunks, Size: b.size})
		if res.Code != wire.Invalid || !strings.Contains(res.Message, b.msg) {
			t.Errorf("COMMIT %v/%d: %v %q", b.chunks, b.size, res.Code, res.Message)
		}
	}
	res := n.must(Command{Op: wire.OpCommit, Path: "/up/f", Chunks: names, Size: 10, IfVersion: 2})
	if got := n.content("/up/f"); got != "abcdefghij" {
		t.Fatalf("after commit: %q", got)
	}
	if !strings.HasPrefix(res.Stat.Checksum, "sha256-sum:4:") {
		t.Errorf("checksum %q", res.Stat.Checksum)
	}
	n.leaks()
	// An append rewrites only the short last block.
	n.must(appendTo("/up/f", "k"))
	if got := n.content("/up/f"); got != "abcdefghijk" {
		t.Fatalf("after append: %q", got)
	}
	n.leaks()
	// A second commit of the same chunks into another file shares them.
	n.must(Command{Op: wire.OpCommit, Path: "/up/g", Chunks: names[:2], Size: 8})
	if m, _ := getMeta(n.db, ChunkOf([]byte("abcd"))); m == nil || m.Refs != 2 {
		t.Fatalf("shared chunk meta %+v", m)
	}
	n.leaks()
}

func TestChunkRefcount(t *testing.T) {
	n := newNode(t, wholeRing)
	h := ChunkOf([]byte("same"))
	refs := func() int64 {
		m, err := getMeta(n.db, h)
		if err != nil {
			t.Fatal(err)
		}
		if m == nil {
			return -1
		}
		return m.Refs
	}
	n.must(put("/a", "same", 0))
	n.must(put("/b", "same", 0))
	if r := refs(); r != 2 {
		t.Fatalf("two files: refs %d", r)
	}
	if c := n.countPrefix(chunkPrefix); c != 1 {
		t.Fatalf("%d chunks stored for two identical files", c)
	}
	n.must(remove("/a", 0))
	if r := refs(); r != 1 || n.content("/b") != "same" {
		t.Fatalf("after removing one: refs %d", r)
	}
	n.must(remove("/b", 0))
	if r := refs(); r != -1 || n.countPrefix(chunkPrefix) != 0 {
		t.Fatalf("after removing both: refs %d, %d chunks", r, n.countPrefix(chunkPrefix))
	}
	// No chunk survives rm -r, overwrite, rename-over or copy-then-remove.
	n.must(putTiny("/t/x/1", "aaaabbbbcc"))
	n.must(putTiny("/t/x/2", "aaaabbbbcc"))
	n.must(cp("/t/x/1", "/t/3", 0))
	n.must(putTiny("/t/x/1", "zzzz"))
	n.must(rename("/t/3", "/t/x/2", 0))
	n.must(write("/t/x/2", 2, "qqqqqq"))
	n.leaks()
	n.must(remove("/t", recursive))
	n.leaks()
	for _, p := range []string{chunkPrefix, metaPrefix, dataPrefix, entryPrefix} {
		if c := n.countPrefix(p); c != 0 {
			t.Errorf("%d keys left under %q", c, p)
		}
	}
}

func TestPendingChunkTTL(t *testing.T) {
	n := newNode(t, wholeRing)
	const ttl = 1000
	chunk := func(data string, tm int64) *Result {
		return n.must(Command{Op: wire.OpChunk, Path: "/up", Data: []byte(data), Time: tm, ChunkTTL: ttl})
	}
	chunk("orphan", 10_000)
	used := chunk("used", 10_000).Chunk
	n.must(Command{Op: wire.OpCommit, Path: "/up", Chunks: []string{used}, Size: 4, Time: 10_100, ChunkTTL: ttl})
	if n.countPrefix(pendingPrefix) != 1 {
		t.Fatalf("%d pending chunks, want 1", n.countPrefix(pendingPrefix))
	}
	// Before the TTL nothing is collected; any later entry collects after it.
	n.must(Command{Op: wire.OpMkdir, Path: "/x", Time: 10_999, ChunkTTL: ttl})
	if n.countPrefix(chunkPrefix) != 2 {
		t.Fatal("a pending chunk was collected before its TTL")
	}
	// A chunk re-uploaded refreshes its time; removing the last file using
	// a recently uploaded chunk leaves it pending, not deleted.
	n.must(Command{Op: wire.OpRemove, Path: "/up", Time: 10_500, ChunkTTL: ttl})
	if n.countPrefix(chunkPrefix) != 2 || n.countPrefix(pendingPrefix) != 2 {
		t.Fatalf("after remove: %d chunks, %d pending", n.countPrefix(chunkPrefix), n.countPrefix(pendingPrefix))
	}
	n.must(Command{Op: wire.OpMkdir, Path: "/y", Time: 11_000, ChunkTTL: ttl})
	if n.countPrefix(chunkPrefix) != 0 || n.countPrefix(metaPrefix) != 0 || n.countPrefix(pendingPrefix) != 0 {
		t.Fatalf("after the TTL: %d chunks, %d metas, %d pending", n.countPrefix(chunkPrefix), n.countPrefix(metaPrefix), n.countPrefix(pendingPrefix))
	}
	if res := n.do(Command{Op: wire.OpCommit, Path: "/up", Chunks: []string{used}, Size: 4, Time: 11_001}); res.Code != wire.NotFound {
		t.Fatalf("commit of a collected chunk: %v %q", res.Code, res.Message)
	}
}

func TestScrub(t *testing.T) {
	n := newNode(t, wholeRing)
	for i := range 10 {
		n.must(putTiny(fmt.Sprintf("/s/%d", i), fmt.Sprintf("file %d contents", i)))
	}
	total := n.countPrefix(chunkPrefix)
	pass := func() (checked int, corrupt []string) {
		var from []byte
		for {
			st, err := n.fsm.VerifyChunks(from, 8)
			if err != nil {
				t.Fatal(err)
			}
			checked += st.Checked
			corrupt = append(corrupt, st.Corrupt...)
			if from = st.Next; from == nil {
				return checked, corrupt
			}
		}
	}
	if c, bad := pass(); c != total || len(bad) != 0 {
		t.Fatalf("clean pass: checked %d of %d, corrupt %v", c, total, bad)
	}
	h := ChunkOf([]byte("file"))
	v, err := getValue(n.db, chunkKey(h))
	if err != nil {
		t.Fatal(err)
	}
	v[0] ^= 0x20 // flip one bit of the stored value
	if err := n.db.Set(chunkKey(h), v, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if c, bad := pass(); c != total || !slices.Equal(bad, []string{h.String()}) {
		t.Fatalf("pass over a corrupt chunk: checked %d of %d, corrupt %v", c, total, bad)
	}
	if _, _, err := n.fsm.get("/s/3"); codeOf(err) != wire.Internal || !strings.Contains(err.Error(), "failed verification") {
		t.Fatalf("Get over the corrupt chunk: %v", err)
	}
}

// TestSplitCleanupFreesMovedChunks: a split's cleanup deletes at once the
// chunks it leaves without references when no upload for a path the
// cluster still owns touched them, and keeps pending (until the TTL) a
// chunk an upload for an owned path touched, so that upload's COMMIT
// still finds it.
func TestSplitCleanupFreesMovedChunks(t *testing.T) {
	const at, ttl = uint64(1) << 63, int64(1e12)
	pathIn := func(upper bool) string {
		for i := 0; ; i++ {
			if p := fmt.Sprintf("/r%d/f", i); (ring.PathPoint(p) >= at) == upper {
				return p
			}
		}
	}
	moved, kept := pathIn(true), pathIn(false)
	n := newNode(t, wholeRing)
	cmd := func(c Command) *Result { c.ChunkTTL = ttl; return n.must(c) }
	a := cmd(Command{Op: wire.OpChunk, Path: moved, Data: []byte("only the moved file")}).Chunk
	b := cmd(Command{Op: wire.OpChunk, Path: moved, Data: []byte("shared bytes")}).Chunk
	cmd(Command{Op: wire.OpCommit, Path: moved, Chunks: []string{a, b}, Size: 31, Flags: wire.FlagParents})
	// An upload for an owned path sends the same bytes and has not committed yet.
	cmd(Command{Op: wire.OpChunk, Path: kept, Data: []byte("shared bytes")})

	n.setRange(wire.Range{End: at})
	for res := cmd(Command{Op: wire.OpSplitCleanup, Size: 1}); res.Message == "more"; res = cmd(Command{Op: wire.OpSplitCleanup, Size: 1}) {
	}
	if c, p := n.countPrefix(chunkPrefix), n.countPrefix(pendingPrefix); c != 1 || p != 1 {
		t.Fatalf("after the cleanup: %d chunks stored, %d pending; want 1 and 1 (the shared one)", c, p)
	}
	cmd(Command{Op: wire.OpCommit, Path: kept, Chunks: []string{b}, Size: 12, Flags: wire.FlagParents})
	if got := n.content(kept); got != "shared bytes" {
		t.Fatalf("%s: %q", kept, got)
	}
	n.leaks()
}

// TestAwaitedOutside: a chunk's hull of touching paths is outside a range
// only when known and disjoint from it (the range may end at 2^64).
func TestAwaitedOutside(t *testing.T) {
	const half = uint64(1) << 63
	for _, tc := range []struct {
		m    chunkMeta
		r    wire.Range
		want bool
	}{
		{chunkMeta{Lo: half, Hi: half + 5, Hull: true}, wire.Range{End: half}, true},
		{chunkMeta{Lo: half - 1, Hi: half + 5, Hull: true}, wire.Range{End: half}, false},
		{chunkMeta{Lo: half, Hi: half + 5}, wire.Range{End: half}, false}, // hull unknown
		{chunkMeta{Lo: 3, Hi: half - 1, Hull: true}, wire.Range{Start: half}, true},
		{chunkMeta{Lo: 3, Hi: half, Hull: true}, wire.Range{Start: half}, false},
		{chunkMeta{Lo: 3, Hi: 9, Hull: true}, wire.Range{Start: 5, End: 7}, false},
		{chunkMeta{Lo: 7, Hi: 9, Hull: true}, wire.Range{Start: 5, End: 7}, true},
		{chunkMeta{Lo: 0, Hi: 0, Hull: true}, wire.Range{}, false},
	} {
		if got := tc.m.awaitedOutside(tc.r); got != tc.want {
			t.Errorf("hull [%d, %d] (known %v) outside %v: %v, want %v", tc.m.Lo, tc.m.Hi, tc.m.Hull, tc.r, got, tc.want)
		}
	}
}

// TestOverwriteOneBlockFile: a PUT or COMMIT over a small file releases
// the old blocks' chunks, however the file was made (one block, zeros, a
// hole before a block, writes, appends, a copy, an entry without the
// block sum), and leaves no block record behind.
func TestOverwriteOneBlockFile(t *testing.T) {
	zeros := string(make([]byte, tiny))
	makers := map[string][]Command{
		"put":           {putTiny("/o/f", "abcd")},
		"put zeros":     {putTiny("/o/f", zeros)},
		"put short":     {putTiny("/o/f", "a")},
		"first a hole":  {mkdir("/o", parents), write("/o/f", tiny+1, "z")},
		"write":         {mkdir("/o", parents), write("/o/f", 1, "xy")},
		"write zeros":   {mkdir("/o", parents), write("/o/f", 0, "\x00\x00")},
		"append":        {mkdir("/o", parents), appendTo("/o/f", "ab"), appendTo("/o/f", "c")},
		"copy":          {putTiny("/o/g", "wxyz"), cp("/o/g", "/o/f", 0)},
		"empty":         {putTiny("/o/f", "")},
		"old entry sum": {putTiny("/o/f", "abcd")}, // Sum dropped below
	}
	overs := map[string]Command{
		"put":        putTiny("/o/f", "pqrs"),
		"put longer": putTiny("/o/f", "pqrstuvwxy"),
		"put empty":  putTiny("/o/f", ""),
		"same bytes": putTiny("/o/f", "abcd"),
		"default bs": {Op: wire.OpPut, Path: "/o/f", Data: []byte("new")},
		"commit":     {Op: wire.OpCommit, Path: "/o/f", Chunks: []string{ChunkOf([]byte("kl")).String()}, Size: 2, ChunkSize: tiny},
	}
	for mname, steps := range makers {
		for oname, over := range overs {
			t.Run(mname+"/"+oname, func(t *testing.T) {
				n := newNode(t, wholeRing)
				for _, c := range steps {
					n.must(c)
				}
				if mname == "old entry sum" {
					b := n.db.NewIndexedBatch()
					e, err := getEntry(b, "/o/f")
					if err != nil {
						t.Fatal(err)
					}
					e.Sum = nil
					if err := errors.Join(n.fsm.putEntry(b, "/o/f", e), b.Commit(pebble.Sync)); err != nil {
						t.Fatal(err)
					}
				}
				if over.Op == wire.OpCommit {
					n.must(Command{Op: wire.OpChunk, Path: "/o/f", Data: []byte("kl"), ChunkSize: tiny})
				}
				n.must(over)
				want := string(over.Data)
				if over.Op == wire.OpCommit {
					want = "kl"
				}
				if got := n.content("/o/f"); got != want {
					t.Fatalf("content %q, want %q", got, want)
				}
				n.leaks()
				n.must(remove("/o", recursive))
				n.leaks()
				if c := n.countPrefix(dataPrefix); c != 0 {
					t.Fatalf("%d block records left", c)
				}
			})
		}
	}
}
