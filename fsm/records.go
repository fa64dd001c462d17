package fsm

// Hand-written encoders of the records Apply writes on every put: the
// file entry, a chunk's metadata and a session's record (codec.go has
// the Command's and the session result's, and the decoders). Each writes
// exactly the bytes msgpack.Marshal writes for the struct (a map of the
// fields not omitted, in declaration order; int64 and uint64 fields in 9
// bytes, uint8 in 2, uint32 in 5, int fields compact, strings, byte
// slices, maps and arrays with the shortest length header), without
// reflection; records_test.go and codec_test.go compare them.

import (
	"encoding/binary"
	"math"
)

func encodeEntry(e *entry) []byte {
	return appendEntry(make([]byte, 0, entrySize(e)), e)
}

// entrySize bounds the length of e's encoding.
func entrySize(e *entry) int { return 64 + len(e.Checksum) + len(e.Sum) + len(e.Data) }

// appendEntry appends e's encoding (encodeEntry) to b.
func appendEntry(b []byte, e *entry) []byte {
	// Type and Version are never omitted.
	b = append(b, 0x80|byte(count(true, e.Size != 0, e.Mtime != 0, true, e.Checksum != "", e.Block != 0, len(e.Sum) > 0, len(e.Data) > 0)))
	b = append(b, 0xa1, 't', 0xcc, byte(e.Type))
	b = int64Field(b, "s", e.Size)
	b = int64Field(b, "m", e.Mtime)
	b = appendUint64(append(b, 0xa1, 'v'), e.Version)
	b = strField(b, "c", e.Checksum)
	b = int64Field(b, "b", e.Block)
	if len(e.Sum) > 0 {
		b = appendBin(append(b, 0xa1, 'a'), e.Sum)
	}
	if len(e.Data) > 0 {
		b = appendBin(append(b, 0xa1, 'd'), e.Data)
	}
	return b
}

func encodeChunkMeta(m *chunkMeta) []byte {
	n := count(m.Refs != 0, m.Touched != 0, true, m.Lo != 0, m.Hi != 0, m.Hull) // Size is never omitted
	b := append(make([]byte, 0, 1+5*11+3), 0x80|byte(n))
	b = int64Field(b, "r", m.Refs)
	b = int64Field(b, "t", m.Touched)
	b = appendInt64(append(b, 0xa1, 's'), m.Size)
	b = uint64Field(b, "l", m.Lo)
	b = uint64Field(b, "h", m.Hi)
	if m.Hull {
		b = append(b, 0xa1, 'u', 0xc3)
	}
	return b
}

func encodeSessionMeta(m *sessionMeta) []byte {
	b := append(make([]byte, 0, 1+5*11), 0x80|byte(count(m.Low != 0, m.Count != 0, m.Last != 0, m.Index != 0, m.High != 0)))
	b = uint64Field(b, "l", m.Low)
	if m.Count != 0 {
		b = appendCompactInt(append(b, 0xa1, 'n'), int64(m.Count))
	}
	b = int64Field(b, "t", m.Last)
	b = int64Field(b, "i", m.Index)
	return uint64Field(b, "h", m.High)
}

// count is the number of fields an encoding writes: one per true value.
func count(set ...bool) int {
	n := 0
	for _, s := range set {
		if s {
			n++
		}
	}
	return n
}

// int64Field, uint64Field and strField append the key k (under 32 bytes)
// and v, unless v is zero (omitempty).
func int64Field(b []byte, k string, v int64) []byte {
	if v == 0 {
		return b
	}
	return appendInt64(appendStr(b, k), v)
}

func uint64Field(b []byte, k string, v uint64) []byte {
	if v == 0 {
		return b
	}
	return appendUint64(appendStr(b, k), v)
}

func strField(b []byte, k, v string) []byte {
	if v == "" {
		return b
	}
	return appendStr(appendStr(b, k), v)
}

func appendMapLen(b []byte, n int) []byte   { return appendHeader(b, n, 0x80, 0xde) }
func appendArrayLen(b []byte, n int) []byte { return appendHeader(b, n, 0x90, 0xdc) }

// appendHeader appends a map or array header: the fix form fix|n, or the
// 16-bit form c16 or the 32-bit form after it.
func appendHeader(b []byte, n int, fix, c16 byte) []byte {
	switch {
	case n < 16:
		return append(b, fix|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, c16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, c16+1), uint32(n))
}

func appendInt64(b []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

func appendUint64(b []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

// appendCompactInt is msgpack's EncodeInt: the shortest form of v.
func appendCompactInt(b []byte, v int64) []byte {
	switch {
	case v >= 0 && v <= math.MaxInt8, v < 0 && v >= -32:
		return append(b, byte(v))
	case v > 0 && v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v > 0 && v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v > 0 && v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	case v > 0:
		return appendUint64(b, uint64(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	}
	return appendInt64(b, v)
}

func appendStr(b []byte, s string) []byte {
	if len(s) < 32 {
		return append(append(b, 0xa0|byte(len(s))), s...)
	}
	return append(appendLen(b, len(s), 0xd9), s...)
}

func appendBin(b []byte, p []byte) []byte {
	return append(appendLen(b, len(p), 0xc4), p...)
}

// appendLen appends the header of a string or byte slice of length n:
// code8 (str 8 or bin 8) and its 16- and 32-bit successors, as short as n
// allows.
func appendLen(b []byte, n int, code8 byte) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(b, code8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, code8+1), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, code8+2), uint32(n))
}
