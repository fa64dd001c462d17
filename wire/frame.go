package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// DefaultMaxFrame is the largest payload accepted unless configured otherwise.
const DefaultMaxFrame = 8 << 20

// HeaderSize is the size of the length prefix of every frame.
const HeaderSize = 4

// ErrFrameTooLarge is returned (wrapped in a *FrameError) when a frame's
// declared length exceeds the reader's limit. Nothing is allocated for it.
var ErrFrameTooLarge = errors.New("wire: frame too large")

// FrameError describes a frame that could not be read, with the byte offset
// in the stream at which its header started.
type FrameError struct {
	Offset int64  // stream offset of the frame header
	Length uint32 // declared payload length
	Max    int    // limit in force
	Err    error
}

func (e *FrameError) Error() string {
	if errors.Is(e.Err, ErrFrameTooLarge) {
		return fmt.Sprintf("frame at offset %d declares %d bytes, over the %d-byte limit", e.Offset, e.Length, e.Max)
	}
	return fmt.Sprintf("frame at offset %d: %v", e.Offset, e.Err)
}

func (e *FrameError) Unwrap() error { return e.Err }

// FrameReader reads frames from a stream, checking the length limit before
// allocating. It never allocates a frame's announced length up front: the
// buffer starts at most growChunk bytes and doubles as the body arrives, so a
// peer that announces a large frame and stalls costs what it sent. It
// survives partial reads and tracks its offset. Not safe for concurrent use.
type FrameReader struct {
	r      io.Reader
	max    int
	offset int64
	hdr    [HeaderSize]byte
	buf    []byte
}

// NewFrameReader returns a reader that rejects payloads over max bytes
// (DefaultMaxFrame if max <= 0).
func NewFrameReader(r io.Reader, max int) *FrameReader {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	return &FrameReader{r: r, max: max}
}

// Offset returns the stream offset of the next frame header.
func (fr *FrameReader) Offset() int64 { return fr.offset }

// Next reads one frame and returns its payload. The returned slice is only
// valid until the next call. io.EOF is returned only at a clean frame
// boundary; a stream that ends inside a frame gives io.ErrUnexpectedEOF.
func (fr *FrameReader) Next() ([]byte, error) {
	start := fr.offset
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, &FrameError{Offset: start, Err: err}
	}
	n := binary.BigEndian.Uint32(fr.hdr[:])
	if uint64(n) > uint64(fr.max) {
		return nil, &FrameError{Offset: start, Length: n, Max: fr.max, Err: ErrFrameTooLarge}
	}
	buf, err := fr.readBody(int(n))
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, &FrameError{Offset: start, Length: n, Max: fr.max, Err: err}
	}
	fr.offset += HeaderSize + int64(n)
	// Do not keep a huge buffer alive after an occasional big frame.
	if cap(fr.buf) > 1<<20 && n < 1<<16 {
		fr.buf = nil
	}
	return buf, nil
}

// growChunk is the most a frame body's buffer starts with before any of the
// body has arrived.
const growChunk = 16 << 10

// readBody reads n bytes into fr.buf, growing it only as bytes arrive.
func (fr *FrameReader) readBody(n int) ([]byte, error) {
	if cap(fr.buf) >= n {
		buf := fr.buf[:n]
		_, err := io.ReadFull(fr.r, buf)
		return buf, err
	}
	buf := make([]byte, min(n, max(growChunk, cap(fr.buf))))
	got := 0
	for {
		m, err := io.ReadFull(fr.r, buf[got:])
		got += m
		if err != nil {
			return nil, err
		}
		if got == n {
			fr.buf = buf
			return buf, nil
		}
		// Everything asked for arrived: double, bounded by the frame.
		grown := make([]byte, min(n, 2*len(buf)))
		copy(grown, buf[:got])
		buf = grown
	}
}

// AppendFrame appends one frame carrying payload, its length prefix and the
// payload itself, to dst. (AppendEncode encodes a message into a frame.)
func AppendFrame(dst []byte, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// SetMax changes the payload limit for the frames read from now on
// (DefaultMaxFrame if max <= 0).
func (fr *FrameReader) SetMax(max int) {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	fr.max = max
}

// maxPooledFrameBuffer is the largest buffer PutFrameBuffer keeps: one
// large frame must not pin its memory in the pool.
const maxPooledFrameBuffer = 1 << 20

var frameBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, 4<<10)
	return &b
}}

// GetFrameBuffer returns an empty buffer from a process-wide pool, for
// AppendEncode to append frames to. Give it back with PutFrameBuffer once
// its bytes are written, and do not use it after.
func GetFrameBuffer() *[]byte {
	b := frameBuffers.Get().(*[]byte)
	*b = (*b)[:0]
	return b
}

// PutFrameBuffer returns b to the pool; a buffer grown past 1 MiB is
// dropped instead.
func PutFrameBuffer(b *[]byte) {
	if b == nil || cap(*b) > maxPooledFrameBuffer {
		return
	}
	frameBuffers.Put(b)
}
