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

func appendMapLen(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, 0x80|byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xde, byte(n>>8), byte(n))
	}
	return append(dst, 0xdf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendArrayLen(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xdc, byte(n>>8), byte(n))
	}
	return append(dst, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
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

// Small helpers that append one map entry: the key, then the value.

func kUint(dst []byte, k string, v uint64) []byte { return appendUint(appendStr(dst, k), v) }
func kInt(dst []byte, k string, v int64) []byte   { return appendInt(appendStr(dst, k), v) }
func kStr(dst []byte, k, v string) []byte         { return appendStr(appendStr(dst, k), v) }
func kBin(dst []byte, k string, v []byte) []byte  { return appendBin(appendStr(dst, k), v) }

// kReflect appends key k and v encoded by reflection.
func kReflect(dst []byte, k string, v any) ([]byte, error) {
	return appendReflect(appendStr(dst, k), v)
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
	if r.Path != "" {
		dst = kStr(dst, "path", r.Path)
	}
	if len(r.Data) > 0 {
		dst = kBin(dst, "data", r.Data)
	}
	if r.Flags != 0 {
		dst = kUint(dst, "flags", uint64(r.Flags))
	}
	if r.Session != 0 {
		dst = kUint(dst, "session", r.Session)
	}
	if r.Seq != 0 {
		dst = kUint(dst, "seq", r.Seq)
	}
	if r.Table != 0 {
		dst = kUint(dst, "table", r.Table)
	}
	if r.TimeoutMs != 0 {
		dst = kUint(dst, "timeout_ms", uint64(r.TimeoutMs))
	}
	var err error
	if r.Hello != nil {
		if dst, err = kReflect(dst, "hello", r.Hello); err != nil {
			return dst, err
		}
	}
	return appendRequestRest(dst, r)
}

// appendRequestRest appends the fields of r after hello, in struct order.
func appendRequestRest(dst []byte, r *Request) ([]byte, error) {
	if r.To != "" {
		dst = kStr(dst, "to", r.To)
	}
	if r.Offset != 0 {
		dst = kInt(dst, "offset", r.Offset)
	}
	if r.Length != 0 {
		dst = kInt(dst, "length", r.Length)
	}
	if r.IfVersion != 0 {
		dst = kUint(dst, "if_version", r.IfVersion)
	}
	if r.Limit != 0 {
		dst = kUint(dst, "limit", uint64(r.Limit))
	}
	if r.After != "" {
		dst = kStr(dst, "after", r.After)
	}
	if len(r.Chunks) > 0 {
		dst = appendArrayLen(appendStr(dst, "chunks"), len(r.Chunks))
		for _, c := range r.Chunks {
			dst = appendStr(dst, c)
		}
	}
	if r.Size != 0 {
		dst = kInt(dst, "size", r.Size)
	}
	var err error
	for _, f := range [...]struct {
		set bool
		k   string
		v   any
	}{{r.Snap != nil, "snap", r.Snap}, {r.Member != nil, "member", r.Member}} {
		if f.set {
			if dst, err = kReflect(dst, f.k, f.v); err != nil {
				return dst, err
			}
		}
	}
	if r.Cluster != "" {
		dst = kStr(dst, "cluster", r.Cluster)
	}
	if r.Split != nil {
		if dst, err = kReflect(dst, "split", r.Split); err != nil {
			return dst, err
		}
	}
	if r.User != nil {
		if dst, err = kReflect(dst, "user", r.User); err != nil {
			return dst, err
		}
	}
	if r.Group != "" {
		dst = kStr(dst, "group", r.Group)
	}
	if r.Epoch != 0 {
		dst = kUint(dst, "epoch", r.Epoch)
	}
	return dst, nil
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
	if s.Checksum != "" {
		dst = kStr(dst, "checksum", s.Checksum)
	}
	return dst
}

// appendResponse appends r's msgpack map to dst.
func appendResponse(dst []byte, r *Response) ([]byte, error) {
	dst = appendMapLen(dst, 2+fieldCount(r.Message != "", r.Leader != "", r.Table != 0, len(r.Data) > 0,
		r.Stat != nil, len(r.Entries) > 0, r.Exists, r.Hello != nil, r.Node != nil, r.Status != nil,
		r.Routes != nil, r.Next != "", r.Chunk != "", r.Router != nil, r.Split != nil,
		len(r.Users) > 0, r.Token != ""))
	dst = kUint(dst, "id", r.ID)
	dst = kUint(dst, "code", uint64(r.Code))
	if r.Message != "" {
		dst = kStr(dst, "msg", r.Message)
	}
	if r.Leader != "" {
		dst = kStr(dst, "leader", r.Leader)
	}
	if r.Table != 0 {
		dst = kUint(dst, "table", r.Table)
	}
	if len(r.Data) > 0 {
		dst = kBin(dst, "data", r.Data)
	}
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
	return appendResponseRest(dst, r)
}

// appendResponseRest appends the fields of r after exists, in struct order.
func appendResponseRest(dst []byte, r *Response) ([]byte, error) {
	var err error
	for _, f := range [...]struct {
		set bool
		k   string
		v   any
	}{{r.Hello != nil, "hello", r.Hello}, {r.Node != nil, "node", r.Node},
		{r.Status != nil, "status", r.Status}, {r.Routes != nil, "routes", r.Routes}} {
		if f.set {
			if dst, err = kReflect(dst, f.k, f.v); err != nil {
				return dst, err
			}
		}
	}
	if r.Next != "" {
		dst = kStr(dst, "next", r.Next)
	}
	if r.Chunk != "" {
		dst = kStr(dst, "chunk", r.Chunk)
	}
	for _, f := range [...]struct {
		set bool
		k   string
		v   any
	}{{r.Router != nil, "router_info", r.Router}, {r.Split != nil, "split", r.Split}} {
		if f.set {
			if dst, err = kReflect(dst, f.k, f.v); err != nil {
				return dst, err
			}
		}
	}
	if len(r.Users) > 0 {
		if dst, err = kReflect(dst, "users", r.Users); err != nil {
			return dst, err
		}
	}
	if r.Token != "" {
		dst = kStr(dst, "token", r.Token)
	}
	return dst, nil
}
