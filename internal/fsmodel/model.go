// Package fsmodel is an in-memory model of cleave's namespace semantics:
// a sequential specification that the file state machine and a whole
// deployment are checked against with random operation sequences.
// It is for tests; it never stores real data.
package fsmodel

import (
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/wire"
)

// Op is one mutation, with the fields of the wire request that matter.
type Op struct {
	Op     wire.Op
	Path   string
	To     string
	Data   []byte
	Offset int64
	Flags  wire.Flags
}

// Model is the namespace as a map: path → contents, or nil for a directory.
type Model map[string][]byte

func (m Model) IsDir(p string) bool { v, ok := m[p]; return ok && v == nil || p == "/" }

func (m Model) Exists(p string) bool { _, ok := m[p]; return ok || p == "/" }

// parentCode returns the code for a missing or non-directory parent of p.
func (m Model) parentCode(p string) wire.Code {
	parent, _ := fspath.Split(p)
	for dir := parent; ; dir, _ = fspath.Split(dir) {
		if dir == "/" || (m.Exists(dir) && m.IsDir(dir)) {
			if dir == parent {
				return wire.OK
			}
			return wire.NotFound
		}
		if m.Exists(dir) {
			return wire.NotDir
		}
	}
}

// parents checks the parent of c.Path and with FlagParents makes the
// missing ones.
func (m Model) parents(c Op) wire.Code {
	code := m.parentCode(c.Path)
	if code != wire.NotFound || c.Flags&wire.FlagParents == 0 {
		return code
	}
	for dir, _ := fspath.Split(c.Path); !m.Exists(dir); dir, _ = fspath.Split(dir) {
		m[dir] = nil
	}
	return wire.OK
}

func (m Model) subtree(p string) []string {
	var out []string
	for q := range m {
		if fspath.IsWithin(q, p) {
			out = append(out, q)
		}
	}
	return out
}

func (m Model) Step(c Op) wire.Code {
	switch c.Op {
	case wire.OpMkdir:
		return m.mkdir(c)
	case wire.OpPut, wire.OpWrite, wire.OpAppend:
		return m.writeFile(c)
	case wire.OpRemove:
		return m.remove(c)
	case wire.OpRename, wire.OpCopy:
		return m.move(c)
	}
	return wire.OK
}

func (m Model) mkdir(c Op) wire.Code {
	if m.Exists(c.Path) {
		if c.Flags&wire.FlagParents != 0 && m.IsDir(c.Path) {
			return wire.OK
		}
		return wire.Exists
	}
	if code := m.parents(c); code != wire.OK {
		return code
	}
	m[c.Path] = nil
	return wire.OK
}

// writeFile is PUT, WRITE and APPEND.
func (m Model) writeFile(c Op) wire.Code {
	if m.IsDir(c.Path) {
		return wire.IsDir
	}
	old, ok := m[c.Path]
	if !ok {
		if code := m.parents(c); code != wire.OK {
			return code
		}
	}
	switch c.Op {
	case wire.OpPut:
		m[c.Path] = slices.Clone(c.Data)
	case wire.OpAppend:
		m[c.Path] = append(slices.Clone(old), c.Data...)
		if m[c.Path] == nil {
			m[c.Path] = []byte{}
		}
	default:
		b := slices.Clone(old)
		if b == nil {
			b = []byte{}
		}
		if end := int(c.Offset) + len(c.Data); len(c.Data) > 0 && end > len(b) {
			b = append(b, make([]byte, end-len(b))...)
		}
		if len(c.Data) > 0 {
			copy(b[c.Offset:], c.Data)
		}
		m[c.Path] = b
	}
	return wire.OK
}

func (m Model) remove(c Op) wire.Code {
	if !m.Exists(c.Path) {
		return wire.NotFound
	}
	sub := m.subtree(c.Path)
	if len(sub) > 1 && c.Flags&wire.FlagRecursive == 0 {
		return wire.NotEmpty
	}
	for _, q := range sub {
		delete(m, q)
	}
	return wire.OK
}

// move is RENAME and COPY.
func (m Model) move(c Op) wire.Code {
	if fspath.Root(c.Path) != fspath.Root(c.To) {
		return wire.CrossRoot
	}
	if !m.Exists(c.Path) {
		return wire.NotFound
	}
	srcDir := m.IsDir(c.Path)
	if c.Op == wire.OpCopy {
		switch {
		case srcDir:
			return wire.IsDir
		case c.Path == c.To:
			return wire.Invalid
		}
	} else if c.Path == c.To {
		return wire.OK
	}
	if c.Op == wire.OpRename && fspath.IsWithin(c.To, c.Path) {
		return wire.Invalid
	}
	if m.Exists(c.To) {
		dstDir := m.IsDir(c.To)
		switch {
		case !srcDir && dstDir:
			return wire.IsDir
		case srcDir && !dstDir:
			return wire.NotDir
		case dstDir && len(m.subtree(c.To)) > 1:
			return wire.NotEmpty
		}
	} else if code := m.parentCode(c.To); code != wire.OK {
		return code
	}
	if c.Op == wire.OpCopy {
		m[c.To] = slices.Clone(m[c.Path])
		return wire.OK
	}
	delete(m, c.To)
	for _, q := range m.subtree(c.Path) {
		m[c.To+q[len(c.Path):]] = m[q]
		delete(m, q)
	}
	return wire.OK
}

// Random picks an op over a small namespace (roots /r and /s, three names,
// up to three levels, up to ten bytes of data) so that every outcome happens
// often.
func Random(rng *rand.Rand) Op {
	names := []string{"a", "b", "c"}
	path := func() string {
		roots := []string{"/r", "/r", "/r", "/s"}
		p := roots[rng.IntN(len(roots))]
		for range rng.IntN(3) + 1 {
			p += "/" + names[rng.IntN(len(names))]
		}
		return p
	}
	data := func() []byte {
		b := make([]byte, rng.IntN(11))
		for i := range b {
			b[i] = "xyz"[rng.IntN(3)]
		}
		return b
	}
	flags := func() wire.Flags {
		if rng.IntN(2) == 0 {
			return wire.FlagParents
		}
		return 0
	}
	switch rng.IntN(10) {
	case 0:
		return Op{Op: wire.OpMkdir, Path: path(), Flags: flags()}
	case 1:
		return Op{Op: wire.OpPut, Path: path(), Data: data(), Flags: flags()}
	case 2, 3:
		return Op{Op: wire.OpWrite, Path: path(), Offset: int64(rng.IntN(12)), Data: data(), Flags: flags()}
	case 4:
		return Op{Op: wire.OpAppend, Path: path(), Data: data(), Flags: flags()}
	case 5:
		return Op{Op: wire.OpRemove, Path: path(), Flags: wire.Flags(rng.IntN(2)) * wire.FlagRecursive}
	case 6, 7:
		return Op{Op: wire.OpRename, Path: path(), To: path()}
	case 8:
		return Op{Op: wire.OpCopy, Path: path(), To: path()}
	}
	return Op{Op: wire.OpMkdir, Path: "/" + []string{"r", "s"}[rng.IntN(2)]}
}

// Paths returns every path in the model in walk order: depth first, each
// directory's children by name (the order of a recursive listing).
func (m Model) Paths() []string {
	var out []string
	for p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		return slices.Compare(strings.Split(out[i], "/"), strings.Split(out[j], "/")) < 0
	})
	return out
}
