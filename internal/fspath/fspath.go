// Package fspath validates and takes apart cleave paths.
//
// A path is absolute, '/'-separated UTF-8 with no empty, "." or ".."
// component and no control character (C0, DEL or C1, NUL included); at
// most MaxPath bytes, each component at most MaxComponent bytes. "/"
// itself is valid and names the virtual top directory. Paths are names in
// the namespace only; they never become OS file names.
//
// Control characters were once allowed (NUL aside): ValidateStored is the
// older rule, which every stored path satisfies, for the state machine.
package fspath

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

const (
	MaxPath      = 4096 // bytes in a whole path
	MaxComponent = 255  // bytes in one component
)

// Error tells which rule a path broke.
type Error struct {
	Path string
	Rule string
}

func (e *Error) Error() string {
	p := e.Path
	if len(p) > 64 {
		p = p[:64] + "..."
	}
	return fmt.Sprintf("invalid path %q: %s", p, e.Rule)
}

// Validate returns nil for a valid path and an *Error naming the rule
// broken; for a control character, its code point and byte offset.
func Validate(p string) error {
	if err := ValidateStored(p); err != nil {
		return err
	}
	for i, r := range p {
		if IsControl(r) {
			return &Error{Path: p, Rule: fmt.Sprintf("control character %U at byte %d", r, i)}
		}
	}
	return nil
}

// IsControl reports whether r is a control character: C0 (U+0000–U+001F),
// DEL (U+007F) or C1 (U+0080–U+009F).
func IsControl(r rune) bool { return r < 0x20 || r >= 0x7f && r <= 0x9f }

// ValidateStored is Validate without the control-character rule, which
// came later: every path ever stored satisfies it. The state machine
// checks commands with it, so that replaying a log entry gives the answer
// it gave when first applied; requests are checked with Validate before
// any command is made from them.
func ValidateStored(p string) error {
	bad := func(rule string, args ...any) error { return &Error{Path: p, Rule: fmt.Sprintf(rule, args...)} }
	switch {
	case p == "":
		return bad("empty path")
	case len(p) > MaxPath:
		return bad("longer than %d bytes (%d)", MaxPath, len(p))
	case p[0] != '/':
		return bad("not absolute (must start with /)")
	case p == "/":
		return nil
	case !utf8.ValidString(p):
		return bad("not valid UTF-8")
	case strings.IndexByte(p, 0) >= 0:
		return bad("contains a NUL byte")
	case p[len(p)-1] == '/':
		return bad("ends with /")
	}
	for rest := p[1:]; ; {
		i := strings.IndexByte(rest, '/')
		c := rest
		if i >= 0 {
			c = rest[:i]
		}
		switch {
		case c == "":
			return bad("empty component (//)")
		case c == ".", c == "..":
			return bad("contains a %q component", c)
		case len(c) > MaxComponent:
			return bad("component longer than %d bytes (%d)", MaxComponent, len(c))
		}
		if i < 0 {
			return nil
		}
		rest = rest[i+1:]
	}
}

// Root returns the root directory of a valid path: its first component
// ("/photos/2024/a.jpg" → "photos"); "" for "/".
func Root(p string) string {
	if len(p) <= 1 {
		return ""
	}
	if i := strings.IndexByte(p[1:], '/'); i >= 0 {
		return p[1 : i+1]
	}
	return p[1:]
}

// Split returns the parent directory and base name of a valid path other
// than "/" ("/a/b" → "/a", "b"; "/a" → "/", "a").
func Split(p string) (parent, name string) {
	i := strings.LastIndexByte(p, '/')
	if i == 0 {
		return "/", p[1:]
	}
	return p[:i], p[i+1:]
}

// Join appends name to dir ("/" + "a" → "/a", "/a" + "b" → "/a/b").
func Join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// IsWithin reports whether p is dir or lies below it.
func IsWithin(p, dir string) bool {
	if dir == "/" || p == dir {
		return true
	}
	return strings.HasPrefix(p, dir) && len(p) > len(dir) && p[len(dir)] == '/'
}
