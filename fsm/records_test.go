package fsm

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cleavefs/cleave/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// The stored records are part of the on-disk format and replicas compare
// state hashes: the hand-written encoders must write exactly what the
// reflection encoder writes for the same struct. These tests compare them
// on boundary values of every field and on random records.

// edgeInts are the values at which msgpack changes an integer's form.
var edgeInts = []int64{0, 1, -1, 31, 32, -32, -33, 127, 128, -128, -129, 255, 256,
	32767, 32768, -32768, -32769, 65535, 65536, math.MaxInt32, math.MaxInt32 + 1,
	math.MinInt32, math.MinInt32 - 1, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64, math.MinInt64}

func randInt(r *rand.Rand) int64 {
	if r.IntN(2) == 0 {
		return edgeInts[r.IntN(len(edgeInts))]
	}
	return r.Int64() >> r.IntN(64)
}

func randBytes(r *rand.Rand) []byte {
	n := []int{0, 1, 31, 32, 255, 256, 65535, 65536}[r.IntN(8)]
	if r.IntN(4) == 0 {
		return nil
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

func sameAsReflection(t *testing.T, what string, v any, got []byte) {
	t.Helper()
	want, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s %+v:\nhand       %x\nreflection %x", what, v, got, want)
	}
}

func TestRecordEncodersMatchReflection(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 3000 {
		zero := func(v int64) int64 { // omitempty fields are often zero
			if r.IntN(3) == 0 {
				return 0
			}
			return v
		}
		c := chunkMeta{Refs: zero(randInt(r)), Touched: zero(randInt(r)), Size: zero(randInt(r)),
			Lo: uint64(zero(randInt(r))), Hi: uint64(zero(randInt(r))), Hull: r.IntN(2) == 0}
		sameAsReflection(t, "chunk meta", &c, encodeChunkMeta(&c))

		s := sessionMeta{Low: uint64(zero(randInt(r))), Count: int(zero(randInt(r))), Last: zero(randInt(r)),
			Index: zero(randInt(r)), High: uint64(zero(randInt(r)))}
		sameAsReflection(t, "session meta", &s, encodeSessionMeta(&s))

		e := entry{Type: wire.FileType(r.IntN(256)), Size: zero(randInt(r)), Mtime: zero(randInt(r)),
			Version: uint64(zero(randInt(r))), Checksum: string(randBytes(r)), Block: zero(randInt(r)), Sum: randBytes(r), Data: randBytes(r)}
		if r.IntN(4) == 0 {
			e.Checksum = "sha256:" + strings.Repeat("ab", 32)
		}
		sameAsReflection(t, "entry", &e, encodeEntry(&e))
	}
	for _, v := range []any{&chunkMeta{}, &sessionMeta{}, &entry{}} {
		switch v := v.(type) {
		case *chunkMeta:
			sameAsReflection(t, "zero chunk meta", v, encodeChunkMeta(v))
		case *sessionMeta:
			sameAsReflection(t, "zero session meta", v, encodeSessionMeta(v))
		case *entry:
			sameAsReflection(t, "zero entry", v, encodeEntry(v))
		}
	}
}
