package wire

import (
	"bytes"
	"errors"
	"reflect"
)

// The hot messages are decoded by hand. The fast decoder checks every
// length against the bytes left as it reads it, steps over what it does not
// decode checking it as checkShape would, and gives exactly what the
// reflection decoder gives (the same integer widening and truncation, nil
// for an absent or nil byte string, an empty non-nil slice for an empty
// array, unknown fields skipped) for every form it handles. A form it
// leaves alone (a repeated field, a struct sent as an array, a value of the
// wrong type, anything malformed) makes it return errSlow, and the caller
// checks and decodes the payload again by reflection, whose result and
// error are then the answer. Fields of the rarely sent nested types are
// decoded by reflection in place.

// errSlow says the fast decoder left a payload to the reflection decoder.
var errSlow = errors.New("wire: payload left to the reflection decoder")

// fastDec is a cursor over one payload.
type fastDec struct {
	p     []byte
	off   int
	share bool // bin returns slices of p instead of copies
}

func (d *fastDec) code() (byte, error) {
	if d.off >= len(d.p) {
		return 0, errSlow
	}
	c := d.p[d.off]
	d.off++
	return c, nil
}

// be reads an n-byte big-endian unsigned integer.
func (d *fastDec) be(n int) (uint64, error) {
	if n > len(d.p)-d.off {
		return 0, errSlow
	}
	var v uint64
	for _, b := range d.p[d.off : d.off+n] {
		v = v<<8 | uint64(b)
	}
	d.off += n
	return v, nil
}

// uint reads an integer as msgpack's DecodeUint64 does: nil is 0, and a
// negative number is sign-extended into the uint64.
func (d *fastDec) uint() (uint64, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	switch {
	case c == 0xc0:
		return 0, nil
	case c <= 0x7f || c >= 0xe0:
		return uint64(int8(c)), nil
	case c >= 0xcc && c <= 0xcf: // uint 8, 16, 32, 64
		return d.be(1 << (c - 0xcc))
	case c == 0xd0:
		v, err := d.be(1)
		return uint64(int8(v)), err
	case c == 0xd1:
		v, err := d.be(2)
		return uint64(int16(v)), err
	case c == 0xd2:
		v, err := d.be(4)
		return uint64(int32(v)), err
	case c == 0xd3:
		return d.be(8)
	}
	return 0, errSlow
}

// int reads an integer as msgpack's DecodeInt64 does (the same bits as uint).
func (d *fastDec) int() (int64, error) {
	v, err := d.uint()
	return int64(v), err
}

// raw reads a str or bin value (msgpack decodes either into a string or a
// byte slice) and returns its bytes, aliasing the payload; isNil for nil.
func (d *fastDec) raw() (b []byte, isNil bool, err error) {
	c, err := d.code()
	if err != nil {
		return nil, false, err
	}
	var n uint64
	switch {
	case c == 0xc0:
		return nil, true, nil
	case c >= 0xa0 && c <= 0xbf:
		n = uint64(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		n, err = d.be(1)
	case c == 0xda || c == 0xc5:
		n, err = d.be(2)
	case c == 0xdb || c == 0xc6:
		n, err = d.be(4)
	default:
		return nil, false, errSlow
	}
	if err != nil || n > uint64(len(d.p)-d.off) {
		return nil, false, errSlow
	}
	b = d.p[d.off : d.off+int(n)]
	d.off += int(n)
	return b, false, nil
}

func (d *fastDec) str() (string, error) {
	b, _, err := d.raw()
	return string(b), err
}

// bin returns a copy, since the payload buffer is reused for the next
// frame, unless d shares it.
func (d *fastDec) bin() ([]byte, error) {
	b, isNil, err := d.raw()
	if isNil || err != nil {
		return nil, err
	}
	if d.share {
		return b[:len(b):len(b)], nil
	}
	return bytes.Clone(b), nil
}

func (d *fastDec) bool() (bool, error) {
	c, err := d.code()
	switch {
	case err != nil:
		return false, err
	case c == 0xc0 || c == 0xc2:
		return false, nil
	case c == 0xc3:
		return true, nil
	}
	return false, errSlow
}

// length reads a map (array: false) or array header: -1 for nil.
func (d *fastDec) length(array bool) (int, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	fix, l16, l32 := byte(0x80), byte(0xde), byte(0xdf)
	if array {
		fix, l16, l32 = 0x90, 0xdc, 0xdd
	}
	var n uint64
	switch {
	case c == 0xc0:
		return -1, nil
	case c >= fix && c <= fix|0x0f:
		return int(c & 0x0f), nil
	case c == l16:
		n, err = d.be(2)
	case c == l32:
		n, err = d.be(4)
	default:
		return 0, errSlow
	}
	// Every element takes at least a byte: a longer claim is malformed.
	if err != nil || n > uint64(len(d.p)-d.off) {
		return 0, errSlow
	}
	return int(n), nil
}

// capHint is how many elements of at least minBytes bytes each the rest of
// the payload can hold, at most n: what to allocate before decoding an
// array, so its declared length alone never sizes an allocation.
func (d *fastDec) capHint(n, minBytes int) int {
	return min(n, (len(d.p)-d.off)/minBytes+1)
}

// skip steps over one value of any type at nesting level level (the
// message is level 1), checking it as checkShape would.
func (d *fastDec) skip(level int) error {
	s := shapeScan{p: d.p, off: d.off}
	if err := s.scan(level); err != nil {
		return errSlow
	}
	d.off = s.off
	return nil
}

// reflectField decodes the next value, a field of the message, into *ptr by
// reflection, as the reflection decoder decodes a struct field of that
// type. The value is checked as checkShape would first, so no declared
// length sizes an allocation before its bytes are there.
func (d *fastDec) reflectField(ptr any) error {
	start := d.off
	if err := d.skip(2); err != nil {
		return err
	}
	sub := d.p[start:d.off]
	dc := decoders.Get().(*decoder)
	dc.r.Reset(sub)
	dc.d.Reset(&dc.r)
	err := dc.d.DecodeValue(reflect.ValueOf(ptr).Elem())
	left := dc.r.Len()
	dc.r.Reset(nil)
	decoders.Put(dc)
	if err != nil || left != 0 {
		return errSlow
	}
	return nil
}

// strs decodes an array of strings: nil for nil, non-nil when empty.
func (d *fastDec) strs() ([]string, error) {
	n, err := d.length(true)
	if err != nil || n < 0 {
		return nil, err
	}
	out := make([]string, 0, d.capHint(n, 8))
	for range n {
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// fields reads the header of a map at nesting level level and calls one
// with the index in keys of each key it knows, skipping the others; a
// field that comes twice is left to the reflection decoder.
func (d *fastDec) fields(level int, keys []string, one func(f int) error) error {
	n, err := d.length(false)
	if err != nil || n < 0 {
		return errSlow
	}
	var seen uint64 // TestKeysFollowStructTags keeps every message under 64 fields
	for range n {
		k, _, err := d.raw()
		if err != nil {
			return err
		}
		f := keyIndex(keys, k)
		if f < 0 {
			if err := d.skip(level + 1); err != nil {
				return err
			}
			continue
		}
		if seen&(1<<f) != 0 {
			return errSlow
		}
		seen |= 1 << f
		if err := one(f); err != nil {
			return err
		}
	}
	return nil
}

// nilNext reports, and steps over, a nil as the next value.
func (d *fastDec) nilNext() bool {
	if d.off < len(d.p) && d.p[d.off] == 0xc0 {
		d.off++
		return true
	}
	return false
}

var requestKeys = [...]string{"id", "op", "path", "data", "flags", "session", "seq", "table", "timeout_ms",
	"hello", "to", "offset", "length", "if_version", "limit", "after", "chunks", "size", "snap", "member",
	"cluster", "split", "user", "group", "epoch"}

var responseKeys = [...]string{"id", "code", "msg", "leader", "table", "data", "stat", "entries", "exists",
	"hello", "node", "status", "routes", "next", "chunk", "router_info", "split", "users", "token"}

var statKeys = [...]string{"name", "type", "size", "mtime", "version", "checksum"}

// keyIndex returns the index of k in keys, or -1.
func keyIndex(keys []string, k []byte) int {
	for i, name := range keys {
		if name == string(k) {
			return i
		}
	}
	return -1
}

// message decodes the whole payload as one message map whose fields keys
// names, calling one to decode the value of each; errSlow when the payload
// is left to the reflection decoder.
func (d *fastDec) message(keys []string, one func(f int) error) error {
	if err := d.fields(1, keys, one); err != nil {
		return err
	}
	if d.off != len(d.p) {
		return errSlow
	}
	return nil
}

// decodeRequestFast decodes p into r, which must be zero; errSlow when p
// is left to the reflection decoder.
func decodeRequestFast(p []byte, r *Request, share bool) error {
	d := fastDec{p: p, share: share}
	return d.message(requestKeys[:], func(f int) error { return d.requestField(r, f) })
}

// requestField decodes the value of field f (an index of requestKeys).
func (d *fastDec) requestField(r *Request, f int) (err error) {
	var u uint64
	switch f {
	case 0:
		r.ID, err = d.uint()
	case 1:
		u, err = d.uint()
		r.Op = Op(u)
	case 2:
		r.Path, err = d.str()
	case 3:
		r.Data, err = d.bin()
	case 4:
		u, err = d.uint()
		r.Flags = Flags(u)
	case 5:
		r.Session, err = d.uint()
	case 6:
		r.Seq, err = d.uint()
	case 7:
		r.Table, err = d.uint()
	case 8:
		u, err = d.uint()
		r.TimeoutMs = uint32(u)
	case 9:
		err = d.reflectField(&r.Hello)
	case 10:
		r.To, err = d.str()
	case 11:
		r.Offset, err = d.int()
	case 12:
		r.Length, err = d.int()
	case 13:
		r.IfVersion, err = d.uint()
	case 14:
		u, err = d.uint()
		r.Limit = uint32(u)
	case 15:
		r.After, err = d.str()
	case 16:
		r.Chunks, err = d.strs()
	case 17:
		r.Size, err = d.int()
	default:
		return d.requestRare(r, f)
	}
	return err
}

// requestRare decodes the fields after size.
func (d *fastDec) requestRare(r *Request, f int) (err error) {
	switch f {
	case 18:
		err = d.reflectField(&r.Snap)
	case 19:
		err = d.reflectField(&r.Member)
	case 20:
		r.Cluster, err = d.str()
	case 21:
		err = d.reflectField(&r.Split)
	case 22:
		err = d.reflectField(&r.User)
	case 23:
		r.Group, err = d.str()
	case 24:
		r.Epoch, err = d.uint()
	}
	return err
}

// decodeResponseFast decodes p into r, which must be zero; errSlow when p
// is left to the reflection decoder.
func decodeResponseFast(p []byte, r *Response) error {
	d := fastDec{p: p}
	return d.message(responseKeys[:], func(f int) error { return d.responseField(r, f) })
}

// responseField decodes the value of field f (an index of responseKeys).
func (d *fastDec) responseField(r *Response, f int) (err error) {
	var u uint64
	switch f {
	case 0:
		r.ID, err = d.uint()
	case 1:
		u, err = d.uint()
		r.Code = Code(u)
	case 2:
		r.Message, err = d.str()
	case 3:
		r.Leader, err = d.str()
	case 4:
		r.Table, err = d.uint()
	case 5:
		r.Data, err = d.bin()
	case 6:
		if !d.nilNext() {
			r.Stat = new(Stat)
			err = d.stat(r.Stat, 2)
		}
	case 7:
		r.Entries, err = d.stats()
	case 8:
		r.Exists, err = d.bool()
	case 9:
		err = d.reflectField(&r.Hello)
	case 10:
		err = d.reflectField(&r.Node)
	case 11:
		err = d.reflectField(&r.Status)
	case 12:
		err = d.reflectField(&r.Routes)
	case 13:
		r.Next, err = d.str()
	case 14:
		r.Chunk, err = d.str()
	case 15:
		err = d.reflectField(&r.Router)
	case 16:
		err = d.reflectField(&r.Split)
	case 17:
		err = d.reflectField(&r.Users)
	case 18:
		r.Token, err = d.str()
	}
	return err
}

// stat decodes one Stat map at nesting level level into s, which must be
// zero.
func (d *fastDec) stat(s *Stat, level int) error {
	return d.fields(level, statKeys[:], func(f int) (err error) {
		var u uint64
		switch f {
		case 0:
			s.Name, err = d.str()
		case 1:
			u, err = d.uint()
			s.Type = FileType(u)
		case 2:
			s.Size, err = d.int()
		case 3:
			s.Mtime, err = d.int()
		case 4:
			s.Version, err = d.uint()
		case 5:
			s.Checksum, err = d.str()
		}
		return err
	})
}

// stats decodes an array of Stat maps: nil for nil, non-nil when empty, a
// zero Stat for a nil element.
func (d *fastDec) stats() ([]Stat, error) {
	n, err := d.length(true)
	if err != nil || n < 0 {
		return nil, err
	}
	// The shortest Stat a server writes takes over 32 bytes.
	out := make([]Stat, 0, d.capHint(n, 32))
	for range n {
		out = append(out, Stat{})
		if d.nilNext() {
			continue
		}
		if err := d.stat(&out[len(out)-1], 3); err != nil {
			return nil, err
		}
	}
	return out, nil
}
