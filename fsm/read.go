package fsm

// The reads of the file state machine. Each reads one Pebble snapshot of
// the committed state (a View), so it sees every applied entry up to some
// index and nothing half-applied.

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
	"github.com/cockroachdb/pebble/v2"
)

// List page sizes.
const (
	DefaultListLimit = 1000  // entries per LIST page when the request says 0
	MaxListLimit     = 10000 // larger limits are lowered to this
)

func rootStat() *wire.Stat { return &wire.Stat{Name: "", Type: wire.TypeDir} }

func stat(rd reader, p string) (*wire.Stat, error) {
	if p == "/" {
		return rootStat(), nil
	}
	e, err := getEntry(rd, p)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, absent(rd, p)
	}
	_, name := fspath.Split(p)
	return e.stat(name), nil
}

// absent is the error for p (not "/"), which has no entry: NOT_DIR if an
// ancestor of p is a file (POSIX ENOTDIR: "/a/f/x" where /a/f is a file),
// else NOT_FOUND. It reads upward only until the nearest existing
// ancestor, like missingParents: an existing directory's ancestors all
// exist as directories.
func absent(rd reader, p string) error {
	for dir, _ := fspath.Split(p); dir != "/"; dir, _ = fspath.Split(dir) {
		e, err := getEntry(rd, dir)
		if err != nil {
			return err
		}
		if e == nil {
			continue
		}
		if e.Type != wire.TypeDir {
			return &wire.Error{Code: wire.NotDir, Message: fmt.Sprintf("%q does not exist: %q is a file", p, dir)}
		}
		break
	}
	return &wire.Error{Code: wire.NotFound, Message: fmt.Sprintf("%q does not exist", p)}
}

// Stat returns the metadata of path from the committed state: one point get
// (and, for a missing path, one per ancestor up to the nearest existing
// one). Errors are *wire.Error (INVALID, WRONG_RANGE, NOT_FOUND, NOT_DIR
// when an ancestor is a file, INTERNAL).
func (f *FSM) Stat(path string) (*wire.Stat, error) {
	v := f.NewView()
	defer v.Close()
	return v.Stat(path)
}

// Exists reports whether path exists in the committed state (a path below
// a file does not). Errors are *wire.Error (INVALID, WRONG_RANGE, INTERNAL).
func (f *FSM) Exists(path string) (bool, error) { return exists(f.Stat(path)) }

// exists is Exists's verdict on what Stat returned.
func exists(_ *wire.Stat, err error) (bool, error) {
	var we *wire.Error
	if errors.As(err, &we) && (we.Code == wire.NotFound || we.Code == wire.NotDir) {
		return false, nil
	}
	return err == nil, err
}

// get returns the whole contents and metadata of file path from the
// committed state, every chunk verified. Errors are *wire.Error (INVALID,
// WRONG_RANGE, NOT_FOUND, NOT_DIR, IS_DIR, INTERNAL).
func (f *FSM) get(path string) ([]byte, *wire.Stat, error) {
	return f.Read(path, 0, 0, -1)
}

// Read returns Length bytes of file path from Offset (Length 0: to the end)
// and the file's metadata. A range past the end is cut at the end (empty
// past EOF). Only the chunks overlapping the range are read, and each is
// verified against its name: a corrupt chunk is INTERNAL, never data. If
// the range holds more than maxBytes (maxBytes ≥ 0), Read fails TOO_LARGE
// without reading. Errors are *wire.Error (INVALID, WRONG_RANGE, NOT_FOUND,
// NOT_DIR when an ancestor is a file, IS_DIR, TOO_LARGE, INTERNAL).
func (f *FSM) Read(path string, offset, length, maxBytes int64) ([]byte, *wire.Stat, error) {
	v := f.NewView()
	defer v.Close()
	return v.Read(path, offset, length, maxBytes)
}

// Read is FSM.Read in the view.
func (v *View) Read(path string, offset, length, maxBytes int64) ([]byte, *wire.Stat, error) {
	if offset < 0 || length < 0 {
		return nil, nil, &wire.Error{Code: wire.Invalid, Message: fmt.Sprintf("GET %q: offset %d and length %d must not be negative", path, offset, length)}
	}
	s, err := v.open(path)
	if err != nil {
		return nil, nil, err
	}
	if path == "/" {
		return nil, nil, &wire.Error{Code: wire.IsDir, Message: fmt.Sprintf("%q is a directory", path)}
	}
	e, err := getEntry(s, path)
	if err != nil {
		return nil, nil, err
	}
	if e == nil {
		return nil, nil, absent(s, path)
	}
	if e.Type != wire.TypeFile {
		return nil, nil, &wire.Error{Code: wire.IsDir, Message: fmt.Sprintf("%q is a directory", path)}
	}
	_, name := fspath.Split(path)
	start := min(offset, e.Size)
	n := e.Size - start
	if length > 0 {
		n = min(n, length)
	}
	if maxBytes >= 0 && n > maxBytes {
		return nil, nil, &wire.Error{Code: wire.TooLarge, Message: fmt.Sprintf(
			"GET %q: %d bytes from offset %d exceed the %d a response may carry; read in ranges (offset, length)", path, n, start, maxBytes)}
	}
	data, err := readBytes(s, path, e, start, n)
	if err != nil {
		return nil, nil, err
	}
	return data, e.stat(name), nil
}

// list returns every direct child of directory dir from the committed
// state, sorted by name, in one slice. Listing "/" returns the roots this
// node holds within its owned range. Errors are *wire.Error (INVALID,
// WRONG_RANGE, NOT_FOUND, NOT_DIR, INTERNAL).
func (f *FSM) list(dir string) ([]wire.Stat, error) {
	out, _, err := f.ListPage(dir, "", -1, false)
	return out, err
}

// ListPage returns one page of the listing of directory dir: at most limit
// entries (0: DefaultListLimit; above MaxListLimit: MaxListLimit; negative:
// no limit) that come strictly after the continuation token after ("" for
// the first page), and the token of the next page ("" when nothing
// follows).
//
// Non-recursive entries are the children, named by their name, in name
// order. Recursive entries are the whole subtree, named by their path
// relative to dir, in depth-first order with children in name order (the
// order of fs.WalkDir): that is, ordered by their list of components.
//
// The token encodes the last returned name, so the next page starts
// strictly after it in that order whatever changed in between: entries
// added or removed elsewhere never shift a page; an entry added after the
// token's position is listed, one added before it is not. Tokens are
// opaque to clients. Errors are *wire.Error (INVALID for a malformed token,
// WRONG_RANGE, NOT_FOUND, NOT_DIR, INTERNAL).
func (f *FSM) ListPage(dir, after string, limit int, recursive bool) ([]wire.Stat, string, error) {
	v := f.NewView()
	defer v.Close()
	return v.ListPage(dir, after, limit, recursive)
}

// ListPage is FSM.ListPage in the view.
func (v *View) ListPage(dir, after string, limit int, recursive bool) ([]wire.Stat, string, error) {
	switch {
	case limit == 0:
		limit = DefaultListLimit
	case limit > MaxListLimit:
		limit = MaxListLimit
	}
	var from []string
	if after != "" {
		rel, err := decodeToken(after, recursive)
		if err != nil {
			return nil, "", err
		}
		from = strings.Split(rel, "/")
	}
	s, err := v.open(dir)
	if err != nil {
		return nil, "", err
	}
	st, err := stat(s, dir)
	if err != nil {
		return nil, "", err
	}
	if st.Type != wire.TypeDir {
		return nil, "", &wire.Error{Code: wire.NotDir, Message: fmt.Sprintf("%q is a file", dir)}
	}
	w := &walker{f: v.f, s: s, limit: limit, recursive: recursive, out: []wire.Stat{}}
	if _, err := w.walk(dir, "", from); err != nil {
		return nil, "", err
	}
	next := ""
	if limit >= 0 && len(w.out) > limit {
		w.out = w.out[:limit]
		next = encodeToken(w.out[limit-1].Name)
	}
	return w.out, next, nil
}

func encodeToken(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }

func decodeToken(tok string, recursive bool) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	bad := func(why string) (string, error) {
		return "", &wire.Error{Code: wire.Invalid, Message: fmt.Sprintf("malformed list continuation token %q: %s; pass Response.Next unchanged", tok, why)}
	}
	if err != nil {
		return bad("not base64url")
	}
	rel := string(b)
	if !recursive && strings.Contains(rel, "/") {
		return bad("it is from a recursive listing")
	}
	if err := fspath.ValidateStored("/" + rel); err != nil || rel == "" {
		return bad("it does not name an entry")
	}
	return rel, nil
}

// walker gathers a listing, up to limit+1 entries (negative: all).
type walker struct {
	f         *FSM
	s         *pebble.Snapshot
	limit     int
	recursive bool
	out       []wire.Stat
}

func (w *walker) full() bool { return w.limit >= 0 && len(w.out) > w.limit }

// walk appends the entries below dir (rel: dir relative to the listed
// directory) that come after the components from, and reports whether the
// page is full.
func (w *walker) walk(dir, rel string, from []string) (bool, error) {
	kids, err := w.children(dir, from)
	if err != nil {
		return false, err
	}
	for _, k := range kids {
		name := k.Name
		if rel != "" {
			name = rel + "/" + name
		}
		skipSelf := len(from) > 0 && k.Name == from[0]
		if !skipSelf {
			k.Name = name
			w.out = append(w.out, k)
			if w.full() {
				return true, nil
			}
		}
		if w.recursive && k.Type == wire.TypeDir {
			var sub []string
			if skipSelf {
				sub = from[1:]
			}
			if full, err := w.walk(fspath.Join(dir, k.Name[strings.LastIndexByte(k.Name, '/')+1:]), name, sub); full || err != nil {
				return full, err
			}
		}
	}
	return false, nil
}

// children returns the children of dir from name from[0] on (all if from
// is empty), in name order, at most what the page still needs (each child
// may still be followed by its subtree, so a recursive walk reads lazily
// through nested calls).
func (w *walker) children(dir string, from []string) ([]wire.Stat, error) {
	if dir == "/" {
		roots, err := w.f.listRoots(w.s)
		if err != nil {
			return nil, err
		}
		i := 0
		if len(from) > 0 {
			for i < len(roots) && roots[i].Name < from[0] {
				i++
			}
		}
		return roots[i:], nil
	}
	pfx := childrenPrefix(dir)
	lower := pfx
	if len(from) > 0 {
		lower = append(append([]byte{}, pfx...), from[0]...)
	}
	it, err := w.s.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upperBound(pfx)})
	if err != nil {
		return nil, storageErr("list "+dir, err)
	}
	var out []wire.Stat
	need := w.limit + 1 - len(w.out)
	for valid := it.First(); valid; valid = it.Next() {
		name := string(it.Key()[len(pfx):])
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, storageErr("list "+dir, err)
		}
		e, err := decodeEntry(fspath.Join(dir, name), v)
		if err != nil {
			_ = it.Close()
			return nil, err
		}
		out = append(out, *e.stat(name))
		// Without recursion nothing but these children follows; with it, a
		// child dir's subtree may fill the page, but reading a few
		// children too many is harmless.
		if w.limit >= 0 && len(out) >= need+1 {
			break
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, storageErr("list "+dir, err)
	}
	return out, nil
}

func (f *FSM) listRoots(s *pebble.Snapshot) ([]wire.Stat, error) {
	r, ok, err := f.readRange(s)
	if err != nil {
		return nil, err
	}
	out := []wire.Stat{}
	if !ok {
		return out, nil
	}
	it, err := prefixIter(s, []byte(rootPrefix))
	if err != nil {
		return nil, storageErr("list /", err)
	}
	var roots []string
	for valid := it.First(); valid; valid = it.Next() {
		if root := string(it.Key()[len(rootPrefix):]); r.Contains(ring.Point(root)) {
			roots = append(roots, root)
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, storageErr("list /", err)
	}
	for _, root := range roots {
		st, err := stat(s, "/"+root)
		if err != nil {
			var we *wire.Error
			if errors.As(err, &we) && we.Code == wire.NotFound {
				return nil, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("integrity: root index names %q but it has no entry", root)}
			}
			return nil, err
		}
		out = append(out, *st)
	}
	return out, nil
}
