package wire

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// The reference codec: msgpack's reflection encoder and decoder as the
// wire package used them before it encoded its hot messages by hand. Every
// test below holds the package's codec to the bytes, values and errors of
// this one.

func refEncode(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	e.UseCompactInts(true)
	if err := e.Encode(v); err != nil {
		t.Fatalf("reference encode %T: %v", v, err)
	}
	return AppendFrame(nil, buf.Bytes())
}

func refDecode(payload []byte, v any, what string) error {
	if err := checkShape(payload); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDecode, what, err)
	}
	r := bytes.NewReader(payload)
	err := msgpack.NewDecoder(r).Decode(v)
	consumed := len(payload) - r.Len()
	if err != nil {
		return fmt.Errorf("%w: %s near byte %d of %d: %v", ErrDecode, what, consumed, len(payload), err)
	}
	if consumed != len(payload) {
		return fmt.Errorf("%w: %s: %d trailing bytes after byte %d", ErrDecode, what, len(payload)-consumed, consumed)
	}
	return nil
}

func refDecodeRequest(payload []byte) (*Request, error) {
	req := new(Request)
	if err := refDecode(payload, req, "request"); err != nil {
		return nil, err
	}
	if req.Op == 0 {
		return nil, fmt.Errorf("%w: request %d has no op", ErrDecode, req.ID)
	}
	return req, nil
}

func refDecodeResponse(payload []byte) (*Response, error) {
	resp := new(Response)
	if err := refDecode(payload, resp, "response"); err != nil {
		return nil, err
	}
	return resp, nil
}

// sameOutcome fails unless both decoders gave equal values, or both failed
// with the same message.
func sameOutcome(t *testing.T, what string, payload []byte, got, want any, gotErr, wantErr error) {
	t.Helper()
	if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
		t.Fatalf("%s %x: error %v, reference %v", what, payload, gotErr, wantErr)
	}
	if gotErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%s %x:\n got       %+v\n reference %+v", what, payload, got, want)
	}
}

// checkCompat encodes msg with both codecs and decodes each encoding with
// both: the bytes must be the same and all four decodes equal.
func checkCompat(t *testing.T, msg any) {
	t.Helper()
	frame, err := AppendEncode(nil, msg)
	if err != nil {
		t.Fatalf("encode %+v: %v", msg, err)
	}
	ref := refEncode(t, msg)
	if !bytes.Equal(frame, ref) {
		t.Fatalf("encoding of %+v:\n got       %x\n reference %x", msg, frame, ref)
	}
	p := frame[HeaderSize:]
	switch msg.(type) {
	case *Request:
		got, gotErr := DecodeRequest(p)
		want, wantErr := refDecodeRequest(p)
		sameOutcome(t, "request", p, got, want, gotErr, wantErr)
		if wantErr == nil && decodeRequestFast(p, new(Request), false) != nil {
			t.Fatalf("the fast decoder left its own encoding %x to reflection", p)
		}
	case *Response:
		got, gotErr := DecodeResponse(p)
		want, wantErr := refDecodeResponse(p)
		sameOutcome(t, "response", p, got, want, gotErr, wantErr)
		if msg.(*Response) != nil && decodeResponseFast(p, new(Response)) != nil {
			t.Fatalf("the fast decoder left its own encoding %x to reflection", p)
		}
	}
}

// filler sets random values, each left zero a third of the time, with the
// edge values of every integer width and string length form.
type filler struct{ r *rand.Rand }

var edgeUints = []uint64{0, 1, 31, 127, 128, 255, 256, math.MaxUint16, math.MaxUint16 + 1,
	math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64, math.MaxUint64}

func (f filler) uint() uint64 {
	if f.r.IntN(2) == 0 {
		return edgeUints[f.r.IntN(len(edgeUints))]
	}
	return f.r.Uint64() >> f.r.IntN(64)
}

func (f filler) str(depth int) string {
	n := [...]int{0, 1, 5, 31, 32, 255, 256, 300, math.MaxUint16, math.MaxUint16 + 1}[f.r.IntN(10)]
	if depth > 1 || f.r.IntN(3) > 0 {
		n = f.r.IntN(40)
	}
	b := make([]byte, n)
	for i := range min(n, 64) {
		b[i] = byte(f.r.UintN(256)) // not always UTF-8: the codec must not care
	}
	return string(b)
}

func (f filler) fill(v reflect.Value, depth int) {
	if f.r.IntN(3) == 0 {
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		v.SetUint(f.uint())
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		v.SetInt(int64(f.uint()))
	case reflect.String:
		v.SetString(f.str(depth))
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte(f.str(depth)))
			return
		}
		n := f.r.IntN(4)
		if depth < 2 && f.r.IntN(10) == 0 {
			n = 16 + f.r.IntN(5) // past the fixarray form
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			f.fill(s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Ptr:
		if depth < 4 {
			v.Set(reflect.New(v.Type().Elem()))
			f.fill(v.Elem(), depth+1)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f.fill(v.Field(i), depth+1)
		}
	}
}

// TestCodecMatchesReflection holds the hand-written codec to the reference
// on every op with every field set and unset, each field alone, and many
// random messages: the same bytes, and each codec decodes the other's.
func TestCodecMatchesReflection(t *testing.T) {
	f := filler{rand.New(rand.NewPCG(1, 2))}
	for _, m := range benchMessages() {
		checkCompat(t, m.msg)
	}
	checkCompat(t, (*Request)(nil))
	checkCompat(t, (*Response)(nil))
	for op := range Op(70) {
		full := &Request{ID: uint64(op) + 1, Op: op}
		f.fill(reflect.ValueOf(full).Elem(), 0)
		full.ID, full.Op = uint64(op)+1, op
		checkCompat(t, full)
		checkCompat(t, &Request{ID: 1, Op: op})
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[Request](), reflect.TypeFor[Response](), reflect.TypeFor[Stat]()} {
		for i := range typ.NumField() {
			for range 10 {
				v := reflect.New(typ)
				for v.Elem().Field(i).IsZero() {
					f.fill(v.Elem().Field(i), 0)
				}
				if s, ok := v.Interface().(*Stat); ok {
					checkCompat(t, &Response{ID: 1, Stat: s, Entries: []Stat{*s, {}}})
					continue
				}
				checkCompat(t, v.Interface())
			}
		}
	}
	for range 3000 {
		req, resp := new(Request), new(Response)
		f.fill(reflect.ValueOf(req).Elem(), 0)
		f.fill(reflect.ValueOf(resp).Elem(), 0)
		checkCompat(t, req)
		checkCompat(t, resp)
	}
}

// oddPayloads are forms the package's encoder never writes but another
// msgpack library may (or an attacker does): wide integers, str for bin and
// bin for str, nil values, repeated and unknown fields, structs as arrays.
func oddPayloads() [][]byte {
	s := func(x string) string { return string([]byte{0xa0 | byte(len(x))}) + x }
	e := func(k, v string) string { return s(k) + v } // one map entry
	m := func(entries ...string) string {
		return string([]byte{0x80 | byte(len(entries))}) + strings.Join(entries, "")
	}
	id, op := e("id", "\x01"), e("op", "\x03")
	strs := []string{
		m(e("id", "\xcf\x00\x00\x00\x00\x00\x00\x00\x07"), e("op", "\xcc\x03")),
		m(e("id", "\xd3\xff\xff\xff\xff\xff\xff\xff\xff"), e("op", "\xd0\x04")),
		m(id, e("op", "\xcd\x01\x04")),                // op 260: truncated to 4, as reflection does
		m(id, e("op", "\xff")),                        // a negative fixint
		m(id, op, e("flags", "\xd2\xff\xff\xff\xfe")), // negative into a uint32
		m(id, op, e("path", "\xc4\x02/a")),            // bin for a string
		m(id, op, e("data", "\xa3abc")),               // str for bin
		m(id, op, e("data", "\xc4\x00")),              // empty, not nil
		m(id, op, e("data", "\xc0"), e("path", "\xc0"), e("session", "\xc0"), e("to", "\xa0")),
		m(id, op, e("path", s("/a")), e("path", s("/b"))),
		m(id, op, e("chunks", "\x90")),
		m(id, op, e("chunks", "\x92\xa1a\xc0")),
		m(id, op, e("chunks", "\xc0")),
		m(id, op, e("chunks", "\x91\x01")),
		m(id, op, e("unknown", "\x82\xa1a\x91\x80\xa1b\xd4\x01\x02"), e("path", s("/x"))),
		m(id, op, "\xc0\x05", "\xc4\x04path"+s("/y")),  // nil and bin keys
		m(id, op, "\x01\x05"),                          // an integer key
		m(id, op, e("offset", "\xca\x3f\x80\x00\x00")), // a float: reflection refuses
		m(id, op, e("length", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00"), e("size", "\xe0")),
		m(id, op, e("hello", "\x92\x01\xa1c")), // a struct as an array
		m(id, op, e("hello", m(e("version", "\x01"), e("client", s("c"))))),
		m(id, op, e("hello", "\xc0"), e("member", m(e("id", "\x05")))),
		m(id, op, e("snap", "\x01")),
		m(id, op, e("split", m(e("nodes", "\x91"+m(e("id", "\x02")))))),
		m(id, op, e("exists", "\xc3")), // a response field in a request: unknown
		m(id, e("code", "\x01"), e("exists", "\xc3"), e("exists", "\xc2")),
		m(id, e("code", "\xcd\x01\x01"), e("exists", "\xc0")),
		m(id, e("exists", "\x01")),
		m(id, e("stat", "\xc0")),
		m(id, e("stat", "\x80")),
		m(id, e("stat", m(e("name", s("a")), e("type", "\x01"), e("size", "\xd0\xff"), e("zzz", "\x90")))),
		m(id, e("stat", m(e("name", s("a")))), e("stat", m(e("size", "\x03")))),
		m(id, e("stat", m(e("name", s("a")), e("name", s("b"))))),
		m(id, e("stat", "\x95\xa1a\x01\x02\x03\x04")),
		m(id, e("entries", "\x93\xc0\x80"+m(e("name", s("e")), e("version", "\x07")))),
		m(id, e("entries", "\x90")),
		m(id, e("entries", "\xc0")),
		m(id, e("entries", "\x91\x91\x01")),
		m(id, e("entries", "\x91\x80"), e("entries", "\x91"+m(e("name", s("z"))))),
		m(id, e("users", "\x91"+m(e("name", s("u")), e("grants", "\x90")))),
		m(id, e("node", m(e("id", "\x02"), e("roots", "\x90"))), e("routes", "\xc0")),
		m(id, e("status", "\x80"), e("router_info", m(e("leader", "\xc3")))),
		m(id, e("msg", "\x01")),
		m(id, op, e("path", s("/ok")), e("data", "\xc4\x03abc"), e("seq", "\x05")),
		"\xc0", "\x90", "\x80", m(id, op) + "\xc0",
		"\xde\x00\x02" + id + op,
		"\xdf\x00\x00\x00\x01" + op,
	}
	// Every integer form, with its sign bit set, into unsigned and signed
	// fields of each width.
	for _, c := range []string{"\xcc\xff", "\xcd\xff\xfe", "\xce\xff\xff\xff\xfd", "\xcf\xff\xff\xff\xff\xff\xff\xff\xfc",
		"\xd0\xfb", "\xd1\xff\xfa", "\xd2\xff\xff\xff\xf9", "\xd3\xff\xff\xff\xff\xff\xff\xff\xf8", "\xd1\x7f\xf7", "\xe3"} {
		strs = append(strs, m(e("id", c), op, e("offset", c), e("limit", c)), m(id, e("op", c), e("timeout_ms", c)),
			m(e("id", c), e("code", c), e("table", c), e("stat", m(e("type", c), e("size", c), e("version", c)))))
	}
	// Nesting around the limit, in an unknown field of the message and of
	// a stat: levels count from the message (1).
	for _, n := range []int{28, 29, 30, 31, 40} {
		nested := strings.Repeat("\x91", n) + "\xc0"
		strs = append(strs, m(id, op, e("x", nested)), m(id, e("stat", m(e("x", nested)))),
			m(id, e("entries", "\x91"+m(e("x", nested)))), m(id, op, e("hello", m(e("x", nested)))))
	}
	out := make([][]byte, len(strs))
	for i, x := range strs {
		out[i] = []byte(x)
	}
	return out
}

// TestDecodeMatchesReflection checks that both decoders give the same value
// or the same error for the odd forms.
func TestDecodeMatchesReflection(t *testing.T) {
	for _, p := range oddPayloads() {
		checkDecodeOutcome(t, p)
	}
}

func checkDecodeOutcome(t *testing.T, p []byte) {
	t.Helper()
	got, gotErr := DecodeRequest(p)
	want, wantErr := refDecodeRequest(p)
	sameOutcome(t, "request", p, got, want, gotErr, wantErr)
	gotR, gotErr := DecodeResponse(p)
	wantR, wantErr := refDecodeResponse(p)
	sameOutcome(t, "response", p, gotR, wantR, gotErr, wantErr)
}

// FuzzDecodeMatchesReflection: on any payload the decoders give the same
// value or the same error as the reference.
func FuzzDecodeMatchesReflection(f *testing.F) {
	for _, p := range oddPayloads() {
		f.Add(p)
	}
	for _, m := range benchMessages() {
		b, err := AppendEncode(nil, m.msg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[HeaderSize:])
	}
	f.Fuzz(checkDecodeOutcome)
}

// TestEncodeWithoutAllocating checks that the hot messages are encoded
// into a buffer with room without any allocation.
func TestEncodeWithoutAllocating(t *testing.T) {
	for _, m := range benchMessages() {
		buf := make([]byte, 0, 8192)
		allocs := testing.AllocsPerRun(50, func() {
			var err error
			if buf, err = AppendEncode(buf[:0], m.msg); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.0f allocations per encode into a reused buffer, want 0", m.name, allocs)
		}
	}
}

// TestEncodeAppendsFrames checks that frames appended one after another to
// one buffer read back in order, and that a failed encode leaves the
// buffer as it was.
func TestEncodeAppendsFrames(t *testing.T) {
	var buf []byte
	var want []any
	for _, m := range benchMessages() {
		var err error
		if buf, err = AppendEncode(buf, m.msg); err != nil {
			t.Fatal(err)
		}
		want = append(want, m.msg)
	}
	before := len(buf)
	if out, err := AppendEncode(buf, make(chan int)); err == nil || len(out) != before {
		t.Fatalf("encoding a channel: %d bytes, %v; want an error and the buffer unchanged", len(out)-before, err)
	}
	fr := NewFrameReader(bytes.NewReader(buf), 0)
	for i, w := range want {
		p, err := fr.Next()
		if err != nil {
			t.Fatal(err)
		}
		var got any
		if _, ok := w.(*Request); ok {
			got, err = DecodeRequest(p)
		} else {
			got, err = DecodeResponse(p)
		}
		if err != nil || !reflect.DeepEqual(got, w) {
			t.Fatalf("frame %d: %+v, %v; want %+v", i, got, err, w)
		}
	}
}

// TestDecodeForgedLengths checks that a small payload declaring a huge
// string, byte string, array or map is refused having allocated next to
// nothing: no declared length sizes an allocation before its bytes are
// there.
func TestDecodeForgedLengths(t *testing.T) {
	id := "\xa2id\x01\xa2op\x03"
	forged := map[string][]byte{
		"path str32 4 GiB":      []byte("\x83" + id + "\xa4path\xdb\xff\xff\xff\xff/a"),
		"data bin32 2 GiB":      []byte("\x83" + id + "\xa4data\xc6\x7f\xff\xff\xff\x00"),
		"chunks array32 4G":     []byte("\x83" + id + "\xa6chunks\xdd\xff\xff\xff\xff\xa1a"),
		"entries array32 4G":    []byte("\x83" + id + "\xa7entries\xdd\xff\xff\xff\xff\x80"),
		"message map32 4G":      []byte("\xdf\xff\xff\xff\xff" + id),
		"stat map16 64K":        []byte("\x83" + id + "\xa4stat\xde\xff\xff\xa4name"),
		"hello str in map 64 K": []byte("\x83" + id + "\xa5hello\x81\xa6client\xda\xff\xff"),
	}
	for name, p := range forged {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, errReq := DecodeRequest(p)
			_, errResp := DecodeResponse(p)
			runtime.ReadMemStats(&after)
			if errReq == nil || errResp == nil || !strings.Contains(errReq.Error(), "exceeds") {
				t.Fatalf("decoded a forged length: %v / %v", errReq, errResp)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
				t.Fatalf("allocated %d bytes refusing a %d-byte payload", got, len(p))
			}
		})
	}
}

// TestDecodeAllocatesOnlyTheMessage checks that decoding a hot message
// allocates the message and its strings, byte slices and stat, nothing
// else (the payload is reused by the caller, so they are copies).
func TestDecodeAllocatesOnlyTheMessage(t *testing.T) {
	want := map[string]float64{
		"put-request":  3, // request, path, data
		"put-response": 4, // response, stat, name, checksum
		"get-request":  2, // request, path
		"get-response": 5, // response, data, stat, name, checksum
	}
	for _, m := range benchMessages() {
		frame, err := AppendEncode(nil, m.msg)
		if err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(50, func() {
			if _, ok := m.msg.(*Request); ok {
				_, err = DecodeRequest(frame[HeaderSize:])
			} else {
				_, err = DecodeResponse(frame[HeaderSize:])
			}
			if err != nil {
				t.Fatal(err)
			}
		})
		if allocs != want[m.name] {
			t.Errorf("%s: %.0f allocations per decode, want %.0f", m.name, allocs, want[m.name])
		}
	}
}

// TestKeysFollowStructTags checks that the hand-written decoder knows the
// fields of each hot message by their msgpack names in struct order, and
// that each has fewer than 64 (one bit of a mask each). A field added to
// a struct but not to the codec fails this and TestCodecMatchesReflection.
func TestKeysFollowStructTags(t *testing.T) {
	for _, c := range []struct {
		typ  reflect.Type
		keys []string
	}{{reflect.TypeFor[Request](), requestKeys[:]}, {reflect.TypeFor[Response](), responseKeys[:]}, {reflect.TypeFor[Stat](), statKeys[:]}} {
		var tags []string
		for i := range c.typ.NumField() {
			name, _, _ := strings.Cut(c.typ.Field(i).Tag.Get("msgpack"), ",")
			tags = append(tags, name)
		}
		if !reflect.DeepEqual(tags, c.keys) || len(tags) >= 64 {
			t.Errorf("%v: msgpack names %q, the decoder knows %q", c.typ, tags, c.keys)
		}
	}
}

// DecodeRequestSharing leaves a one-way request's Data in the payload, and
// copies every other request's, as DecodeRequest copies all: overwriting
// the payload after decoding changes only the one-way request.
func TestDecodeRequestSharing(t *testing.T) {
	for _, c := range []struct {
		req    *Request
		shared bool
	}{
		{&Request{ID: 1, Op: OpRaft, Data: []byte("raft message"), Group: "c1", Epoch: 2}, true},
		{&Request{ID: 2, Op: OpPut, Path: "/a/f", Data: []byte("file contents")}, false},
	} {
		payload, err := Marshal(c.req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRequestSharing(payload)
		if err != nil {
			t.Fatalf("%v: %v", c.req.Op, err)
		}
		copied, err := DecodeRequest(payload)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Data, c.req.Data) || got.Op != c.req.Op || got.Path != c.req.Path || got.Group != c.req.Group {
			t.Fatalf("%v decoded as %+v, want %+v", c.req.Op, got, c.req)
		}
		clear(payload)
		if changed := !bytes.Equal(got.Data, c.req.Data); changed != c.shared {
			t.Errorf("%v: Data changed with the payload: %v, want %v", c.req.Op, changed, c.shared)
		}
		if !bytes.Equal(copied.Data, c.req.Data) {
			t.Errorf("%v: DecodeRequest's Data changed with the payload", c.req.Op)
		}
		if got.Path != c.req.Path || got.Group != c.req.Group {
			t.Errorf("%v: strings changed with the payload: %+v", c.req.Op, got)
		}
	}
}
