package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
)

// TestFrameReaderGrowsAsBytesArrive checks that a frame announcing 8 MiB
// whose sender stops after a few bytes costs about what arrived, not what
// was announced.
func TestFrameReaderGrowsAsBytesArrive(t *testing.T) {
	stream := append(binary.BigEndian.AppendUint32(nil, DefaultMaxFrame), make([]byte, 1000)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fr := NewFrameReader(bytes.NewReader(stream), 0)
	_, err := fr.Next()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Next on a truncated frame = %v, want io.ErrUnexpectedEOF", err)
	}
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("8 MiB announced, 1000 bytes sent: %d bytes allocated", got)
	if got > 256<<10 {
		t.Fatalf("allocated %d bytes for a frame of which 1000 bytes arrived; want the buffer grown as bytes arrive", got)
	}
}

// TestFrameReaderLargeFrames reads frames of many sizes through a reader
// that returns short reads, so the buffer grows across many partial reads,
// and checks every byte and the limit change.
func TestFrameReaderLargeFrames(t *testing.T) {
	var stream []byte
	var want [][]byte
	for i, n := range []int{0, 1, 4095, 4097, 70_000, 3 << 20, 10, 1 << 20} {
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(i + j)
		}
		want = append(want, p)
		stream = AppendFrame(stream, p)
	}
	fr := NewFrameReader(iotest.HalfReader(bytes.NewReader(stream)), 4<<20)
	for i, w := range want {
		got, err := fr.Next()
		if err != nil {
			t.Fatalf("frame %d (%d bytes): %v", i, len(w), err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("frame %d (%d bytes): payload differs", i, len(w))
		}
	}
	if _, err := fr.Next(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

// TestFrameReaderSetMax checks the limit can be raised between frames (a
// server accepts larger frames once the peer has authenticated).
func TestFrameReaderSetMax(t *testing.T) {
	stream := AppendFrame(AppendFrame(nil, make([]byte, 100)), make([]byte, 100))
	fr := NewFrameReader(bytes.NewReader(stream), 200)
	if _, err := fr.Next(); err != nil {
		t.Fatal(err)
	}
	fr.SetMax(50)
	_, err := fr.Next()
	var fe *FrameError
	if !errors.As(err, &fe) || !errors.Is(err, ErrFrameTooLarge) || fe.Max != 50 || fe.Offset != 104 {
		t.Fatalf("second frame over the lowered limit: %v, want TOO_LARGE at offset 104 with max 50", err)
	}
}

// TestFrameBufferPool checks that pooled buffers come back empty, hold
// appended frames, and that a buffer grown past the pool's bound is never
// handed out again.
func TestFrameBufferPool(t *testing.T) {
	big := GetFrameBuffer()
	*big = append(*big, make([]byte, maxPooledFrameBuffer+1)...)
	PutFrameBuffer(big)
	for range 100 {
		b := GetFrameBuffer()
		if len(*b) != 0 || cap(*b) > maxPooledFrameBuffer {
			t.Fatalf("pooled buffer of length %d, capacity %d", len(*b), cap(*b))
		}
		var err error
		if *b, err = AppendEncode(*b, &Request{ID: 1, Op: OpGet, Path: "/a"}); err != nil {
			t.Fatal(err)
		}
		if req, err := DecodeRequest((*b)[HeaderSize:]); err != nil || req.Path != "/a" {
			t.Fatalf("frame from a pooled buffer: %+v, %v", req, err)
		}
		PutFrameBuffer(b)
	}
}
