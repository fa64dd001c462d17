package cluster

// The file state machine of a storage node: the namespace of the roots this
// cluster owns, kept in Pebble, changed only by Apply.
//
// Key layout. Every key lives under "s/" (the replica keeps its own keys
// under "r/"). P(x) is the 8-byte big-endian ring point of root x
// (ring.Point, xxhash64); "\x00" separates a parent path from a child's
// name (a path never contains NUL, so the split is unambiguous).
//
//	s/m/range                    → msgpack wire.Range: the owned range (Bootstrap)
//	s/e/ P(root) parent \x00 name → msgpack entry{type,size,mtime,version,checksum}
//	s/d/ P(root) path            → the file's contents (raw bytes, for now)
//	s/n/ root                    → "" : index of the roots held, in name order
//
// For example "/photos/2024/a.jpg" has its entry at
// "s/e/" P(photos) "/photos/2024\x00a.jpg" and its contents at
// "s/d/" P(photos) "/photos/2024/a.jpg"; the root "/photos" itself has its
// entry at "s/e/" P(photos) "/\x00photos" and the index key "s/n/photos".
//
//   - stat is one point get of the entry; it never reads contents.
//   - list of a directory D is one prefix scan of "s/e/" P + D "\x00", in
//     name order; list of "/" is a scan of "s/n/" plus a get per root.
//   - the subtree below D is exactly the two prefixes "s/e/" P + D "\x00"
//     (D's children) and "s/e/" P + D "/" (everything deeper); the contents
//     below D are under "s/d/" P + D "/".
//   - all of one root, and all roots whose points fall in one hash range, are
//     contiguous: after a split at mid the half [mid, end) is the key ranges
//     ["s/e/" be(mid), "s/e/" be(end)) and the same under "s/d/" (end = 2^64
//     means up to the prefix's end), so it can be dropped with DeleteRange;
//     only the small "s/n/" index needs a scan (hash each name).
//   - contents are separate from entries, so "s/d/" can later become a
//     manifest of content-addressed chunks (DESIGN §4) without touching
//     stat or list.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"
)

// Key prefixes; see the layout at the top of this file.
const (
	prefix      = "s/"
	rangeKey    = prefix + "m/range"
	entryPrefix = prefix + "e/"
	dataPrefix  = prefix + "d/"
	rootPrefix  = prefix + "n/"
)

// entry is the stored metadata of one path. Field names are short and fixed:
// they are part of the on-disk format.
type entry struct {
	Type     wire.FileType `msgpack:"t"`
	Size     int64         `msgpack:"s,omitempty"`
	Mtime    int64         `msgpack:"m,omitempty"`
	Version  uint64        `msgpack:"v"`
	Checksum string        `msgpack:"c,omitempty"`
}

func (e *entry) stat(name string) *wire.Stat {
	return &wire.Stat{Name: name, Type: e.Type, Size: e.Size, Mtime: e.Mtime, Version: e.Version, Checksum: e.Checksum}
}

// FSM is the file state machine. Apply must be called from one goroutine at
// a time; the read methods (Range, Stat, Get, List, Exists) read the
// committed state of the DB and are safe for concurrent use with each other
// and with Apply. FSM holds no state of its own besides the DB handle.
type FSM struct {
	db *pebble.DB
}

// NewFSM returns the state machine over db. It does not take ownership: the
// caller closes db.
func NewFSM(db *pebble.DB) *FSM { return &FSM{db: db} }

// reader is what both an indexed batch and a snapshot offer.
type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

// Bootstrap writes the initial owned range into b. Call it once, on an empty
// DB, before any entry is applied; every replica of a group bootstraps with
// the same range.
func (f *FSM) Bootstrap(b *pebble.Batch, r wire.Range) error {
	if r.End != 0 && r.End <= r.Start {
		return fmt.Errorf("cluster: bootstrap: range %v is empty or reversed", r)
	}
	_, err := getValue(f.db, []byte(rangeKey))
	switch {
	case err == nil:
		return fmt.Errorf("cluster: bootstrap: already bootstrapped")
	case !errors.Is(err, pebble.ErrNotFound):
		return fmt.Errorf("cluster: bootstrap: %w", err)
	}
	v, err := msgpack.Marshal(&r)
	if err != nil {
		return fmt.Errorf("cluster: bootstrap: %w", err)
	}
	return b.Set([]byte(rangeKey), v, nil)
}

// Range returns the owned range from the committed state.
func (f *FSM) Range() (wire.Range, error) {
	r, ok, err := readRange(f.db)
	if err != nil {
		return wire.Range{}, err
	}
	if !ok {
		return wire.Range{}, &wire.Error{Code: wire.Unavailable, Message: "node not bootstrapped: it owns no range"}
	}
	return r, nil
}

func readRange(rd reader) (wire.Range, bool, error) {
	v, err := getValue(rd, []byte(rangeKey))
	if errors.Is(err, pebble.ErrNotFound) {
		return wire.Range{}, false, nil
	}
	if err != nil {
		return wire.Range{}, false, storageErr("read range", err)
	}
	var r wire.Range
	if err := msgpack.Unmarshal(v, &r); err != nil {
		return wire.Range{}, false, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("corrupt range record: %v", err)}
	}
	return r, true, nil
}

// checkOwned returns a WRONG_RANGE error unless the root of p (not "/") lies
// in the range stored in rd.
func checkOwned(rd reader, p string) error {
	r, ok, err := readRange(rd)
	if err != nil {
		return err
	}
	if !ok {
		return &wire.Error{Code: wire.WrongRange, Message: fmt.Sprintf("path %q: this node owns no range (not bootstrapped)", p)}
	}
	if pt := ring.PathPoint(p); !r.Contains(pt) {
		return &wire.Error{Code: wire.WrongRange, Message: fmt.Sprintf("path %q (root point %#016x) is outside this cluster's range %v", p, pt, r)}
	}
	return nil
}

// --- keys -------------------------------------------------------------------

func appendPoint(k []byte, root string) []byte {
	return binary.BigEndian.AppendUint64(k, ring.Point(root))
}

// entryKey is the key of the entry for p (not "/").
func entryKey(p string) []byte {
	parent, name := fspath.Split(p)
	k := make([]byte, 0, len(entryPrefix)+8+len(p)+2)
	k = append(k, entryPrefix...)
	k = appendPoint(k, fspath.Root(p))
	k = append(k, parent...)
	k = append(k, 0)
	return append(k, name...)
}

// childrenPrefix is the prefix of the entry keys of dir's direct children
// (dir not "/").
func childrenPrefix(dir string) []byte {
	k := make([]byte, 0, len(entryPrefix)+8+len(dir)+1)
	k = append(k, entryPrefix...)
	k = appendPoint(k, fspath.Root(dir))
	k = append(k, dir...)
	return append(k, 0)
}

// descendantsPrefix is the prefix of the entry keys below dir's children.
func descendantsPrefix(dir string) []byte {
	k := childrenPrefix(dir)
	k[len(k)-1] = '/'
	return k
}

// dataKey is the key of the contents of file p.
func dataKey(p string) []byte {
	k := make([]byte, 0, len(dataPrefix)+8+len(p))
	k = append(k, dataPrefix...)
	k = appendPoint(k, fspath.Root(p))
	return append(k, p...)
}

func rootKey(root string) []byte { return []byte(rootPrefix + root) }

// pathOfEntryKey inverts entryKey for a key found under an entry prefix.
func pathOfEntryKey(k []byte) (string, bool) {
	if len(k) < len(entryPrefix)+8 {
		return "", false
	}
	rest := k[len(entryPrefix)+8:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return "", false
	}
	return fspath.Join(string(rest[:i]), string(rest[i+1:])), true
}

// upperBound returns the smallest key greater than every key with prefix p.
func upperBound(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

func prefixIter(rd reader, p []byte) (*pebble.Iterator, error) {
	return rd.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: upperBound(p)})
}

// --- storage helpers ----------------------------------------------------------

// getValue returns a copy of the value at k, or pebble.ErrNotFound.
func getValue(rd reader, k []byte) ([]byte, error) {
	v, c, err := rd.Get(k)
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(v)
	if out == nil {
		out = []byte{}
	}
	return out, c.Close()
}

// getEntry returns the entry of p (not "/"), or nil if there is none.
func getEntry(rd reader, p string) (*entry, error) {
	v, err := getValue(rd, entryKey(p))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, storageErr("read "+p, err)
	}
	return decodeEntry(p, v)
}

func decodeEntry(p string, v []byte) (*entry, error) {
	var e entry
	if err := msgpack.Unmarshal(v, &e); err != nil {
		return nil, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("corrupt entry for %q: %v", p, err)}
	}
	return &e, nil
}

func encodeEntry(e *entry) []byte {
	v, err := msgpack.Marshal(e)
	if err != nil {
		// entry holds only integers and a string: this cannot fail.
		panic(fmt.Sprintf("cluster: encode entry: %v", err))
	}
	return v
}

func storageErr(what string, err error) *wire.Error {
	return &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("storage: %s: %v", what, err)}
}

func checksum(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// --- Apply ------------------------------------------------------------------

// Apply applies one committed log entry at index to the state in b, an
// indexed batch (reads through b see earlier writes of the same batch), and
// returns a *Result. It is a deterministic function of (state in b, index,
// cmd): every replica applying the same entries produces the same state and
// results. Bad input (undecodable cmd, unknown op, invalid path) gives
// INVALID, never a panic; a command on a path outside the owned range gives
// WRONG_RANGE. A failed command writes nothing to b.
//
// A Result with Code INTERNAL means storage failed while reading (or a
// stored record is corrupt); this replica may then diverge from the others,
// so the caller should not commit b and should stop the replica.
func (f *FSM) Apply(b *pebble.Batch, index uint64, cmd []byte) any {
	c, err := DecodeCommand(cmd)
	if err != nil {
		return failf(wire.Invalid, "malformed command: %v", err)
	}
	res, err := apply(b, index, c)
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			return &Result{Code: we.Code, Message: we.Message}
		}
		return failf(wire.Internal, "%v", err)
	}
	return res
}

func apply(b *pebble.Batch, index uint64, c *Command) (*Result, error) {
	if !c.Op.Mutating() {
		return failf(wire.Invalid, "op %v is not a state machine command", c.Op), nil
	}
	if err := fspath.Validate(c.Path); err != nil {
		return failf(wire.Invalid, "%v", err), nil
	}
	if c.Path != "/" {
		if err := checkOwned(b, c.Path); err != nil {
			return nil, err
		}
	}
	switch c.Op {
	case wire.OpMkdir:
		return applyMkdir(b, index, c)
	case wire.OpPut:
		return applyPut(b, index, c)
	case wire.OpRemove:
		return applyRemove(b, c)
	}
	return failf(wire.Invalid, "op %v is not a state machine command", c.Op), nil
}

// missingParents checks the ancestors of p (not "/") and returns the
// ancestors that do not exist yet, outermost first. It relies on the
// invariant that an existing directory's ancestors all exist as directories,
// so it reads upward only until it finds an existing ancestor. Without
// parents it fails with NOT_FOUND (nearest existing ancestor is a directory)
// or NOT_DIR (it is a file) when the parent is missing.
func missingParents(rd reader, p string, parents bool) ([]string, *Result, error) {
	var missing []string
	dir, _ := fspath.Split(p)
	for dir != "/" {
		e, err := getEntry(rd, dir)
		if err != nil {
			return nil, nil, err
		}
		if e != nil {
			if e.Type != wire.TypeDir {
				return nil, failf(wire.NotDir, "%q: %q is a file", p, dir), nil
			}
			break
		}
		missing = append(missing, dir)
		dir, _ = fspath.Split(dir)
	}
	if len(missing) > 0 && !parents {
		parent, _ := fspath.Split(p)
		return nil, failf(wire.NotFound, "%q: parent directory %q does not exist", p, parent), nil
	}
	for i, j := 0, len(missing)-1; i < j; i, j = i+1, j-1 {
		missing[i], missing[j] = missing[j], missing[i]
	}
	return missing, nil, nil
}

// putEntry writes the entry of p and, for a root, its index key.
func putEntry(b *pebble.Batch, p string, e *entry) error {
	if err := b.Set(entryKey(p), encodeEntry(e), nil); err != nil {
		return err
	}
	if parent, name := fspath.Split(p); parent == "/" {
		return b.Set(rootKey(name), nil, nil)
	}
	return nil
}

func makeDirs(b *pebble.Batch, dirs []string, index uint64, mtime int64) error {
	for _, d := range dirs {
		if err := putEntry(b, d, &entry{Type: wire.TypeDir, Mtime: mtime, Version: index}); err != nil {
			return storageErr("write "+d, err)
		}
	}
	return nil
}

func applyMkdir(b *pebble.Batch, index uint64, c *Command) (*Result, error) {
	parents := c.Flags&wire.FlagParents != 0
	if c.Path == "/" {
		if parents {
			return &Result{Stat: rootStat()}, nil
		}
		return failf(wire.Exists, "%q already exists", c.Path), nil
	}
	e, err := getEntry(b, c.Path)
	if err != nil {
		return nil, err
	}
	_, name := fspath.Split(c.Path)
	if e != nil {
		if e.Type == wire.TypeDir && parents {
			return &Result{Stat: e.stat(name)}, nil
		}
		return failf(wire.Exists, "%q already exists (%v)", c.Path, e.Type), nil
	}
	missing, res, err := missingParents(b, c.Path, parents)
	if res != nil || err != nil {
		return res, err
	}
	if err := makeDirs(b, append(missing, c.Path), index, c.Time); err != nil {
		return nil, err
	}
	return &Result{Stat: &wire.Stat{Name: name, Type: wire.TypeDir, Mtime: c.Time, Version: index}}, nil
}

func applyPut(b *pebble.Batch, index uint64, c *Command) (*Result, error) {
	if c.Path == "/" {
		return failf(wire.IsDir, "%q is a directory", c.Path), nil
	}
	old, err := getEntry(b, c.Path)
	if err != nil {
		return nil, err
	}
	if old != nil && old.Type == wire.TypeDir {
		return failf(wire.IsDir, "%q is a directory", c.Path), nil
	}
	var missing []string
	if old == nil {
		var res *Result
		missing, res, err = missingParents(b, c.Path, c.Flags&wire.FlagParents != 0)
		if res != nil || err != nil {
			return res, err
		}
	}
	if err := makeDirs(b, missing, index, c.Time); err != nil {
		return nil, err
	}
	e := &entry{Type: wire.TypeFile, Size: int64(len(c.Data)), Mtime: c.Time, Version: index, Checksum: checksum(c.Data)}
	if err := putEntry(b, c.Path, e); err != nil {
		return nil, storageErr("write "+c.Path, err)
	}
	if err := b.Set(dataKey(c.Path), c.Data, nil); err != nil {
		return nil, storageErr("write "+c.Path, err)
	}
	_, name := fspath.Split(c.Path)
	return &Result{Stat: e.stat(name)}, nil
}

func applyRemove(b *pebble.Batch, c *Command) (*Result, error) {
	if c.Path == "/" {
		return failf(wire.Invalid, "cannot remove %q", c.Path), nil
	}
	e, err := getEntry(b, c.Path)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return failf(wire.NotFound, "%q does not exist", c.Path), nil
	}
	// Gather every key to delete before deleting any, so that a read error
	// leaves b untouched.
	dels := [][]byte{entryKey(c.Path)}
	if parent, name := fspath.Split(c.Path); parent == "/" {
		dels = append(dels, rootKey(name))
	}
	if e.Type == wire.TypeFile {
		dels = append(dels, dataKey(c.Path))
	} else {
		children := childrenPrefix(c.Path)
		empty, err := isEmptyPrefix(b, children)
		if err != nil {
			return nil, err
		}
		if !empty && c.Flags&wire.FlagRecursive == 0 {
			return failf(wire.NotEmpty, "directory %q is not empty", c.Path), nil
		}
		if !empty {
			for _, pfx := range [][]byte{children, descendantsPrefix(c.Path)} {
				if dels, err = appendSubtree(b, pfx, dels); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, k := range dels {
		if err := b.Delete(k, nil); err != nil {
			return nil, storageErr("delete", err)
		}
	}
	return &Result{}, nil
}

func isEmptyPrefix(rd reader, p []byte) (bool, error) {
	it, err := prefixIter(rd, p)
	if err != nil {
		return false, storageErr("scan", err)
	}
	empty := !it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return false, storageErr("scan", err)
	}
	return empty, nil
}

// appendSubtree appends to dels the key of every entry under prefix p and
// the contents key of every file among them.
func appendSubtree(rd reader, p []byte, dels [][]byte) ([][]byte, error) {
	it, err := prefixIter(rd, p)
	if err != nil {
		return nil, storageErr("scan", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		k := bytes.Clone(it.Key())
		path, ok := pathOfEntryKey(k)
		if !ok {
			_ = it.Close()
			return nil, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("corrupt entry key %q", k)}
		}
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, storageErr("scan", err)
		}
		e, err := decodeEntry(path, v)
		if err != nil {
			_ = it.Close()
			return nil, err
		}
		dels = append(dels, k)
		if e.Type == wire.TypeFile {
			dels = append(dels, dataKey(path))
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, storageErr("scan", err)
	}
	return dels, nil
}

// --- reads -------------------------------------------------------------------

func rootStat() *wire.Stat { return &wire.Stat{Name: "", Type: wire.TypeDir} }

// snapshot validates p, opens a snapshot and, unless p is "/", checks that
// p's root is owned in it. The caller closes the snapshot.
func (f *FSM) snapshot(p string) (*pebble.Snapshot, error) {
	if err := fspath.Validate(p); err != nil {
		return nil, &wire.Error{Code: wire.Invalid, Message: err.Error()}
	}
	s := f.db.NewSnapshot()
	if p != "/" {
		if err := checkOwned(s, p); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

func stat(rd reader, p string) (*wire.Stat, error) {
	if p == "/" {
		return rootStat(), nil
	}
	e, err := getEntry(rd, p)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, &wire.Error{Code: wire.NotFound, Message: fmt.Sprintf("%q does not exist", p)}
	}
	_, name := fspath.Split(p)
	return e.stat(name), nil
}

// Stat returns the metadata of path from the committed state: one point get.
// Errors are *wire.Error (INVALID, WRONG_RANGE, NOT_FOUND, INTERNAL).
func (f *FSM) Stat(path string) (*wire.Stat, error) {
	s, err := f.snapshot(path)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return stat(s, path)
}

// Exists reports whether path exists in the committed state. Errors are
// *wire.Error (INVALID, WRONG_RANGE, INTERNAL).
func (f *FSM) Exists(path string) (bool, error) {
	_, err := f.Stat(path)
	var we *wire.Error
	if errors.As(err, &we) && we.Code == wire.NotFound {
		return false, nil
	}
	return err == nil, err
}

// Get returns the contents and metadata of file path from the committed
// state, verifying the contents against the stored checksum. Errors are
// *wire.Error (INVALID, WRONG_RANGE, NOT_FOUND, IS_DIR, INTERNAL).
func (f *FSM) Get(path string) ([]byte, *wire.Stat, error) {
	s, err := f.snapshot(path)
	if err != nil {
		return nil, nil, err
	}
	defer s.Close()
	st, err := stat(s, path)
	if err != nil {
		return nil, nil, err
	}
	if st.Type != wire.TypeFile {
		return nil, nil, &wire.Error{Code: wire.IsDir, Message: fmt.Sprintf("%q is a directory", path)}
	}
	data, err := getValue(s, dataKey(path))
	if err != nil {
		return nil, nil, storageErr("read contents of "+path, err)
	}
	if int64(len(data)) != st.Size || checksum(data) != st.Checksum {
		return nil, nil, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("integrity: contents of %q do not match its size or checksum", path)}
	}
	return data, st, nil
}

// List returns the direct children of directory dir from the committed
// state, sorted by name. Listing "/" returns the roots this node holds
// within its owned range. Errors are *wire.Error (INVALID, WRONG_RANGE,
// NOT_FOUND, NOT_DIR, INTERNAL).
func (f *FSM) List(dir string) ([]wire.Stat, error) {
	s, err := f.snapshot(dir)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if dir == "/" {
		return listRoots(s)
	}
	st, err := stat(s, dir)
	if err != nil {
		return nil, err
	}
	if st.Type != wire.TypeDir {
		return nil, &wire.Error{Code: wire.NotDir, Message: fmt.Sprintf("%q is a file", dir)}
	}
	pfx := childrenPrefix(dir)
	it, err := prefixIter(s, pfx)
	if err != nil {
		return nil, storageErr("list "+dir, err)
	}
	out := []wire.Stat{}
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
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, storageErr("list "+dir, err)
	}
	return out, nil
}

func listRoots(s *pebble.Snapshot) ([]wire.Stat, error) {
	r, ok, err := readRange(s)
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
