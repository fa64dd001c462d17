package wire

import (
	"encoding/binary"
	"fmt"
)

// maxDepth bounds nesting in a message; ours nest four levels at most.
const maxDepth = 32

// checkShape walks one msgpack value in p without building it and checks
// that every declared length fits in the bytes that remain and that nesting
// stays under maxDepth. The msgpack library preallocates slices from declared
// lengths, so this runs before any payload is decoded by reflection: a
// 20-byte frame cannot make it allocate gigabytes. (The hand-written decoder
// checks each length as it reads it, and steps over values it does not
// decode with shapeScan.scan.) It returns the offset of the first problem.
func checkShape(p []byte) error {
	s := shapeScan{p: p}
	if err := s.scan(1); err != nil {
		return err
	}
	if s.off != len(p) {
		return fmt.Errorf("at byte %d: %d trailing bytes after the message", s.off, len(p)-s.off)
	}
	return nil
}

// scan steps over one value at nesting level level (1 for the message
// itself), checking it as checkShape does: no container that holds
// anything may open at level maxDepth or deeper.
func (s *shapeScan) scan(level int) error {
	// stack holds, per open array or map, how many values remain in it.
	var stackBuf [maxDepth]int
	stack := append(stackBuf[:0], 1)
	for len(stack) > 0 {
		top := len(stack) - 1
		if stack[top] == 0 {
			stack = stack[:top]
			continue
		}
		stack[top]--
		start := s.off
		items, err := s.value()
		if err != nil {
			return err
		}
		if items > 0 {
			if len(stack)+level-1 >= maxDepth {
				return fmt.Errorf("at byte %d: nested deeper than %d levels", start, maxDepth)
			}
			stack = append(stack, int(items))
		}
	}
	return nil
}

// shapeScan is checkShape's cursor: the message and the offset of the next
// unread byte.
type shapeScan struct {
	p   []byte
	off int
}

// need fails when fewer than n bytes remain.
func (s *shapeScan) need(n uint64) error {
	if n > uint64(len(s.p)-s.off) {
		return fmt.Errorf("at byte %d: declared length %d exceeds the %d bytes left", s.off, n, len(s.p)-s.off)
	}
	return nil
}

// sized reads a big-endian length of width bytes (1, 2 or 4).
func (s *shapeScan) sized(width int) (uint64, error) {
	if err := s.need(uint64(width)); err != nil {
		return 0, err
	}
	var n uint64
	switch width {
	case 1:
		n = uint64(s.p[s.off])
	case 2:
		n = uint64(binary.BigEndian.Uint16(s.p[s.off:]))
	case 4:
		n = uint64(binary.BigEndian.Uint32(s.p[s.off:]))
	}
	s.off += width
	return n, nil
}

// value reads one value's header, checks that its payload bytes are there
// and steps over them. It returns how many nested values follow it (array
// elements, or map keys and values), having checked that at least that many
// bytes remain, since every value takes one byte or more.
func (s *shapeScan) value() (items uint64, err error) {
	if s.off >= len(s.p) {
		return 0, fmt.Errorf("at byte %d: message ends inside a value", s.off)
	}
	b := s.p[s.off]
	s.off++
	skip, items, err := s.header(b)
	if err != nil {
		return 0, err
	}
	if err := s.need(skip); err != nil {
		return 0, err
	}
	s.off += int(skip)
	if items > 0 {
		// Every element takes at least one byte.
		if err := s.need(items); err != nil {
			return 0, err
		}
	}
	return items, nil
}

// header decodes type byte b, just read, and any length after it into how
// many payload bytes to skip and how many nested values follow.
func (s *shapeScan) header(b byte) (skip, items uint64, err error) {
	switch {
	case b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3:
	case b >= 0x80 && b <= 0x8f:
		items = 2 * uint64(b&0x0f)
	case b >= 0x90 && b <= 0x9f:
		items = uint64(b & 0x0f)
	case b >= 0xa0 && b <= 0xbf:
		skip = uint64(b & 0x1f)
	case b == 0xc4 || b == 0xd9:
		skip, err = s.sized(1)
	case b == 0xc5 || b == 0xda:
		skip, err = s.sized(2)
	case b == 0xc6 || b == 0xdb:
		skip, err = s.sized(4)
	case b == 0xc7, b == 0xc8, b == 0xc9:
		skip, err = s.sized(1 << (b - 0xc7))
		skip++ // ext type byte
	case b == 0xca:
		skip = 4
	case b == 0xcb:
		skip = 8
	case b >= 0xcc && b <= 0xcf:
		skip = 1 << (b - 0xcc)
	case b >= 0xd0 && b <= 0xd3:
		skip = 1 << (b - 0xd0)
	case b >= 0xd4 && b <= 0xd8:
		skip = 1 + 1<<(b-0xd4)
	case b == 0xdc:
		items, err = s.sized(2)
	case b == 0xdd:
		items, err = s.sized(4)
	case b == 0xde:
		items, err = s.sized(2)
		items *= 2
	case b == 0xdf:
		items, err = s.sized(4)
		items *= 2
	default:
		return 0, 0, fmt.Errorf("at byte %d: invalid msgpack type byte %#x", s.off-1, b)
	}
	return skip, items, err
}
