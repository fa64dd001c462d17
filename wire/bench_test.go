package wire

import (
	"bytes"
	"strings"
	"testing"
)

// benchMessages are the requests and responses of a 1 KiB put and a 1 KiB
// get, as a router and a node exchange them under load.
func benchMessages() []struct {
	name string
	msg  any
} {
	data := bytes.Repeat([]byte("0123456789abcdef"), 64)
	stat := &Stat{Name: "k000042", Type: TypeFile, Size: 1024, Mtime: 1_764_000_000_000_000_000, Version: 123_456,
		Checksum: "sha256:" + strings.Repeat("ab", 32)}
	return []struct {
		name string
		msg  any
	}{
		{"put-request", &Request{ID: 70_001, Op: OpPut, Path: "/bench/k000042", Data: data, Session: 1 << 40, Seq: 9_001, Table: 3, TimeoutMs: 10_000}},
		{"put-response", &Response{ID: 70_001, Code: OK, Stat: stat}},
		{"get-request", &Request{ID: 70_002, Op: OpGet, Path: "/bench/k000042", Table: 3, TimeoutMs: 10_000}},
		{"get-response", &Response{ID: 70_002, Code: OK, Data: data, Stat: stat}},
	}
}

// BenchmarkCodec measures encoding a frame into a reused buffer and
// decoding its payload, separately, for the hot messages.
func BenchmarkCodec(b *testing.B) {
	for _, m := range benchMessages() {
		frame, err := AppendEncode(nil, m.msg)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(m.name+"/encode", func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if buf, err = AppendEncode(buf[:0], m.msg); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(m.name+"/decode", func(b *testing.B) {
			payload := frame[HeaderSize:]
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				var err error
				if _, ok := m.msg.(*Request); ok {
					_, err = DecodeRequest(payload)
				} else {
					_, err = DecodeResponse(payload)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
