package fsm

// Hand-written encoders of the records Apply writes on every put: the
// file entry, a chunk's metadata and a session's record. Each writes
// exactly the bytes msgpack.Marshal writes for the struct (a map of the
// fields not omitted, in declaration order; int64 and uint64 fields in 9
// bytes, int fields compact, strings and byte slices with the shortest
// length header), without reflection; records_test.go compares them.
// Decoding still goes through msgpack.Unmarshal.

import (
	"encoding/binary"
	"math"
)

func encodeEntry(e *entry) []byte {
	n := 2 // Type and Version are never omitted
	for _, set := range []bool{e.Size != 0, e.Mtime != 0, e.Checksum != "", e.Block != 0, len(e.Sum) > 0} {
		if set {
			n++
		}
	}
	b := make([]byte, 0, 64+len(e.Checksum)+len(e.Sum))
	b = append(b, 0x80|byte(n))
	b = append(append(b, 0xa1, 't'), 0xcc, byte(e.Type))
	b = appendInt64Field(b, 's', e.Size)
	b = appendInt64Field(b, 'm', e.Mtime)
	b = appendUint64(append(b, 0xa1, 'v'), e.Version)
	if e.Checksum != "" {
		b = appendStr(append(b, 0xa1, 'c'), e.Checksum)
	}
	b = appendInt64Field(b, 'b', e.Block)
	if len(e.Sum) > 0 {
		b = appendBin(append(b, 0xa1, 'a'), e.Sum)
	}
	return b
}

func encodeChunkMeta(m *chunkMeta) []byte {
	n := 1 // Size is never omitted
	if m.Refs != 0 {
		n++
	}
	for _, set := range []bool{m.Touched != 0, m.Lo != 0, m.Hi != 0, m.Hull} {
		if set {
			n++
		}
	}
	b := append(make([]byte, 0, 1+5*11+3), 0x80|byte(n))
	b = appendInt64Field(b, 'r', m.Refs)
	b = appendInt64Field(b, 't', m.Touched)
	b = appendInt64(append(b, 0xa1, 's'), m.Size)
	if m.Lo != 0 {
		b = appendUint64(append(b, 0xa1, 'l'), m.Lo)
	}
	if m.Hi != 0 {
		b = appendUint64(append(b, 0xa1, 'h'), m.Hi)
	}
	if m.Hull {
		b = append(b, 0xa1, 'u', 0xc3)
	}
	return b
}

func encodeSessionMeta(m *sessionMeta) []byte {
	n := 0
	for _, set := range []bool{m.Low != 0, m.Count != 0, m.Last != 0, m.Index != 0, m.High != 0} {
		if set {
			n++
		}
	}
	b := append(make([]byte, 0, 1+5*11), 0x80|byte(n))
	if m.Low != 0 {
		b = appendUint64(append(b, 0xa1, 'l'), m.Low)
	}
	if m.Count != 0 {
		b = appendCompactInt(append(b, 0xa1, 'n'), int64(m.Count))
	}
	b = appendInt64Field(b, 't', m.Last)
	b = appendInt64Field(b, 'i', m.Index)
	if m.High != 0 {
		b = appendUint64(append(b, 0xa1, 'h'), m.High)
	}
	return b
}

// appendInt64Field appends the one-letter key k and v, unless v is 0
// (omitempty).
func appendInt64Field(b []byte, k byte, v int64) []byte {
	if v == 0 {
		return b
	}
	return appendInt64(append(b, 0xa1, k), v)
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
