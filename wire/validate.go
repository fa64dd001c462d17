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
// lengths, so this runs first: a 20-byte frame cannot make it allocate
// gigabytes. It returns the offset of the first problem.
func checkShape(p []byte) error {
	// stack holds, per open array or map, how many values remain in it.
	var stackBuf [maxDepth]int
	stack := stackBuf[:0]
	stack = append(stack, 1)
	off := 0
	need := func(n uint64) error {
		if n > uint64(len(p)-off) {
			return fmt.Errorf("at byte %d: declared length %d exceeds the %d bytes left", off, n, len(p)-off)
		}
		return nil
	}
	for len(stack) > 0 {
		top := len(stack) - 1
		if stack[top] == 0 {
			stack = stack[:top]
			continue
		}
		stack[top]--
		if off >= len(p) {
			return fmt.Errorf("at byte %d: message ends inside a value", off)
		}
		b := p[off]
		start := off
		off++
		var skip, items uint64
		sized := func(width int) (uint64, error) {
			if err := need(uint64(width)); err != nil {
				return 0, err
			}
			var n uint64
			switch width {
			case 1:
				n = uint64(p[off])
			case 2:
				n = uint64(binary.BigEndian.Uint16(p[off:]))
			case 4:
				n = uint64(binary.BigEndian.Uint32(p[off:]))
			}
			off += width
			return n, nil
		}
		var err error
		switch {
		case b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3:
		case b >= 0x80 && b <= 0x8f:
			items = 2 * uint64(b&0x0f)
		case b >= 0x90 && b <= 0x9f:
			items = uint64(b & 0x0f)
		case b >= 0xa0 && b <= 0xbf:
			skip = uint64(b & 0x1f)
		case b == 0xc4 || b == 0xd9:
			skip, err = sized(1)
		case b == 0xc5 || b == 0xda:
			skip, err = sized(2)
		case b == 0xc6 || b == 0xdb:
			skip, err = sized(4)
		case b == 0xc7, b == 0xc8, b == 0xc9:
			skip, err = sized(1 << (b - 0xc7))
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
			items, err = sized(2)
		case b == 0xdd:
			items, err = sized(4)
		case b == 0xde:
			items, err = sized(2)
			items *= 2
		case b == 0xdf:
			items, err = sized(4)
			items *= 2
		default:
			return fmt.Errorf("at byte %d: invalid msgpack type byte %#x", start, b)
		}
		if err != nil {
			return err
		}
		if err := need(skip); err != nil {
			return err
		}
		off += int(skip)
		if items > 0 {
			// Every element takes at least one byte.
			if err := need(items); err != nil {
				return err
			}
			if len(stack) == maxDepth {
				return fmt.Errorf("at byte %d: nested deeper than %d levels", start, maxDepth)
			}
			stack = append(stack, int(items))
		}
	}
	if off != len(p) {
		return fmt.Errorf("at byte %d: %d trailing bytes after the message", off, len(p)-off)
	}
	return nil
}
