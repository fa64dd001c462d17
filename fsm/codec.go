package fsm

// Hand-written codec of Command, the payload of every log entry, and of
// the stored records Apply reads on every put (the file entry, a chunk's
// metadata) and the session result it writes.
//
// The encoders write exactly the bytes msgpack's reflection encoder
// writes for the struct (records.go describes the forms). The decoders
// read those forms, and only those: any other form (a compact integer, a
// string sent as bytes, a nil, an empty array, a field twice, an unknown
// field, trailing bytes, anything malformed) makes them return errSlow,
// and the caller decodes the input again by reflection, whose answer,
// value or error, is then the answer. So a decoder gives what the
// reflection decoder gives on every input (codec_test.go and
// FuzzDecodeCommandMatchesReflection compare them). Every length is
// checked against the bytes left before anything is allocated for it.

import (
	"errors"
	"fmt"

	"github.com/cleavefs/cleave/wire"
)

// errSlow says a fast decoder left its input to the reflection decoder.
var errSlow = errors.New("fsm: input left to the reflection decoder")

// appendCommand appends c's msgpack map to b.
func appendCommand(b []byte, c *Command) []byte {
	b = appendMapLen(b, 1+count(c.Path != "", len(c.Data) > 0, c.Flags != 0, c.Time != 0, c.Clock != 0,
		c.Session != 0, c.Seq != 0, c.To != "", c.Offset != 0, c.IfVersion != 0, len(c.Chunks) > 0, c.Size != 0,
		c.Base != nil, len(c.Blocks) > 0, c.Length != 0, c.ChunkSize != 0, c.SessionTTL != 0, c.ChunkTTL != 0, c.InlineSize != 0))
	b = append(appendStr(b, "op"), 0xcc, byte(c.Op))
	b = strField(b, "path", c.Path)
	if len(c.Data) > 0 {
		b = appendBin(appendStr(b, "data"), c.Data)
	}
	if c.Flags != 0 {
		f := uint32(c.Flags)
		b = append(appendStr(b, "flags"), 0xce, byte(f>>24), byte(f>>16), byte(f>>8), byte(f))
	}
	b = int64Field(b, "time", c.Time)
	b = int64Field(b, "clock", c.Clock)
	b = uint64Field(b, "session", c.Session)
	b = uint64Field(b, "seq", c.Seq)
	b = strField(b, "to", c.To)
	b = int64Field(b, "offset", c.Offset)
	b = uint64Field(b, "if_version", c.IfVersion)
	if len(c.Chunks) > 0 {
		b = appendArrayLen(appendStr(b, "chunks"), len(c.Chunks))
		for _, s := range c.Chunks {
			b = appendStr(b, s)
		}
	}
	b = int64Field(b, "size", c.Size)
	if w := c.Base; w != nil {
		b = appendMapLen(appendStr(b, "base"), count(w.Type != 0, w.Version != 0, w.Size != 0))
		if w.Type != 0 {
			b = append(appendStr(b, "t"), 0xcc, byte(w.Type))
		}
		b = int64Field(uint64Field(b, "v", w.Version), "s", w.Size)
	}
	if len(c.Blocks) > 0 {
		b = appendArrayLen(appendStr(b, "blocks"), len(c.Blocks))
		for _, k := range c.Blocks {
			b = appendInt64(append(b, 0x82, 0xa1, 'i'), k.I)
			if b = append(b, 0xa1, 'd'); k.Data == nil {
				b = append(b, 0xc0)
			} else {
				b = appendBin(b, k.Data)
			}
		}
	}
	b = int64Field(b, "length", c.Length)
	b = int64Field(b, "chunk_size", c.ChunkSize)
	b = int64Field(b, "session_ttl", c.SessionTTL)
	b = int64Field(b, "chunk_ttl", c.ChunkTTL)
	return int64Field(b, "inline_size", c.InlineSize)
}

// encodeResult returns r's stored form (session.go).
func encodeResult(r *Result) []byte {
	n := 16 + len(r.Message) + len(r.Chunk)
	if r.Stat != nil {
		n += 64 + len(r.Stat.Name) + len(r.Stat.Checksum)
	}
	b := make([]byte, 0, n)
	b = append(b, 0x80|byte(count(r.Code != 0, r.Message != "", r.Stat != nil, r.Chunk != "")))
	if r.Code != 0 {
		b = append(b, 0xa1, 'c', 0xcc, byte(r.Code))
	}
	b = strField(b, "m", r.Message)
	if s := r.Stat; s != nil {
		b = append(b, 0xa1, 's', 0x80|byte(count(true, true, true, true, true, s.Checksum != "")))
		b = appendStr(appendStr(b, "name"), s.Name)
		b = append(appendStr(b, "type"), 0xcc, byte(s.Type))
		b = appendInt64(appendStr(b, "size"), s.Size)
		b = appendInt64(appendStr(b, "mtime"), s.Mtime)
		b = appendUint64(appendStr(b, "version"), s.Version)
		b = strField(b, "checksum", s.Checksum)
	}
	return strField(b, "k", r.Chunk)
}

var commandKeys = [...]string{"op", "path", "data", "flags", "time", "clock", "session", "seq", "to",
	"offset", "if_version", "chunks", "size", "base", "blocks", "length", "chunk_size", "session_ttl", "chunk_ttl", "inline_size"}

// decodeCommandFast decodes the msgpack map p (after the version byte)
// into c, which must be zero; errSlow when p is left to the reflection
// decoder. With alias, c's byte slices point into p.
func decodeCommandFast(p []byte, c *Command, alias bool) error {
	d := fastDec{p: p, alias: alias}
	return d.message(commandKeys[:], func(f int) error { return d.commandField(c, f) })
}

func (d *fastDec) commandField(c *Command, f int) (err error) {
	switch commandKeys[f] {
	case "op":
		var v uint64
		v, err = d.fixed(0xcc, 1)
		c.Op = wire.Op(v)
	case "path":
		c.Path, err = d.str()
	case "data":
		c.Data, err = d.bin()
	case "flags":
		var v uint64
		v, err = d.fixed(0xce, 4)
		c.Flags = wire.Flags(v)
	case "time":
		c.Time, err = d.i64()
	case "clock":
		c.Clock, err = d.i64()
	case "session":
		c.Session, err = d.fixed(0xcf, 8)
	case "seq":
		c.Seq, err = d.fixed(0xcf, 8)
	case "to":
		c.To, err = d.str()
	case "offset":
		c.Offset, err = d.i64()
	case "if_version":
		c.IfVersion, err = d.fixed(0xcf, 8)
	case "chunks":
		c.Chunks, err = d.strs()
	case "size":
		c.Size, err = d.i64()
	case "base":
		c.Base = &WriteBase{}
		err = d.writeBase(c.Base)
	case "blocks":
		c.Blocks, err = d.blocks()
	case "length":
		c.Length, err = d.i64()
	case "chunk_size":
		c.ChunkSize, err = d.i64()
	case "session_ttl":
		c.SessionTTL, err = d.i64()
	case "chunk_ttl":
		c.ChunkTTL, err = d.i64()
	case "inline_size":
		c.InlineSize, err = d.i64()
	}
	return err
}

var writeBaseKeys = [...]string{"t", "v", "s"}

func (d *fastDec) writeBase(w *WriteBase) error {
	return d.fields(writeBaseKeys[:], func(f int) (err error) {
		switch f {
		case 0:
			var v uint64
			v, err = d.fixed(0xcc, 1)
			w.Type = wire.FileType(v)
		case 1:
			w.Version, err = d.fixed(0xcf, 8)
		case 2:
			w.Size, err = d.i64()
		}
		return err
	})
}

var blockKeys = [...]string{"i", "d"}

// blocks decodes a non-empty array of Block maps.
func (d *fastDec) blocks() ([]Block, error) {
	n, err := d.length(0x90, 0xdc)
	if err != nil {
		return nil, err
	}
	out := make([]Block, 0, d.capHint(n, 1))
	for range n {
		var k Block
		err := d.fields(blockKeys[:], func(f int) (err error) {
			if f == 0 {
				k.I, err = d.i64()
			} else if !d.nilNext() {
				k.Data, err = d.bin()
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// strs decodes a non-empty array of strings.
func (d *fastDec) strs() ([]string, error) {
	n, err := d.length(0x90, 0xdc)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, d.capHint(n, 1))
	for range n {
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

var entryKeys = [...]string{"t", "s", "m", "v", "c", "b", "a", "d"}

// decodeEntryFast decodes a stored entry record into e, which must be
// zero; errSlow when p is left to the reflection decoder.
func decodeEntryFast(p []byte, e *entry) error {
	d := fastDec{p: p}
	return d.message(entryKeys[:], func(f int) (err error) {
		switch f {
		case 0:
			var v uint64
			v, err = d.fixed(0xcc, 1)
			e.Type = wire.FileType(v)
		case 1:
			e.Size, err = d.i64()
		case 2:
			e.Mtime, err = d.i64()
		case 3:
			e.Version, err = d.fixed(0xcf, 8)
		case 4:
			e.Checksum, err = d.str()
		case 5:
			e.Block, err = d.i64()
		case 6:
			e.Sum, err = d.bin()
		case 7:
			e.Data, err = d.bin()
		}
		return err
	})
}

var chunkMetaKeys = [...]string{"r", "t", "s", "l", "h", "u"}

// decodeChunkMetaFast decodes a stored chunk metadata record into m,
// which must be zero; errSlow when p is left to the reflection decoder.
func decodeChunkMetaFast(p []byte, m *chunkMeta) error {
	d := fastDec{p: p}
	return d.message(chunkMetaKeys[:], func(f int) (err error) {
		switch f {
		case 0, 1, 2:
			*[...]*int64{&m.Refs, &m.Touched, &m.Size}[f], err = d.i64()
		case 3:
			m.Lo, err = d.fixed(0xcf, 8)
		case 4:
			m.Hi, err = d.fixed(0xcf, 8)
		case 5:
			m.Hull, err = d.boolean()
		}
		return err
	})
}

// boolean reads true or false.
func (d *fastDec) boolean() (bool, error) {
	if d.off >= len(d.p) || d.p[d.off]&0xfe != 0xc2 {
		return false, errSlow
	}
	d.off++
	return d.p[d.off-1] == 0xc3, nil
}

// fastDec is a cursor over one msgpack value.
type fastDec struct {
	p     []byte
	off   int
	alias bool // byte strings point into p instead of being copied
}

// fixed reads the integer form code followed by n big-endian bytes.
func (d *fastDec) fixed(code byte, n int) (uint64, error) {
	if d.off >= len(d.p) || d.p[d.off] != code {
		return 0, errSlow
	}
	d.off++
	return d.be(n)
}

// be reads n big-endian bytes.
func (d *fastDec) be(n int) (uint64, error) {
	if n > len(d.p)-d.off {
		return 0, errSlow
	}
	var v uint64
	for _, x := range d.p[d.off : d.off+n] {
		v = v<<8 | uint64(x)
	}
	d.off += n
	return v, nil
}

func (d *fastDec) i64() (int64, error) {
	v, err := d.fixed(0xd3, 8)
	return int64(v), err
}

// length reads a map (fix 0x80, c16 0xde) or array (0x90, 0xdc) header.
// An empty array is left to the reflection decoder (which gives an empty
// slice, where omitempty never writes one). Every element takes at least
// a byte, so a longer claim than the bytes left is malformed.
func (d *fastDec) length(fix, c16 byte) (int, error) {
	if d.off >= len(d.p) {
		return 0, errSlow
	}
	c := d.p[d.off]
	d.off++
	var n uint64
	var err error
	switch {
	case c >= fix && c <= fix|0x0f:
		n = uint64(c & 0x0f)
	case c == c16:
		n, err = d.be(2)
	case c == c16+1:
		n, err = d.be(4)
	default:
		return 0, errSlow
	}
	if err != nil || n == 0 && fix == 0x90 || n > uint64(len(d.p)-d.off) {
		return 0, errSlow
	}
	return int(n), nil
}

// capHint is how many elements of at least minBytes bytes the rest of the
// input can hold, at most n: a declared length alone never sizes an
// allocation.
func (d *fastDec) capHint(n, minBytes int) int {
	return min(n, (len(d.p)-d.off)/minBytes+1)
}

// raw reads a string (str: true) or byte string of n bytes and returns
// them, aliasing the input.
func (d *fastDec) raw(str bool) ([]byte, error) {
	if d.off >= len(d.p) {
		return nil, errSlow
	}
	c := d.p[d.off]
	code8 := byte(0xc4)
	if str {
		code8 = 0xd9
	}
	d.off++
	var n uint64
	var err error
	switch {
	case str && c >= 0xa0 && c <= 0xbf:
		n = uint64(c & 0x1f)
	case c >= code8 && c <= code8+2:
		n, err = d.be(1 << (c - code8))
	default:
		return nil, errSlow
	}
	if err != nil || n > uint64(len(d.p)-d.off) {
		return nil, errSlow
	}
	b := d.p[d.off : d.off+int(n)]
	d.off += int(n)
	return b, nil
}

func (d *fastDec) str() (string, error) {
	b, err := d.raw(true)
	return string(b), err
}

// bin reads a byte string and returns a copy (unless d.alias), empty but
// not nil for an empty one (as the reflection decoder does).
func (d *fastDec) bin() ([]byte, error) {
	b, err := d.raw(false)
	if err != nil || d.alias {
		return b, err
	}
	return append([]byte{}, b...), nil
}

// nilNext reports, and steps over, a nil as the next value.
func (d *fastDec) nilNext() bool {
	if d.off < len(d.p) && d.p[d.off] == 0xc0 {
		d.off++
		return true
	}
	return false
}

// fields reads a non-empty map whose keys are in keys (at most 64) and
// calls one with the index of each; an unknown key or one that comes
// twice is left to the reflection decoder.
func (d *fastDec) fields(keys []string, one func(f int) error) error {
	n, err := d.length(0x80, 0xde)
	if err != nil {
		return err
	}
	var seen uint64
	for range n {
		k, err := d.raw(true)
		if err != nil {
			return err
		}
		f := keyIndex(keys, k)
		if f < 0 || seen&(1<<f) != 0 {
			return errSlow
		}
		seen |= 1 << f
		if err := one(f); err != nil {
			return err
		}
	}
	return nil
}

// message decodes the whole input as one map (see fields).
func (d *fastDec) message(keys []string, one func(f int) error) error {
	if err := d.fields(keys, one); err != nil {
		return err
	}
	if d.off != len(d.p) {
		return errSlow
	}
	return nil
}

func keyIndex(keys []string, k []byte) int {
	for i, name := range keys {
		if name == string(k) {
			return i
		}
	}
	return -1
}

// checkShape checks the first msgpack value in p before the reflection
// decoder reads it: every declared length (of a string, byte string,
// extension, array or map) must fit in the bytes left, so no length alone
// sizes an allocation (the reflection decoder makes an array's slice
// before reading its elements), and 0xc1 never appears. It walks the
// value without recursion. An error names the offset of the problem,
// counting base bytes before p.
func checkShape(p []byte, base int) error {
	d := fastDec{p: p}
	for pending := 1; pending > 0; pending-- {
		if pending > len(p)-d.off {
			return fmt.Errorf("%d values declared at offset %d, but only %d bytes left", pending, base+d.off, len(p)-d.off)
		}
		start := d.off
		c := p[d.off]
		d.off++
		n, elems, err := d.shapeOf(c)
		if err != nil {
			return fmt.Errorf("value at offset %d: %w", base+start, err)
		}
		if n > uint64(len(p)-d.off) {
			return fmt.Errorf("value at offset %d declares %d bytes, but only %d are left", base+start, n, len(p)-d.off)
		}
		d.off += int(n)
		pending += elems
	}
	return nil
}

// shapeOf reads what follows code c of a value: the number of bytes of
// its body and of the values (array elements, map keys and values) that
// come after it.
func (d *fastDec) shapeOf(c byte) (n uint64, elems int, err error) {
	var v uint64
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return 0, 0, nil
	case c <= 0x8f:
		return 0, 2 * int(c&0x0f), nil
	case c <= 0x9f:
		return 0, int(c & 0x0f), nil
	case c <= 0xbf:
		return uint64(c & 0x1f), 0, nil
	case c == 0xc1:
		return 0, 0, errors.New("code 0xc1 is never used")
	case c <= 0xc6: // bin 8, 16, 32
		v, err = d.be(1 << (c - 0xc4))
		return v, 0, err
	case c <= 0xc9: // ext 8, 16, 32: the length, then a type byte
		v, err = d.be(1 << (c - 0xc7))
		return v + 1, 0, err
	case c == 0xca || c == 0xcb:
		return 4 << (c - 0xca), 0, nil
	case c <= 0xcf:
		return 1 << (c - 0xcc), 0, nil
	case c <= 0xd3:
		return 1 << (c - 0xd0), 0, nil
	case c <= 0xd8: // fixext 1 to 16, after a type byte
		return 1 + 1<<(c-0xd4), 0, nil
	case c <= 0xdb: // str 8, 16, 32
		v, err = d.be(1 << (c - 0xd9))
		return v, 0, err
	case c <= 0xdd: // array 16, 32
		v, err = d.be(2 << (c - 0xdc))
	default: // map 16, 32
		v, err = d.be(2 << (c - 0xde))
		v *= 2
	}
	if err != nil || v > uint64(len(d.p)-d.off) {
		return 0, 0, fmt.Errorf("declares %d values, but only %d bytes are left", v, len(d.p)-d.off)
	}
	return 0, int(v), nil
}
