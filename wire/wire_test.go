package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func TestRequestRoundTrip(t *testing.T) {
	reqs := []*Request{
		{ID: 1, Op: OpHello, Hello: &Hello{Version: ProtocolVersion, Client: "t", Token: "x", Session: 9}},
		{ID: 2, Op: OpPut, Path: "/a/b", Data: []byte("hello"), Flags: FlagParents, Session: 7, Seq: 3, Table: 4, TimeoutMs: 1500},
		{ID: 1 << 60, Op: OpList, Path: "/"},
		{ID: 3, Op: OpRaft, Data: bytes.Repeat([]byte{0xff}, 1000)},
	}
	var stream []byte
	for _, r := range reqs {
		var err error
		if stream, err = AppendEncode(stream, r); err != nil {
			t.Fatal(err)
		}
	}
	// Read back through a reader that returns one byte at a time: partial
	// reads must not matter.
	fr := NewFrameReader(iotest.OneByteReader(bytes.NewReader(stream)), 0)
	for i, want := range reqs {
		p, err := fr.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		got, err := DecodeRequest(p)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("frame %d: got %+v, want %+v", i, got, want)
		}
	}
	if _, err := fr.Next(); err != io.EOF {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}
}

func TestResponseRoundTrip(t *testing.T) {
	want := &Response{ID: 5, Code: NotLeader, Message: "m", Leader: "127.0.0.1:1",
		Stat:    &Stat{Name: "a", Type: TypeFile, Size: 3, Mtime: 42, Version: 7, Checksum: "sha256:00"},
		Entries: []Stat{{Name: "x", Type: TypeDir}},
		Status: &Status{Version: 3, Clusters: []ClusterStatus{{ID: "c1", Range: Range{Start: 1 << 63},
			Nodes: []NodeStatus{{ID: 1, Role: "leader", Applied: 9, PID: 100}}}}},
	}
	b, err := AppendEncode(nil, want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeResponse(b[HeaderSize:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	var e *Error
	if !errors.As(got.Err(), &e) || e.Code != NotLeader || e.Leader != "127.0.0.1:1" {
		t.Fatalf("Err() = %v", got.Err())
	}
}

func TestFrameLimits(t *testing.T) {
	tests := []struct {
		name  string
		input []byte
		want  error
	}{
		{"4 GiB length prefix", []byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}, ErrFrameTooLarge},
		{"one over the limit", binary.BigEndian.AppendUint32(nil, 1025), ErrFrameTooLarge},
		{"truncated header", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"truncated payload", []byte{0, 0, 0, 10, 1, 2}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := NewFrameReader(bytes.NewReader(tt.input), 1024)
			_, err := fr.Next()
			var fe *FrameError
			if !errors.Is(err, tt.want) || !errors.As(err, &fe) {
				t.Fatalf("Next() = %v, want %v inside a *FrameError", err, tt.want)
			}
			if fe.Offset != 0 {
				t.Fatalf("offset %d, want 0", fe.Offset)
			}
		})
	}
}

func TestDecodeGarbage(t *testing.T) {
	for _, in := range [][]byte{nil, {0xc1}, []byte("GET / HTTP/1.1\r\n"), {0x81, 0xa2, 'o', 'p', 0x00}, {0x80},
		{0x81, 0xa7, 'e', 'n', 't', 'r', 'i', 'e', 's', 0xdd, 0x7f, 0xff, 0xff, 0xff}, // 2G-element slice
		append(bytes.Repeat([]byte{0x91}, 40), 0xc0),                                  // 40 levels deep
	} {
		if _, err := DecodeRequest(in); !errors.Is(err, ErrDecode) {
			t.Errorf("DecodeRequest(%q) = %v, want ErrDecode", in, err)
		}
	}
}

func TestCodes(t *testing.T) {
	for _, c := range Codes() {
		got, ok := ParseCode(c.String())
		if !ok || got != c {
			t.Errorf("ParseCode(%q) = %v, %v", c.String(), got, ok)
		}
		if strings.HasPrefix(c.String(), "CODE_") {
			t.Errorf("code %d has no name", c)
		}
	}
	if NotLeader.String() != "NOT_LEADER" || Internal != 16 {
		t.Fatal("code numbering changed; it is part of the protocol")
	}
}

func TestRangeJSON(t *testing.T) {
	for _, r := range []Range{{0, 0}, {1 << 63, 0}, {0, 1 << 63}, {5, 6}} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var got Range
		if err := json.Unmarshal(b, &got); err != nil || got != r {
			t.Fatalf("%s: got %v, %v", b, got, err)
		}
	}
	b, _ := json.Marshal(Range{Start: 1 << 63})
	if string(b) != `{"start":9223372036854775808,"end":18446744073709551616}` {
		t.Fatalf("top range JSON = %s", b)
	}
	if !(Range{Start: 10, End: 0}).Contains(^uint64(0)) || (Range{Start: 10, End: 20}).Contains(20) {
		t.Fatal("Contains wrong at the edges")
	}
}

// FuzzDecodeRequest feeds arbitrary frames to the decoders: they must return
// an error or a message that re-encodes, and never panic.
func FuzzDecodeRequest(f *testing.F) {
	seed := func(v any) {
		b, err := AppendEncode(nil, v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[HeaderSize:])
	}
	seed(&Request{ID: 1, Op: OpHello, Hello: &Hello{Version: 1, Client: "c"}})
	seed(&Request{ID: 2, Op: OpPut, Path: "/a/b", Data: []byte("x"), Flags: FlagParents, Session: 1, Seq: 2})
	seed(&Response{ID: 3, Code: NotFound, Message: "no", Entries: []Stat{{Name: "a"}}})
	// Every nested message type, so the fuzzer starts from each shape.
	seed(&Request{ID: 4, Op: OpSnapshot, Group: "c1", Epoch: 2, Data: []byte("kv"), Snap: &SnapChunk{ID: 1, From: 2, To: 3, Offset: 9, Raft: []byte{8, 7}, Done: true, CRC: 5}})
	seed(&Request{ID: 5, Op: OpSplit, Cluster: "c1", Split: &SplitSpec{Cluster: "c1", NewCluster: "c2", Nodes: []Member{{ID: 4, Addr: "h:1"}}, At: 1 << 62}, Member: &Member{ID: 9, Addr: "h:9"}})
	seed(&Response{ID: 6, Hello: &HelloReply{Server: "s", Versions: []uint32{1}}, Stat: &Stat{Name: "f", Size: 3}, Split: &SplitStatus{ID: 1, Phase: SplitCommitted, Range: Range{Start: 1, End: 2}}})
	seed(&Response{ID: 7, Node: &NodeStatus{ID: 1, Roots: []RootUsage{{Name: "r"}}, Members: []MemberStatus{{ID: 1, Voter: true}}},
		Status: &Status{Routers: []RouterStatus{{ID: "r"}}, Clusters: []ClusterStatus{{ID: "c1", Nodes: []NodeStatus{{ID: 2}}}}, Splits: []SplitStatus{{ID: 2}}},
		Routes: &TableInfo{Version: 3, Ranges: []RangeOwner{{Cluster: "c1"}}, Clusters: []ClusterInfo{{ID: "c1", Members: []Member{{ID: 1}}}}},
		Router: &RouterStatus{ID: "r", Leader: true}})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}) // array claiming 4G elements
	f.Add([]byte{0xc6, 0x7f, 0xff, 0xff, 0xff}) // bin claiming 2G bytes
	f.Add([]byte{0x81, 0xa4, 'd', 'a', 't', 'a', 0xc6, 0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, payload []byte) {
		if req, err := DecodeRequest(payload); err == nil {
			if _, err := AppendEncode(nil, req); err != nil {
				t.Fatalf("decoded request does not re-encode: %v", err)
			}
		}
		if resp, err := DecodeResponse(payload); err == nil {
			if _, err := AppendEncode(nil, resp); err != nil {
				t.Fatalf("decoded response does not re-encode: %v", err)
			}
		}
	})
}

func BenchmarkEncodeDecodeRequest(b *testing.B) {
	req := &Request{ID: 1, Op: OpPut, Path: "/photos/2024/a.jpg", Data: make([]byte, 1024), Session: 1, Seq: 1, Table: 1, TimeoutMs: 1000}
	var buf []byte
	b.ReportAllocs()
	b.SetBytes(1024)
	for b.Loop() {
		buf, _ = AppendEncode(buf[:0], req)
		if _, err := DecodeRequest(buf[HeaderSize:]); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzFrameStream feeds an arbitrary byte stream to the frame reader and
// decodes every frame it yields, as a connection does: the reader never
// returns a payload over its limit, its offsets only grow, and neither it
// nor the decoders panic.
func FuzzFrameStream(f *testing.F) {
	one, err := AppendEncode(nil, &Request{ID: 1, Op: OpHello, Hello: &Hello{Version: 1}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append(append([]byte{}, one...), one...))
	f.Add([]byte{0x00, 0x80, 0x00, 0x00, 0x01})      // a header announcing 8 MiB
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})            // 4 GiB
	f.Add(append([]byte{0, 0, 0, 2}, 0x81))          // cut inside a frame
	f.Add(append(AppendFrame(nil, nil), one[:3]...)) // empty frame, then a cut header
	const max = 1 << 10
	f.Fuzz(func(t *testing.T, stream []byte) {
		fr := NewFrameReader(bytes.NewReader(stream), max)
		for range 64 {
			before := fr.Offset()
			payload, err := fr.Next()
			if err != nil {
				return
			}
			if len(payload) > max || fr.Offset() != before+HeaderSize+int64(len(payload)) {
				t.Fatalf("frame of %d bytes (limit %d), offset %d → %d", len(payload), max, before, fr.Offset())
			}
			DecodeRequest(payload)
			DecodeResponse(payload)
		}
	})
}

// TestFileOp: the requests one cluster answers by itself, which routers
// forward and direct clients send straight to the cluster.
func TestFileOp(t *testing.T) {
	for _, c := range []struct {
		req  Request
		want bool
	}{
		{Request{Op: OpGet, Path: "/a/b"}, true},
		{Request{Op: OpPut, Path: "/a"}, true},
		{Request{Op: OpRename, Path: "/a/b", To: "/a/c"}, true},
		{Request{Op: OpCopy, Path: "/a/b", To: "/a"}, true},
		{Request{Op: OpRename, Path: "/a/b", To: "/z/c"}, false}, // across roots
		{Request{Op: OpRename, Path: "/a/b", To: "/"}, false},
		{Request{Op: OpCopy, Path: "/a/b", To: "a/c"}, false}, // invalid destination
		{Request{Op: OpList, Path: "/"}, false},               // every cluster's roots
		{Request{Op: OpGet, Path: "no-slash"}, false},
		{Request{Op: OpStatus}, false},
		{Request{Op: OpTable}, false},
	} {
		if got := c.req.FileOp(); got != c.want {
			t.Errorf("%v %q -> %q: FileOp() = %v, want %v", c.req.Op, c.req.Path, c.req.To, got, c.want)
		}
	}
}
