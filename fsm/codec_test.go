package fsm

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/cleavefs/cleave/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// Log entries are replicated and stored: the hand-written Command codec
// must write exactly the bytes the reflection encoder writes, and read
// every encoding to exactly what the reflection decoder reads (or fail
// where it fails). These tests compare the two on every command kind, on
// random commands and, in FuzzDecodeCommand, on arbitrary bytes.

// commandReflect is the reference encoding: the version byte, then c as
// the reflection encoder writes it.
func commandReflect(t testing.TB, c *Command) []byte {
	t.Helper()
	v, err := msgpack.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{commandVersion}, v...)
}

// commandKinds are commands of every op as the node fills them.
func commandKinds() []Command {
	long := strings.Repeat("/x", 200)
	return []Command{
		{},
		{Op: wire.OpMkdir, Path: "/a/b", Flags: wire.FlagParents, Time: 1_700_000_000_000_000_000, Clock: 1_700_000_000_000_000_001},
		{Op: wire.OpPut, Path: "/a/f", Data: bytes.Repeat([]byte{7}, 1024), Flags: wire.FlagParents, Time: 1, Session: 3, Seq: 9, IfVersion: 12, ChunkSize: 1 << 20, SessionTTL: 600e9, ChunkTTL: 3600e9, InlineSize: 2048},
		{Op: wire.OpRemove, Path: "/a", Flags: wire.FlagRecursive, Session: ^uint64(0), Seq: ^uint64(0)},
		{Op: wire.OpWrite, Path: long, Offset: 1 << 40, Base: &WriteBase{Type: wire.TypeFile, Version: 5, Size: 70000},
			Blocks: []Block{{I: 0, Data: bytes.Repeat([]byte{1}, 300)}, {I: 1 << 33, Data: nil}, {I: 2, Data: []byte{}}}, Length: 70000},
		{Op: wire.OpAppend, Path: "/a/log", Base: &WriteBase{}, Blocks: []Block{{I: 3, Data: []byte("tail")}}, Length: 4},
		{Op: wire.OpWrite, Path: "/a/old", Offset: 7, Data: []byte("unprepared")},
		{Op: wire.OpRename, Path: "/a/x", To: "/a/y", Time: -5},
		{Op: wire.OpCopy, Path: "/a/x", To: strings.Repeat("z", 70000)},
		{Op: wire.OpChunk, Path: "/a/big", Data: bytes.Repeat([]byte{2}, 70000), ChunkTTL: 1},
		{Op: wire.OpCommit, Path: "/a/big", Chunks: []string{"sha256:" + strings.Repeat("ab", 32), ""}, Size: 1 << 21, IfVersion: 1},
		{Op: wire.OpSplitFork, Data: []byte{0x81, 0xa1, 'x', 0x01}, Time: 3},
		{Op: wire.OpSplitCleanup, Size: 500, Time: 4, Clock: 5, ChunkTTL: 6},
	}
}

// randCommand is a command with each field set or zero at random, at the
// values where msgpack changes a form.
func randCommand(r *rand.Rand) Command {
	zero := func(v int64) int64 {
		if r.IntN(3) == 0 {
			return 0
		}
		return v
	}
	str := func() string { return string(randBytes(r)) }
	c := Command{Op: wire.Op(r.IntN(256)), Path: str(), Data: randBytes(r), Flags: wire.Flags(r.Uint32() >> r.IntN(33)),
		Time: zero(randInt(r)), Clock: zero(randInt(r)), Session: uint64(zero(randInt(r))), Seq: uint64(zero(randInt(r))),
		To: str(), Offset: zero(randInt(r)), IfVersion: uint64(zero(randInt(r))), Size: zero(randInt(r)),
		Length: zero(randInt(r)), ChunkSize: zero(randInt(r)), SessionTTL: zero(randInt(r)), ChunkTTL: zero(randInt(r)), InlineSize: zero(randInt(r))}
	switch r.IntN(3) {
	case 0:
		c.Chunks = []string{}
	case 1:
		for range r.IntN(20) {
			c.Chunks = append(c.Chunks, str())
		}
	}
	if r.IntN(2) == 0 {
		c.Base = &WriteBase{Type: wire.FileType(zero(int64(r.IntN(256)))), Version: uint64(zero(randInt(r))), Size: zero(randInt(r))}
	}
	switch r.IntN(3) {
	case 0:
		c.Blocks = []Block{}
	case 1:
		for range r.IntN(20) {
			c.Blocks = append(c.Blocks, Block{I: randInt(r), Data: randBytes(r)})
		}
	}
	return c
}

func TestCommandEncoderMatchesReflection(t *testing.T) {
	check := func(c *Command) {
		t.Helper()
		got, err := EncodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		if want := commandReflect(t, c); !bytes.Equal(got, want) {
			t.Fatalf("command %+v:\nhand       %x\nreflection %x", c, got, want)
		}
	}
	forCommands(8, check)
}

// forCommands calls check with every command kind and 3,000 random
// commands drawn with seed.
func forCommands(seed uint64, check func(c *Command)) {
	for _, c := range commandKinds() {
		check(&c)
	}
	r := rand.New(rand.NewPCG(seed, seed+1))
	for range 3000 {
		c := randCommand(r)
		check(&c)
	}
}

// TestCommandDecoderMatchesReflection decodes what the encoder writes
// without falling back, to what the reflection decoder reads.
func TestCommandDecoderMatchesReflection(t *testing.T) {
	check := func(c *Command) {
		t.Helper()
		p := commandReflect(t, c)
		want, err := decodeCommandReflect(p)
		if err != nil {
			t.Fatal(err)
		}
		var got Command
		if err := decodeCommandFast(p[1:], &got, false); err != nil {
			t.Fatalf("command %+v (%x): fast decoder: %v", c, p, err)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Fatalf("encoding %x:\nhand       %+v\nreflection %+v", p, got, *want)
		}
		if len(got.Data) > 0 && &got.Data[0] == &p[bytes.Index(p, got.Data)] {
			t.Fatal("decoded Data aliases the input")
		}
	}
	forCommands(10, check)
}

// sameDecoding fails unless DecodeCommand and the reflection decoder
// agree on p: both fail, or both give the same Command.
func sameDecoding(t *testing.T, p []byte) {
	t.Helper()
	got, gerr := DecodeCommand(p)
	want, werr := decodeCommandReflect(p)
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("input %x: DecodeCommand: %v (%+v), reflection: %v (%+v)", p, gerr, got, werr, want)
	}
	if gerr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("input %x:\nDecodeCommand %+v\nreflection    %+v", p, *got, *want)
	}
}

// TestDecodeCommandOddForms feeds forms the encoder never writes, which
// the reflection decoder still reads (or refuses): the answer must be its.
func TestDecodeCommandOddForms(t *testing.T) {
	m := func(fields ...byte) []byte { return append([]byte{commandVersion}, fields...) }
	tests := []struct {
		name string
		in   []byte
	}{
		{"compact op", m(0x81, 0xa2, 'o', 'p', 0x03)},
		{"op nil", m(0x81, 0xa2, 'o', 'p', 0xc0)},
		{"path as bin", m(0x81, 0xa4, 'p', 'a', 't', 'h', 0xc4, 0x01, '/')},
		{"data as str", m(0x81, 0xa4, 'd', 'a', 't', 'a', 0xa1, 'x')},
		{"empty data", m(0x81, 0xa4, 'd', 'a', 't', 'a', 0xc4, 0x00)},
		{"time compact", m(0x81, 0xa4, 't', 'i', 'm', 'e', 0xd0, 0x80)},
		{"field twice", m(0x82, 0xa2, 'o', 'p', 0xcc, 0x03, 0xa2, 'o', 'p', 0xcc, 0x04)},
		{"unknown field", m(0x81, 0xa3, 'z', 'z', 'z', 0x01)},
		{"empty chunks", m(0x81, 0xa6, 'c', 'h', 'u', 'n', 'k', 's', 0x90)},
		{"nil base", m(0x81, 0xa4, 'b', 'a', 's', 'e', 0xc0)},
		{"block as array", m(0x81, 0xa6, 'b', 'l', 'o', 'c', 'k', 's', 0x91, 0x92, 0x01, 0xc0)},
		{"array length beyond input", m(0x81, 0xa6, 'b', 'l', 'o', 'c', 'k', 's', 0xdd, 0xff, 0xff, 0xff, 0xff)},
		{"string length beyond input", m(0x81, 0xa4, 'p', 'a', 't', 'h', 0xdb, 0x7f, 0xff, 0xff, 0xff)},
		{"truncated int", m(0x81, 0xa4, 't', 'i', 'm', 'e', 0xd3, 0x00)},
		{"map16", m(0xde, 0x00, 0x01, 0xa2, 'o', 'p', 0xcc, 0x03)},
		{"not a map", m(0x93)},
		{"trailing", m(0x80, 0xc0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { sameDecoding(t, tt.in) })
	}
}

// FuzzDecodeCommandMatchesReflection checks DecodeCommand against the reflection decoder
// on arbitrary input: the same Command, or both an error. Its seeds are
// the encodings of every command kind.
func FuzzDecodeCommandMatchesReflection(f *testing.F) {
	for _, c := range commandKinds() {
		f.Add(commandReflect(f, &c))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) > 1<<16 {
			return // bounded work per input
		}
		sameDecoding(t, p)
	})
}

func TestResultEncoderMatchesReflection(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	check := func(res *Result) {
		t.Helper()
		sameAsReflection(t, "result", res, encodeResult(res))
	}
	check(&Result{})
	check(&Result{Stat: &wire.Stat{}})
	check(&Result{Code: wire.NotFound, Message: "gone", Split: &SplitRecord{}, Retry: true, cost: 9})
	for range 3000 {
		res := Result{Code: wire.Code(r.IntN(256) * r.IntN(2)), Message: string(randBytes(r)), Chunk: string(randBytes(r))}
		if r.IntN(2) == 0 {
			res.Stat = &wire.Stat{Name: string(randBytes(r)), Type: wire.FileType(r.IntN(256)), Size: randInt(r),
				Mtime: randInt(r), Version: uint64(randInt(r)), Checksum: string(randBytes(r))}
		}
		check(&res)
	}
}

// TestRecordDecodersMatchReflection reads random stored records (and odd
// forms of them) with the hand decoders and the reflection decoder.
func TestRecordDecodersMatchReflection(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 15))
	zero := func(v int64) int64 {
		if r.IntN(3) == 0 {
			return 0
		}
		return v
	}
	checkEntry := func(p []byte) {
		t.Helper()
		var want entry
		werr := msgpack.Unmarshal(p, &want)
		got, gerr := decodeEntry("/f", p)
		if (werr == nil) != (gerr == nil) || werr == nil && !reflect.DeepEqual(*got, want) {
			t.Fatalf("entry %x: hand %+v, %v; reflection %+v, %v", p, got, gerr, want, werr)
		}
	}
	checkMeta := func(p []byte) {
		t.Helper()
		var want chunkMeta
		werr := msgpack.Unmarshal(p, &want)
		var got chunkMeta
		gerr := decodeChunkMeta(p, &got)
		if (werr == nil) != (gerr == nil) || werr == nil && got != want {
			t.Fatalf("chunk meta %x: hand %+v, %v; reflection %+v, %v", p, got, gerr, want, werr)
		}
	}
	for range 3000 {
		e := entry{Type: wire.FileType(r.IntN(256)), Size: zero(randInt(r)), Mtime: zero(randInt(r)),
			Version: uint64(zero(randInt(r))), Checksum: string(randBytes(r)), Block: zero(randInt(r)), Sum: randBytes(r), Data: randBytes(r)}
		p := encodeEntry(&e)
		var fast entry
		if err := decodeEntryFast(p, &fast); err != nil {
			t.Fatalf("entry %+v (%x): fast decoder: %v", e, p, err)
		}
		checkEntry(p)
		m := chunkMeta{Refs: zero(randInt(r)), Touched: zero(randInt(r)), Size: zero(randInt(r)),
			Lo: uint64(zero(randInt(r))), Hi: uint64(zero(randInt(r))), Hull: r.IntN(2) == 0}
		p = encodeChunkMeta(&m)
		var fm chunkMeta
		if err := decodeChunkMetaFast(p, &fm); err != nil || fm != m {
			t.Fatalf("chunk meta %+v (%x): fast decoder: %+v, %v", m, p, fm, err)
		}
		checkMeta(p)
	}
	for _, p := range [][]byte{
		{0x81, 0xa1, 't', 0x01},                         // compact type
		{0x82, 0xa1, 'v', 0x01, 0xa1, 'v', 0x02},        // field twice
		{0x81, 0xa1, 'a', 0xc4, 0x00},                   // empty sum
		{0x81, 0xa1, 'c', 0xc4, 0x01, 'x'},              // checksum as bin
		{0x81, 0xa1, 's', 0xd3, 0x00},                   // truncated
		{0x81, 0xa1, 'r', 0xcf, 0, 0, 0, 0, 0, 0, 0, 1}, // refs as uint64
		{0x80, 0xc0}, // trailing
		{0x91, 0x01}, // an array
	} {
		checkEntry(p)
		checkMeta(p)
	}
	if _, err := decodeEntry("/f", []byte{0xc1}); err == nil || !errors.As(err, new(*wire.Error)) {
		t.Fatalf("corrupt entry: %v, want a wire error", err)
	}
}
