package wire

import (
	"math"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// The hot messages (Request, Response and the Stat they carry) are encoded
// by hand, straight into the caller's buffer: the same bytes the reflection
// encoder writes with compact integers (fields in struct order, omitempty
// fields left out, the shortest integer, string and length forms), without
// reflection or allocation. Fields of the rarely sent nested types (Hello,
// NodeStatus, Status, ...) go through the reflection encoder, which appends
// into the same buffer.

// appendWriter is the io.Writer the reflection encoder appends through.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *appendWriter) WriteByte(c byte) error      { w.b = append(w.b, c); return nil }

type reflectEncoder struct {
	w appendWriter
	e *msgpack.Encoder
}

var reflectEncoders = sync.Pool{New: func() any {
	re := &reflectEncoder{}
	re.e = msgpack.NewEncoder(&re.w)
	re.e.UseCompactInts(true)
	return re
}}

// appendReflect appends the msgpack encoding of v, made by reflection with
// compact integers, to dst.
func appendReflect(dst []byte, v any) ([]byte, error) {
	re := reflectEncoders.Get().(*reflectEncoder)
	re.w.b = dst
	err := re.e.Encode(v)
	dst = re.w.b
	re.w.b = nil
	reflectEncoders.Put(re)
	return dst, err
}

func appendMapLen(dst []byte, n int) []byte   { return appendLen(dst, n, 0x80, 0xde) }
func appendArrayLen(dst []byte, n int) []byte { return appendLen(dst, n, 0x90, 0xdc) }

// appendLen appends a map or array header: the fix form fix|n, or the
// 16-bit form c16 or the 32-bit form after it with the length.
func appendLen(dst []byte, n int, fix, c16 byte) []byte {
	switch {
	case n < 16:
		return append(dst, fix|byte(n))
	case n <= math.MaxUint16:
		return append(dst, c16, byte(n>>8), byte(n))
	}
	return append(dst, c16+1, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendUint(dst []byte, n uint64) []byte {
	switch {
	case n <= math.MaxInt8:
		return append(dst, byte(n))
	case n <= math.MaxUint8:
		return append(dst, 0xcc, byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xcd, byte(n>>8), byte(n))
	case n <= math.MaxUint32:
		return append(dst, 0xce, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, 0xcf, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
		byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendInt(dst []byte, n int64) []byte {
	switch {
	case n >= 0:
		return appendUint(dst, uint64(n))
	case n >= -32:
		return append(dst, byte(n))
	case n >= math.MinInt8:
		return append(dst, 0xd0, byte(n))
	case n >= math.MinInt16:
		return append(dst, 0xd1, byte(n>>8), byte(n))
	case n >= math.MinInt32:
		return append(dst, 0xd2, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, 0xd3, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
		byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendStr(dst []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		dst = append(dst, 0xda, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, s...)
}

func appendBin(dst []byte, b []byte) []byte {
	n := len(b)
	switch {
	case n <= math.MaxUint8:
		dst = append(dst, 0xc4, byte(n))
	case n <= math.MaxUint16:
		dst = append(dst, 0xc5, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, b...)
}

// fieldCount counts the fields an encoding writes: one per true value.
func fieldCount(set ...bool) int {
	n := 0
	for _, s := range set {
		if s {
			n++
		}
	}
	return n
}

// Helpers that append one map entry, the key and then the value; the o…
// forms append nothing for a zero value (an omitempty field).

func kUint(dst []byte, k string, v uint64) []byte { return appendUint(appendStr(dst, k), v) }
func kInt(dst []byte, k string, v int64) []byte   { return appendInt(appendStr(dst, k), v) }
func kStr(dst []byte, k, v string) []byte         { return appendStr(appendStr(dst, k), v) }

func oUint(dst []byte, k string, v uint64) []byte {
	if v == 0 {
		return dst
	}
	return kUint(dst, k, v)
}

func oInt(dst []byte, k string, v int64) []byte {
	if v == 0 {
		return dst
	}
	return kInt(dst, k, v)
}

func oStr(dst []byte, k, v string) []byte {
	if v == "" {
		return dst
	}
	return kStr(dst, k, v)
}

func oBin(dst []byte, k string, v []byte) []byte {
	if len(v) == 0 {
		return dst
	}
	return appendBin(appendStr(dst, k), v)
}

// reflectFields appends fields encoded by reflection and keeps the first
// error; after one it appends nothing more.
type reflectFields struct{ err error }

// add appends key k and v when set.
func (rf *reflectFields) add(dst []byte, set bool, k string, v any) []byte {
	if !set || rf.err != nil {
		return dst
	}
	dst, rf.err = appendReflect(appendStr(dst, k), v)
	return dst
}

// appendRequest appends r's msgpack map to dst.
func appendRequest(dst []byte, r *Request) ([]byte, error) {
	dst = appendMapLen(dst, 2+fieldCount(r.Path != "", len(r.Data) > 0, r.Flags != 0, r.Session != 0,
		r.Seq != 0, r.Table != 0, r.TimeoutMs != 0, r.Hello != nil, r.To != "", r.Offset != 0,
		r.Length != 0, r.IfVersion != 0, r.Limit != 0, r.After != "", len(r.Chunks) > 0, r.Size != 0,
		r.Snap != nil, r.Member != nil, r.Cluster != "", r.Split != nil, r.User != nil,
		r.Group != "", r.Epoch != 0))
	dst = kUint(dst, "id", r.ID)
	dst = kUint(dst, "op", uint64(r.Op))
	dst = oStr(dst, "path", r.Path)
	dst = oBin(dst, "data", r.Data)
	dst = oUint(dst, "flags", uint64(r.Flags))
	dst = oUint(dst, "session", r.Session)
	dst = oUint(dst, "seq", r.Seq)
	dst = oUint(dst, "table", r.Table)
	dst = oUint(dst, "timeout_ms", uint64(r.TimeoutMs))
	var rf reflectFields
	dst = rf.add(dst, r.Hello != nil, "hello", r.Hello)
	dst = oStr(dst, "to", r.To)
	dst = oInt(dst, "offset", r.Offset)
	dst = oInt(dst, "length", r.Length)
	dst = oUint(dst, "if_version", r.IfVersion)
	dst = oUint(dst, "limit", uint64(r.Limit))
	dst = oStr(dst, "after", r.After)
	if len(r.Chunks) > 0 {
		dst = appendArrayLen(appendStr(dst, "chunks"), len(r.Chunks))
		for _, c := range r.Chunks {
			dst = appendStr(dst, c)
		}
	}
	dst = oInt(dst, "size", r.Size)
	dst = rf.add(dst, r.Snap != nil, "snap", r.Snap)
	dst = rf.add(dst, r.Member != nil, "member", r.Member)
	dst = oStr(dst, "cluster", r.Cluster)
	dst = rf.add(dst, r.Split != nil, "split", r.Split)
	dst = rf.add(dst, r.User != nil, "user", r.User)
	dst = oStr(dst, "group", r.Group)
	dst = oUint(dst, "epoch", r.Epoch)
	return dst, rf.err
}

// appendStat appends s's msgpack map to dst.
func appendStat(dst []byte, s *Stat) []byte {
	if s.Checksum != "" {
		dst = append(dst, 0x86)
	} else {
		dst = append(dst, 0x85)
	}
	dst = kStr(dst, "name", s.Name)
	dst = kUint(dst, "type", uint64(s.Type))
	dst = kInt(dst, "size", s.Size)
	dst = kInt(dst, "mtime", s.Mtime)
	dst = kUint(dst, "version", s.Version)
	return oStr(dst, "checksum", s.Checksum)
}

// appendResponse appends r's msgpack map to dst.
func appendResponse(dst []byte, r *Response) ([]byte, error) {
	dst = appendMapLen(dst, 2+fieldCount(r.Message != "", r.Leader != "", r.Table != 0, len(r.Data) > 0,
		r.Stat != nil, len(r.Entries) > 0, r.Exists, r.Hello != nil, r.Node != nil, r.Status != nil,
		r.Routes != nil, r.Next != "", r.Chunk != "", r.Router != nil, r.Split != nil,
		len(r.Users) > 0, r.Token != ""))
	dst = kUint(dst, "id", r.ID)
	dst = kUint(dst, "code", uint64(r.Code))
	dst = oStr(dst, "msg", r.Message)
	dst = oStr(dst, "leader", r.Leader)
	dst = oUint(dst, "table", r.Table)
	dst = oBin(dst, "data", r.Data)
	if r.Stat != nil {
		dst = appendStat(appendStr(dst, "stat"), r.Stat)
	}
	if len(r.Entries) > 0 {
		dst = appendArrayLen(appendStr(dst, "entries"), len(r.Entries))
		for i := range r.Entries {
			dst = appendStat(dst, &r.Entries[i])
		}
	}
	if r.Exists {
		dst = append(appendStr(dst, "exists"), 0xc3)
	}
	var rf reflectFields
	dst = rf.add(dst, r.Hello != nil, "hello", r.Hello)
	dst = rf.add(dst, r.Node != nil, "node", r.Node)
	dst = rf.add(dst, r.Status != nil, "status", r.Status)
	dst = rf.add(dst, r.Routes != nil, "routes", r.Routes)
	dst = oStr(dst, "next", r.Next)
	dst = oStr(dst, "chunk", r.Chunk)
	dst = rf.add(dst, r.Router != nil, "router_info", r.Router)
	dst = rf.add(dst, r.Split != nil, "split", r.Split)
	if len(r.Users) > 0 {
		dst = rf.add(dst, true, "users", r.Users) // boxing a slice allocates: only when there is one
	}
	dst = oStr(dst, "token", r.Token)
	return dst, rf.err
}
