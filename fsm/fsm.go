package fsm

// The file state machine of a storage node: the namespace of the roots this
// cluster owns, kept in Pebble, changed only by Apply.
//
// Key layout. Every key lives under "s/" (the replica keeps its own keys
// under "r/"). P(x) is the 8-byte big-endian ring point of root x
// (ring.Point, xxhash64); "\x00" separates a parent path from a child's
// name (a path never contains NUL, so the split is unambiguous). H is the
// 32-byte SHA-256 of a chunk; be64 is 8 bytes big-endian.
//
//	s/m/range                        → msgpack wire.Range: the owned range (Bootstrap)
//	s/m/clock                        → be64: the largest entry clock applied (clock.go)
//	s/e/ P(root) parent \x00 name     → msgpack entry{type,size,mtime,version,checksum,block,sum,data}
//	s/d/ P(root) path \x00 be64(i)    → H: block i of file path is chunk H (absent: a hole, zeros;
//	                                    none for a small file kept in its entry's data, inline.go)
//	s/n/ root                        → "" : index of the roots held, in name order
//	s/c/ H                           → the chunk's bytes (chunk.go)
//	s/k/ H                           → msgpack chunkMeta{refs,touched,size,hull}
//	s/p/ be64(time) H                → "" : unreferenced chunk, collectable after time+ChunkTTL
//	s/s/ be64(session)               → msgpack sessionMeta{low,count,last use,high} (session.go)
//	s/s/ be64(session) be64(seq)     → msgpack Result of that request
//	s/t/ be64(last use) be64(session) → "" : sessions in expiry order
//
// For example "/photos/2024/a.jpg" has its entry at
// "s/e/" P(photos) "/photos/2024\x00a.jpg" and its blocks at
// "s/d/" P(photos) "/photos/2024/a.jpg\x00" be64(0), be64(1), ...; the root
// "/photos" itself has its entry at "s/e/" P(photos) "/\x00photos" and the
// index key "s/n/photos".
//
//   - stat is one point get of the entry; it never reads contents.
//   - list of a directory D is one prefix scan of "s/e/" P + D "\x00", in
//     name order; list of "/" is a scan of "s/n/" plus a get per root.
//   - the subtree below D is exactly the two prefixes "s/e/" P + D "\x00"
//     (D's children) and "s/e/" P + D "/" (everything deeper); the block
//     maps below D are under "s/d/" P + D "/", and a file F's own under
//     "s/d/" P + F "\x00".
//   - a file is a grid of blocks of its entry's block size B: block i holds
//     bytes [iB, min((i+1)B, size)); every stored block's chunk has exactly
//     that length, so a range read or a write touches only its blocks.
//   - chunks are shared by the whole cluster (identical blocks are stored
//     once, with a reference count), so they do not move with a root's
//     hash range: dropping half a range after a split must release the
//     dropped files' block references (decrement), not DeleteRange "s/c/".
//     Everything else of one root, and of all roots whose points fall in one
//     hash range, is contiguous under "s/e/" and "s/d/".

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

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

// Limits of the state machine.
const (
	// maxTreeEntries bounds the entries (the directory itself and
	// everything below it) that one RENAME or recursive REMOVE of a
	// directory moves or deletes: each is one log entry, applied in one
	// batch, whose cost must stay bounded. Larger trees are refused
	// TOO_LARGE; remove or move their subdirectories first.
	maxTreeEntries = 10000
	// maxFileSize bounds the size a WRITE or APPEND may give a file (1 PiB):
	// it keeps offset arithmetic far from overflow.
	maxFileSize = int64(1) << 50
)

// entry is the stored metadata of one path. Field names are short and fixed:
// they are part of the on-disk format.
type entry struct {
	Type     wire.FileType `msgpack:"t"`
	Size     int64         `msgpack:"s,omitempty"`
	Mtime    int64         `msgpack:"m,omitempty"`
	Version  uint64        `msgpack:"v"`
	Checksum string        `msgpack:"c,omitempty"`
	Block    int64         `msgpack:"b,omitempty"` // files: block size of the grid (chunk.go)
	Sum      []byte        `msgpack:"a,omitempty"` // files: the 32-byte block checksum sum A (chunk.go); absent in entries written before it
	Data     []byte        `msgpack:"d,omitempty"` // files kept inline: the whole contents, and no block records (inline.go)

	// unloaded marks, in memory only, an inline file's entry as the apply
	// cache keeps it: without Data (entryOf). tx.loadData loads it;
	// putEntry refuses to store such an entry.
	unloaded bool
}

// inline reports whether e is a file keeping its contents in the entry.
func (e *entry) inline() bool { return len(e.Data) > 0 || e.unloaded }

func (e *entry) stat(name string) *wire.Stat {
	return &wire.Stat{Name: name, Type: e.Type, Size: e.Size, Mtime: e.Mtime, Version: e.Version, Checksum: e.Checksum}
}

// FSM is the file state machine. Apply must be called from one goroutine at
// a time; the read methods (Range, Stat, Exists, Read, ListPage) read the
// committed state of the DB and are safe for concurrent use with each other
// and with Apply. Besides the DB handle FSM holds copies of replicated
// state: the entry clock (clock.go) and what Apply caches (cache.go).
type FSM struct {
	db    *pebble.DB
	clock atomic.Int64 // largest entry time applied (clock.go)
	cache applyCache
	memo  atomic.Pointer[rangeMemo] // the range record decoded last (readRange)
}

// rangeMemo is a stored range record's bytes and their decoded value.
type rangeMemo struct {
	raw []byte
	r   wire.Range
}

// NewFSM returns the state machine over db, with the entry clock loaded
// from it. It does not take ownership: the caller closes db.
func NewFSM(db *pebble.DB) (*FSM, error) {
	f := &FSM{db: db}
	if err := f.loadClock(); err != nil {
		return nil, err
	}
	return f, nil
}

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
		return fmt.Errorf("fsm: bootstrap: range %v is empty or reversed", r)
	}
	_, err := getValue(f.db, []byte(rangeKey))
	switch {
	case err == nil:
		return fmt.Errorf("fsm: bootstrap: already bootstrapped")
	case !errors.Is(err, pebble.ErrNotFound):
		return fmt.Errorf("fsm: bootstrap: %w", err)
	}
	if err := f.setRange(b, &r); err != nil {
		return fmt.Errorf("fsm: bootstrap: %w", err)
	}
	return nil
}

// Range returns the owned range from the committed state.
func (f *FSM) Range() (wire.Range, error) {
	r, ok, err := f.readRange(f.db)
	if err != nil {
		return wire.Range{}, err
	}
	if !ok {
		return wire.Range{}, &wire.Error{Code: wire.Unavailable, Message: "node not bootstrapped: it owns no range"}
	}
	return r, nil
}

// readRange returns the owned range stored in rd (ok false: none). Every
// read checks it, so it decodes the record only when its bytes differ
// from the last ones decoded: the answer is a function of the bytes alone.
func (f *FSM) readRange(rd reader) (r wire.Range, ok bool, err error) {
	v, c, err := rd.Get([]byte(rangeKey))
	if errors.Is(err, pebble.ErrNotFound) {
		return wire.Range{}, false, nil
	}
	if err != nil {
		return wire.Range{}, false, storageErr("read range", err)
	}
	defer func() {
		if cerr := c.Close(); cerr != nil && err == nil {
			r, ok, err = wire.Range{}, false, storageErr("read range", cerr)
		}
	}()
	if m := f.memo.Load(); m != nil && bytes.Equal(m.raw, v) {
		return m.r, true, nil
	}
	if err := msgpack.Unmarshal(v, &r); err != nil {
		return wire.Range{}, false, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("corrupt range record: %v", err)}
	}
	f.memo.Store(&rangeMemo{raw: bytes.Clone(v), r: r})
	return r, true, nil
}

// getRecord reads the msgpack record at key into a new T, or returns nil
// when there is none. names, called only on failure, says what a storage
// error ("read ...") and a decoding error ("corrupt ...") call the record.
func getRecord[T any](rd reader, key []byte, names func() (read, corrupt string)) (*T, error) {
	v, err := getValue(rd, key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		read, _ := names()
		return nil, storageErr("read "+read, err)
	}
	var r T
	if err := msgpack.Unmarshal(v, &r); err != nil {
		_, corrupt := names()
		return nil, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("corrupt %s: %v", corrupt, err)}
	}
	return &r, nil
}

// ownedErr is the WRONG_RANGE error for p (not "/") unless its root lies
// in the range r (ok: a range is stored); nil if it does.
func ownedErr(r wire.Range, ok bool, p string) error {
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

// dataPathKey is "s/d/" P(root) p: the common start of the block keys of
// file p (followed by "\x00") and of the files below directory p
// (followed by "/").
func dataPathKey(p string) []byte {
	k := make([]byte, 0, len(dataPrefix)+8+len(p)+9)
	k = append(k, dataPrefix...)
	k = appendPoint(k, fspath.Root(p))
	return append(k, p...)
}

// blocksPrefix is the prefix of the block keys of file p.
func blocksPrefix(p string) []byte { return append(dataPathKey(p), 0) }

// blockKey is the key of block i of file p.
func blockKey(p string, i int64) []byte {
	return binary.BigEndian.AppendUint64(blocksPrefix(p), uint64(i))
}

// subtreeDataPrefix is the prefix of the block keys of every file below dir.
func subtreeDataPrefix(dir string) []byte { return append(dataPathKey(dir), '/') }

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
	v, c, err := rd.Get(entryKey(p))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, storageErr("read "+p, err)
	}
	e, err := decodeEntry(p, v)
	if cerr := c.Close(); cerr != nil {
		return nil, storageErr("read "+p, cerr)
	}
	return e, err
}

// decodeEntry decodes the stored entry v of p; the result does not alias v.
func decodeEntry(p string, v []byte) (*entry, error) {
	var e entry
	if decodeEntryFast(v, &e) == nil {
		return &e, nil
	}
	e = entry{}
	if err := msgpack.Unmarshal(bytes.Clone(v), &e); err != nil {
		return nil, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("corrupt entry for %q: %v", p, err)}
	}
	return &e, nil
}

// --- Apply ------------------------------------------------------------------

// Apply applies one committed log entry at index to the state in b, an
// indexed batch (reads through b see earlier writes of the same batch), and
// returns its Result, never nil. It is a deterministic function of (state in b, index,
// cmd): every replica applying the same entries produces the same state and
// results. Bad input (undecodable cmd, unknown op, invalid path) gives
// INVALID, never a panic; a command on a path outside the owned range gives
// WRONG_RANGE. A failed command writes nothing to b, except the record of
// its result when it carries a session (session.go).
//
// Before the command, Apply expires idle sessions and collects unreferenced
// chunks whose TTL has passed, judged by the entry's time (Command.Time),
// never by this node's clock; each entry does a bounded amount of this work.
//
// Apply reads only the entry and replicated records, never chunk bytes:
// what a WRITE or APPEND keeps of old blocks the leader read and put in
// the entry (PrepareWrite). Only the unprepared WRITE form of older
// entries still reads chunks. Its cost is bounded by what the entry
// writes, not by offsets or sizes in it (the file checksum is updated from
// the blocks written, chunk.go). A Result with Code INTERNAL means storage
// failed while reading (or a stored record is corrupt); this replica may
// then diverge from the others, so the caller must not commit b and must
// stop the replica (the storage node does).
func (f *FSM) Apply(b *pebble.Batch, index uint64, cmd []byte) *Result {
	c, err := decodeCommand(cmd, true) // c is done with before Apply returns
	if err != nil {
		return failf(wire.Invalid, "malformed command: %v", err)
	}
	if err := f.noteTime(b, c.expiryTime()); err != nil {
		return errResult(err)
	}
	res, err := f.applySession(b, index, c)
	if err != nil {
		return errResult(err)
	}
	return res
}

// apply runs one command, without exactly-once bookkeeping.
func (f *FSM) apply(b *pebble.Batch, index uint64, c *Command) (*Result, error) {
	if c.Op == wire.OpSplitFork || c.Op == wire.OpSplitCleanup {
		return f.applySplitOp(b, index, c) // split.go
	}
	if !c.Op.Mutating() {
		return failf(wire.Invalid, "op %v is not a state machine command", c.Op), nil
	}
	if err := fspath.ValidateStored(c.Path); err != nil {
		return failf(wire.Invalid, "%v", err), nil
	}
	if c.Path != "/" {
		if err := f.checkOwnedApply(b, c.Path); err != nil {
			return nil, err
		}
	}
	t := &tx{f: f, b: b, index: index, c: c}
	res, err := applyOp(t)
	if res != nil {
		res.cost = t.cost
	}
	return res, err
}

func applyOp(t *tx) (*Result, error) {
	c := t.c
	switch c.Op {
	case wire.OpMkdir:
		return applyMkdir(t)
	case wire.OpPut:
		return applyPut(t)
	case wire.OpRemove:
		return applyRemove(t)
	case wire.OpWrite:
		return applyWrite(t, false)
	case wire.OpAppend:
		return applyWrite(t, true)
	case wire.OpRename:
		return applyRename(t)
	case wire.OpCopy:
		return applyCopy(t)
	case wire.OpChunk:
		return applyChunk(t)
	case wire.OpCommit:
		return applyCommit(t)
	}
	return failf(wire.Invalid, "op %v is not a state machine command", c.Op), nil
}

// tx is one command being applied: the batch, the entry, and the chunk
// reference changes gathered until flush (chunk.go).
type tx struct {
	f     *FSM
	b     *pebble.Batch
	index uint64
	c     *Command
	refs  map[ChunkID]int64  // reference count changes
	fresh map[ChunkID][]byte // contents of chunks this command may create
	zeros map[int64]ChunkID  // SHA-256 of n zero bytes, by n
	head  *ChunkID           // the chunk this command set as block 0 of the file it finishes; nil: not known, read it
	cost  int64              // block records and checksum terms touched (Result.cost)
	// outside is set by a split's cleanup to the owned range: chunks it
	// unreferences that only uploads outside it may wait for are deleted
	// at once instead of left pending.
	outside *wire.Range
}

// missingParents checks the ancestors of p (not "/") and returns the
// ancestors that do not exist yet, outermost first. It relies on the
// invariant that an existing directory's ancestors all exist as directories,
// so it reads upward only until it finds an existing ancestor. Without
// parents it fails with NOT_FOUND (nearest existing ancestor is a directory)
// or NOT_DIR (it is a file) when the parent is missing.
func (t *tx) missingParents(p string, parents bool) ([]string, *Result, error) {
	var missing []string
	dir, _ := fspath.Split(p)
	for dir != "/" {
		e, err := t.f.entryOf(t.b, dir)
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

// makeDirs writes the entries of the directories dirs, created by the
// command being applied.
func (t *tx) makeDirs(dirs []string) error {
	for _, d := range dirs {
		if err := t.f.putEntry(t.b, d, &entry{Type: wire.TypeDir, Mtime: t.c.Time, Version: t.index}); err != nil {
			return err
		}
	}
	return nil
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

// scanPrefix calls fn for every key and value under prefix p, in key order.
// Key and value are only valid during the call.
func scanPrefix(rd reader, p []byte, fn func(k, v []byte) error) error {
	it, err := prefixIter(rd, p)
	if err != nil {
		return storageErr("scan", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return storageErr("scan", err)
		}
		if err := fn(it.Key(), v); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return storageErr("scan", err)
	}
	return nil
}
