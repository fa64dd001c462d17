package fsm

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/cleavefs/cleave/wire"
)

func TestCommandRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
	}{
		{"zero", Command{}},
		{"mkdir", Command{Op: wire.OpMkdir, Path: "/a/b", Flags: wire.FlagParents, Time: 1_700_000_000_000_000_000}},
		{"put", Command{Op: wire.OpPut, Path: "/a/f", Data: []byte("hello\x00world"), Time: -1, Session: 7, Seq: 42}},
		{"remove", Command{Op: wire.OpRemove, Path: "/a", Flags: wire.FlagRecursive, Session: ^uint64(0), Seq: ^uint64(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := EncodeCommand(&tt.cmd)
			if err != nil {
				t.Fatal(err)
			}
			if p[0] != commandVersion {
				t.Fatalf("first byte %d, want version %d", p[0], commandVersion)
			}
			p2, _ := EncodeCommand(&tt.cmd)
			if !bytes.Equal(p, p2) {
				t.Fatal("encoding is not deterministic")
			}
			got, err := DecodeCommand(p)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.cmd) {
				t.Fatalf("round trip: got %+v, want %+v", *got, tt.cmd)
			}
		})
	}
}

func TestDecodeCommandErrors(t *testing.T) {
	valid, err := EncodeCommand(&Command{Op: wire.OpPut, Path: "/a", Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"nil", nil, "empty"},
		{"empty", []byte{}, "empty"},
		{"unknown version", append([]byte{9}, valid[1:]...), "unknown version 9"},
		{"version only", []byte{commandVersion}, "offset"},
		{"truncated", valid[:len(valid)-1], "offset"},
		{"trailing bytes", append(bytes.Clone(valid), 0xc0), "trailing"},
		{"not a map", []byte{commandVersion, 0xc1}, "offset"},
		{"wrong field type", []byte{commandVersion, 0x81, 0xa4, 'p', 'a', 't', 'h', 0x01}, "offset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := DecodeCommand(tt.in)
			if err == nil {
				t.Fatalf("decoded %+v, want error", c)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestEncodeCommandNil(t *testing.T) {
	if _, err := EncodeCommand(nil); err == nil {
		t.Fatal("EncodeCommand(nil) succeeded")
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []Command{
		{},
		{Op: wire.OpMkdir, Path: "/a/b", Flags: wire.FlagParents, Time: 1},
		{Op: wire.OpPut, Path: "/a/f", Data: []byte("data"), Time: 2, Session: 3, Seq: 4},
		{Op: wire.OpRemove, Path: "/a", Flags: wire.FlagRecursive},
	} {
		p, err := EncodeCommand(&c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
		f.Add(p[:len(p)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{commandVersion})
	f.Add([]byte{2, 0x80})
	f.Add([]byte{commandVersion, 0xdf, 0xff, 0xff, 0xff, 0xff}) // map32 claiming 4G entries
	f.Add([]byte{commandVersion, 0x81, 0xa4, 'd', 'a', 't', 'a', 0xc6, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		c, err := DecodeCommand(p)
		if err != nil {
			return
		}
		q, err := EncodeCommand(c)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", c, err)
		}
		c2, err := DecodeCommand(q)
		if err != nil {
			t.Fatalf("decode re-encoded %x: %v", q, err)
		}
		if !reflect.DeepEqual(normalize(c), normalize(c2)) {
			t.Fatalf("round trip changed the command: %+v != %+v", c, c2)
		}
	})
}

// normalize maps an empty Data to nil: omitempty does not tell them apart.
func normalize(c *Command) Command {
	n := *c
	if len(n.Data) == 0 {
		n.Data = nil
	}
	return n
}

func TestDecodeCommandDoesNotAlias(t *testing.T) {
	p, _ := EncodeCommand(&Command{Op: wire.OpPut, Path: "/a", Data: []byte("abcdef")})
	c, err := DecodeCommand(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range p {
		p[i] = 'Z'
	}
	if string(c.Data) != "abcdef" || c.Path != "/a" {
		t.Fatalf("decoded command changed with its input: %+v", c)
	}
}

// TestDecodeCommandHugeArray: an array claiming 2^32-1 elements in 14
// bytes is a clear error naming its offset, not an allocation of the
// claimed length (the reflection decoder makes the slice first).
func TestDecodeCommandHugeArray(t *testing.T) {
	for _, field := range []string{"blocks", "chunks"} {
		p := append([]byte{commandVersion, 0x81, 0xa0 | byte(len(field))}, field...)
		p = append(p, 0xdd, 0xff, 0xff, 0xff, 0xff)
		c, err := DecodeCommand(p)
		if err == nil {
			t.Fatalf("%s: decoded %+v", field, c)
		}
		if want := fmt.Sprintf("offset %d", 3+len(field)); !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: error %q does not name %q", field, err, want)
		}
	}
}
