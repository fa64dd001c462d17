package fsm

// The mutations of the file state machine. Each checks everything it can
// fail on before writing anything, so a failed command leaves b untouched
// (only a storage failure, INTERNAL, can stop one half-way).

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/wire"
)

// precondition checks FlagIfAbsent and IfVersion against the current entry
// of p (nil if p does not exist). IfVersion on a missing path is CONFLICT:
// the precondition "p is at version N" is false.
func precondition(c *Command, p string, e *entry) *Result {
	if c.Flags&wire.FlagIfAbsent != 0 && e != nil {
		return failf(wire.Conflict, "%q already exists (if-absent)", p)
	}
	if c.IfVersion != 0 {
		if e == nil {
			return failf(wire.Conflict, "%q does not exist (if-version %d)", p, c.IfVersion)
		}
		if e.Version != c.IfVersion {
			return failf(wire.Conflict, "%q is at version %d, not %d (if-version)", p, e.Version, c.IfVersion)
		}
	}
	return nil
}

// fileTarget reads the entry of p as the target of a file write: p must
// not be "/" nor a directory, and the preconditions must hold. If p does
// not exist it returns the missing parents to create (FlagParents).
func fileTarget(t *tx, p string) (old *entry, missing []string, res *Result, err error) {
	if p == "/" {
		return nil, nil, failf(wire.IsDir, "%q is a directory", p), nil
	}
	old, err = t.f.entryOf(t.b, p)
	if err != nil {
		return nil, nil, nil, err
	}
	if old != nil && old.Type == wire.TypeDir {
		return nil, nil, failf(wire.IsDir, "%q is a directory", p), nil
	}
	if r := precondition(t.c, p, old); r != nil {
		return nil, nil, r, nil
	}
	if old == nil {
		missing, res, err = t.missingParents(p, t.c.Flags&wire.FlagParents != 0)
	}
	return old, missing, res, err
}

// finishFile writes the entry e of file p after its blocks: it renders
// the checksum (from e.Sum, which the caller set), applies the chunk
// reference changes and returns the file's Stat.
func (t *tx) finishFile(p string, e *entry) (*Result, error) {
	sum, err := t.checksum(p, e)
	if err != nil {
		return nil, err
	}
	e.Checksum = sum
	if err := t.flush(); err != nil {
		return nil, err
	}
	if err := t.f.putEntry(t.b, p, e); err != nil {
		return nil, err
	}
	_, name := fspath.Split(p)
	return &Result{Stat: e.stat(name)}, nil
}

func applyMkdir(t *tx) (*Result, error) {
	c := t.c
	parents := c.Flags&wire.FlagParents != 0
	if c.Path == "/" {
		if parents {
			return &Result{Stat: rootStat()}, nil
		}
		return failf(wire.Exists, "%q already exists", c.Path), nil
	}
	e, err := t.f.entryOf(t.b, c.Path)
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
	missing, res, err := t.missingParents(c.Path, parents)
	if res != nil || err != nil {
		return res, err
	}
	if err := t.makeDirs(append(missing, c.Path)); err != nil {
		return nil, err
	}
	return &Result{Stat: &wire.Stat{Name: name, Type: wire.TypeDir, Mtime: c.Time, Version: t.index}}, nil
}

func applyPut(t *tx) (*Result, error) {
	c := t.c
	old, missing, res, err := fileTarget(t, c.Path)
	if res != nil || err != nil {
		return res, err
	}
	if err := t.makeDirs(missing); err != nil {
		return nil, err
	}
	bs := orDefault(c.ChunkSize, DefaultChunkSize)
	inline := inlines(c, int64(len(c.Data)))
	if old != nil {
		rewrite := numBlocks(int64(len(c.Data)), bs)
		if inline {
			rewrite = 0
		}
		if err := t.dropFileBlocks(c.Path, old, rewrite); err != nil {
			return nil, err
		}
	}
	if inline {
		return t.finishFile(c.Path, t.inlineEntry(c.Data, bs))
	}
	sum, err := t.writeBlocks(c.Path, c.Data, bs)
	if err != nil {
		return nil, err
	}
	e := &entry{Type: wire.TypeFile, Size: int64(len(c.Data)), Mtime: c.Time, Version: t.index, Block: bs, Sum: sum[:]}
	return t.finishFile(c.Path, e)
}

// applyWrite writes Data at Offset (or, for APPEND, at the end), creating
// the file if it is absent and extending it as needed; bytes between the
// old end and Offset read as zeros. Only the blocks the write overlaps are
// rewritten, plus the old last block when the file grows past it (its
// chunk must then cover the whole block, see chunk.go).
//
// A prepared command (Base set, see Command) carries those blocks' new
// contents: apply checks that the file is still at Base and writes them,
// reading no chunk bytes. An unprepared one (older entries) reads the
// bytes it keeps from the local chunks.
func applyWrite(t *tx, appending bool) (*Result, error) {
	c := t.c
	if appending && c.Offset != 0 {
		return failf(wire.Invalid, "APPEND to %q takes no offset (got %d); use WRITE", c.Path, c.Offset), nil
	}
	if c.Offset < 0 {
		return failf(wire.Invalid, "WRITE to %q at negative offset %d", c.Path, c.Offset), nil
	}
	old, missing, res, err := fileTarget(t, c.Path)
	if res != nil || err != nil {
		return res, err
	}
	if err := t.loadData(c.Path, old); err != nil {
		return nil, err
	}
	if c.Base != nil && !c.Base.matches(old) {
		return &Result{Code: wire.Unavailable, Retry: true, Message: fmt.Sprintf("%q changed after the leader read it; not applied", c.Path)}, nil
	}
	n := int64(len(c.Data))
	if c.Base != nil {
		n = c.Length
	}
	w, res := planWrite(c, old, n, appending)
	if res != nil {
		return res, nil
	}
	datas := make([][]byte, len(w.blocks))
	if c.Base != nil {
		if res := preparedBlocks(c, w, datas); res != nil {
			return res, nil
		}
	}
	refs, err := blockRefs(t.b, c.Path, w.first(), w.last()+1)
	if err != nil {
		return nil, err
	}
	held := make(map[int64]ChunkID, len(refs))
	for _, r := range refs {
		held[r.i] = r.h
	}
	spilled := old != nil && len(old.Data) > 0 && len(w.blocks) > 0
	if spilled {
		// The write changes an inline file: it becomes a block file
		// (inline.go). w.e keeps the contents until the merge has read them.
		if held[0], err = t.spill(c.Path, old); err != nil {
			return nil, err
		}
	}
	if c.Base == nil {
		// Read what the new blocks keep of the old ones, before writing anything.
		if err := mergeBlocks(t, w, held, datas); err != nil {
			return nil, err
		}
	}
	sum := blockSum{}
	if old != nil {
		if sum, err = t.sumOf(c.Path, old); err != nil {
			return nil, err
		}
	}
	if err := t.makeDirs(missing); err != nil {
		return nil, err
	}
	if err := t.rewriteBlocks(w, held, datas, &sum); err != nil {
		return nil, err
	}
	e := w.e
	e.Size, e.Mtime, e.Version, e.Sum = w.size, c.Time, t.index, sum[:]
	if spilled {
		e.Data = nil
	}
	return t.finishFile(c.Path, e)
}

// preparedBlocks checks that the blocks of a prepared WRITE or APPEND are
// the ones plan w rewrites, each of its full length, and puts their bytes
// in datas. A mismatch is INVALID.
func preparedBlocks(c *Command, w *writePlan, datas [][]byte) *Result {
	if len(c.Blocks) != len(w.blocks) {
		return failf(wire.Invalid, "prepared WRITE to %q carries %d blocks; it rewrites %d", c.Path, len(c.Blocks), len(w.blocks))
	}
	for k, b := range c.Blocks {
		if b.I != w.blocks[k] || int64(len(b.Data)) != blockLen(w.size, w.e.Block, b.I) {
			return failf(wire.Invalid, "prepared WRITE to %q: block %d of %d bytes where it rewrites block %d of %d", c.Path, b.I, len(b.Data), w.blocks[k], blockLen(w.size, w.e.Block, w.blocks[k]))
		}
		datas[k] = b.Data
	}
	return nil
}

// mergeBlocks fills datas with the new contents of the blocks plan w
// rewrites, for the unprepared form of older entries: the old bytes a
// block keeps (read from its chunk in held) merged with the command's
// data.
func mergeBlocks(t *tx, w *writePlan, held map[int64]ChunkID, datas [][]byte) error {
	for k, i := range w.blocks {
		var prev []byte
		if _, ok := held[i]; ok && !w.covers(i) {
			var err error
			if prev, err = readBlock(t.b, t.c.Path, w.e, i); err != nil {
				return err
			}
		}
		datas[k] = w.merge(i, prev, t.c.Data)
	}
	return nil
}

// rewriteBlocks writes the blocks plan w rewrites with datas, replacing
// the chunks in held, and moves the file's block checksum sum from the
// old blocks' terms to the new ones.
func (t *tx) rewriteBlocks(w *writePlan, held map[int64]ChunkID, datas [][]byte, sum *blockSum) error {
	for k, i := range w.blocks {
		h, hadOld := held[i]
		if hadOld {
			if x, ok := t.termOf(i, h, blockLen(w.e.Size, w.e.Block, i)); ok {
				sum.sub(x)
			}
		}
		nh, err := t.setBlock(t.c.Path, i, datas[k], h, hadOld)
		if err != nil {
			return err
		}
		if x, ok := termOfData(i, datas[k], nh); ok {
			sum.add(x)
		}
		t.cost++
	}
	return nil
}

// matches reports whether the file state e (nil: absent) is the state b
// that a prepared write was computed from.
func (b *WriteBase) matches(e *entry) bool {
	if e == nil {
		return b.Type == 0
	}
	return b.Type == e.Type && b.Version == e.Version && b.Size == e.Size
}

// writePlan is where a WRITE or APPEND of n bytes lands in a file.
type writePlan struct {
	e        *entry  // a copy of the file's entry (a new one for a new file)
	off, end int64   // the bytes written
	size     int64   // the file's size after the write
	blocks   []int64 // the blocks rewritten, in order
}

func (w *writePlan) first() int64 {
	if len(w.blocks) == 0 {
		return 0
	}
	return w.blocks[0]
}

func (w *writePlan) last() int64 {
	if len(w.blocks) == 0 {
		return -1
	}
	return w.blocks[len(w.blocks)-1]
}

// covers reports whether the write replaces every byte of block i.
func (w *writePlan) covers(i int64) bool {
	bs := w.e.Block
	start := i * bs
	return w.off <= start && start+blockLen(w.size, bs, i) <= w.end
}

// merge returns the new content of block i: prev (its old bytes, nil for
// a hole or a block the write covers), zero-extended, with the written
// bytes data over it.
func (w *writePlan) merge(i int64, prev, data []byte) []byte {
	bs := w.e.Block
	start := i * bs
	out := make([]byte, blockLen(w.size, bs, i))
	copy(out, prev)
	if lo, hi := max(w.off, start), min(w.end, start+int64(len(out))); lo < hi {
		copy(out[lo-start:hi-start], data[lo-w.off:hi-w.off])
	}
	return out
}

// planWrite computes where c, writing n bytes, lands in the file whose
// entry is old (nil: a new file), or the failure that refuses it.
func planWrite(c *Command, old *entry, n int64, appending bool) (*writePlan, *Result) {
	e := &entry{Type: wire.TypeFile, Block: orDefault(c.ChunkSize, DefaultChunkSize)}
	if old != nil {
		*e = *old
	}
	bs := e.Block
	off := c.Offset
	if appending {
		off = e.Size
	}
	if off > maxFileSize-n {
		return nil, failf(wire.TooLarge, "write of %d bytes at offset %d would make %q larger than %d bytes", n, off, c.Path, maxFileSize)
	}
	w := &writePlan{e: e, off: off, end: off + n, size: e.Size}
	if n > 0 { // an empty write changes no bytes and no size (like pwrite)
		w.size = max(w.size, w.end)
		for i := off / bs; i <= (w.end-1)/bs; i++ {
			w.blocks = append(w.blocks, i)
		}
	}
	if e.Size > 0 && w.size > e.Size && e.Size%bs != 0 {
		if last := (e.Size - 1) / bs; len(w.blocks) == 0 || last < w.blocks[0] {
			w.blocks = append([]int64{last}, w.blocks...)
		}
	}
	return w, nil
}

func applyRemove(t *tx) (*Result, error) {
	c := t.c
	if c.Path == "/" {
		return failf(wire.Invalid, "cannot remove %q", c.Path), nil
	}
	e, err := t.f.entryOf(t.b, c.Path)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return failf(wire.NotFound, "%q does not exist", c.Path), nil
	}
	// Gather every entry key to delete before deleting any.
	dels := [][]byte{entryKey(c.Path)}
	if parent, name := fspath.Split(c.Path); parent == "/" {
		dels = append(dels, rootKey(name))
	}
	blocks := blocksPrefix(c.Path)
	if e.Type == wire.TypeDir {
		blocks = subtreeDataPrefix(c.Path)
		children := childrenPrefix(c.Path)
		empty, err := isEmptyPrefix(t.b, children)
		if err != nil {
			return nil, err
		}
		if !empty && c.Flags&wire.FlagRecursive == 0 {
			return failf(wire.NotEmpty, "directory %q is not empty", c.Path), nil
		}
		if res, err := checkTreeSize(t.b, c); res != nil || err != nil {
			return res, err
		}
		for _, pfx := range [][]byte{children, descendantsPrefix(c.Path)} {
			err := scanPrefix(t.b, pfx, func(k, _ []byte) error {
				dels = append(dels, bytes.Clone(k))
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	if err := t.dropBlocks(blocks); err != nil {
		return nil, err
	}
	t.f.forgetEntries(dels)
	for _, k := range dels {
		if err := t.b.Delete(k, nil); err != nil {
			return nil, storageErr("delete", err)
		}
	}
	if err := t.flush(); err != nil {
		return nil, err
	}
	return &Result{}, nil
}

// checkTreeSize refuses (TOO_LARGE) a RENAME or recursive REMOVE of the
// directory c.Path when it and its subtree hold more than maxTreeEntries
// entries. It reads at most maxTreeEntries keys.
func checkTreeSize(rd reader, c *Command) (*Result, error) {
	n := 1 // the directory itself
	for _, pfx := range [][]byte{childrenPrefix(c.Path), descendantsPrefix(c.Path)} {
		it, err := prefixIter(rd, pfx)
		if err != nil {
			return nil, storageErr("scan", err)
		}
		for valid := it.First(); valid && n <= maxTreeEntries; valid = it.Next() {
			n++
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return nil, storageErr("scan", err)
		}
	}
	if n > maxTreeEntries {
		return failf(wire.TooLarge, "%v of %q: the directory holds more than %d entries (itself included), the most one %v may move or remove at once; %v its subdirectories first", c.Op, c.Path, maxTreeEntries, c.Op, c.Op), nil
	}
	return nil, nil
}

// twoPaths validates the destination of RENAME and COPY.
func twoPaths(c *Command) *Result {
	if err := fspath.ValidateStored(c.To); err != nil {
		return failf(wire.Invalid, "destination: %v", err)
	}
	if c.Path == "/" || c.To == "/" {
		return failf(wire.Invalid, "cannot %v %q to %q: \"/\" is not a file or directory of a root", c.Op, c.Path, c.To)
	}
	if fspath.Root(c.Path) != fspath.Root(c.To) {
		return failf(wire.CrossRoot, "%q and %q are in different roots (%q, %q); %v works within one root",
			c.Path, c.To, fspath.Root(c.Path), fspath.Root(c.To), c.Op)
	}
	return nil
}

// twoPathSource checks the paths of a RENAME or COPY and returns the
// entry of its source, c.Path: NOT_FOUND if there is none, IS_DIR if it is
// a directory and dirs is false (COPY), CONFLICT if c.IfVersion does not
// match it.
func twoPathSource(t *tx, dirs bool) (*entry, *Result, error) {
	c := t.c
	if r := twoPaths(c); r != nil {
		return nil, r, nil
	}
	se, err := t.f.entryOf(t.b, c.Path)
	switch {
	case err != nil:
		return nil, nil, err
	case se == nil:
		return nil, failf(wire.NotFound, "%q does not exist", c.Path), nil
	case se.Type == wire.TypeDir && !dirs:
		return nil, failf(wire.IsDir, "%q is a directory; COPY copies one file", c.Path), nil
	case c.IfVersion != 0 && se.Version != c.IfVersion:
		return nil, failf(wire.Conflict, "%q is at version %d, not %d (if-version)", c.Path, se.Version, c.IfVersion), nil
	}
	return se, nil, nil
}

// kv is one key and value to write.
type kv struct{ k, v []byte }

// moveKeys gathers the keys under pfx (with their values), renamed from
// prefix from to prefix to.
func moveKeys(t *tx, pfx, from, to []byte, out []kv, olds [][]byte) ([]kv, [][]byte, error) {
	err := scanPrefix(t.b, pfx, func(k, v []byte) error {
		nk := append(bytes.Clone(to), k[len(from):]...)
		out = append(out, kv{nk, bytes.Clone(v)})
		olds = append(olds, bytes.Clone(k))
		return nil
	})
	return out, olds, err
}

// applyRename moves a file or a directory tree from Path to To, within one
// root, in one batch. Like POSIX rename(2): a file replaces a file, a
// directory replaces an empty directory; a directory never moves into
// itself. FlagIfAbsent refuses any existing destination (CONFLICT);
// IfVersion is checked against the source.
func applyRename(t *tx) (*Result, error) {
	c := t.c
	src, dst := c.Path, c.To
	se, res, err := twoPathSource(t, true)
	if res != nil || err != nil {
		return res, err
	}
	if err := t.loadData(src, se); err != nil {
		return nil, err
	}
	de, err := t.f.entryOf(t.b, dst)
	if err != nil {
		return nil, err
	}
	if de != nil && c.Flags&wire.FlagIfAbsent != 0 {
		return failf(wire.Conflict, "%q already exists (if-absent)", dst), nil
	}
	_, name := fspath.Split(dst)
	if src == dst {
		return &Result{Stat: se.stat(name)}, nil
	}
	if fspath.IsWithin(dst, src) {
		return failf(wire.Invalid, "cannot move %q into itself (%q)", src, dst), nil
	}
	missing, res, err := renameTarget(t, se, de)
	if res != nil || err != nil {
		return res, err
	}
	if se.Type == wire.TypeDir {
		if res, err := checkTreeSize(t.b, c); res != nil || err != nil {
			return res, err
		}
	}
	sets, olds, err := renameMoves(t, se, src, dst)
	if err != nil {
		return nil, err
	}
	// Write: parents, release a replaced file, delete the old keys, set the new.
	if err := t.makeDirs(missing); err != nil {
		return nil, err
	}
	if de != nil && de.Type == wire.TypeFile {
		if err := t.dropBlocks(blocksPrefix(dst)); err != nil {
			return nil, err
		}
	}
	t.f.forgetEntries(olds)
	for _, k := range olds {
		if err := t.b.Delete(k, nil); err != nil {
			return nil, storageErr("rename", err)
		}
	}
	sort.Slice(sets, func(i, j int) bool { return bytes.Compare(sets[i].k, sets[j].k) < 0 })
	for _, s := range sets {
		t.f.forgetEntries([][]byte{s.k})
		if err := t.b.Set(s.k, s.v, nil); err != nil {
			return nil, storageErr("rename", err)
		}
	}
	moved := *se
	moved.Version = t.index
	if err := t.flush(); err != nil {
		return nil, err
	}
	if err := t.f.putEntry(t.b, dst, &moved); err != nil {
		return nil, err
	}
	return &Result{Stat: moved.stat(name)}, nil
}

// renameTarget checks the destination of a RENAME of source entry se to
// c.To, whose entry is de (nil: none): a file may replace a file and a
// directory an empty directory; a missing destination needs its parents
// (returned, outermost first, when FlagParents creates them).
func renameTarget(t *tx, se, de *entry) (missing []string, res *Result, err error) {
	dst := t.c.To
	if de == nil {
		return t.missingParents(dst, t.c.Flags&wire.FlagParents != 0)
	}
	switch {
	case se.Type == wire.TypeFile && de.Type == wire.TypeDir:
		return nil, failf(wire.IsDir, "%q is a directory; a file cannot replace it", dst), nil
	case se.Type == wire.TypeDir && de.Type == wire.TypeFile:
		return nil, failf(wire.NotDir, "%q is a file; a directory cannot replace it", dst), nil
	case de.Type == wire.TypeDir:
		empty, err := isEmptyPrefix(t.b, childrenPrefix(dst))
		if err != nil {
			return nil, nil, err
		}
		if !empty {
			return nil, failf(wire.NotEmpty, "directory %q is not empty", dst), nil
		}
	}
	return nil, nil, nil
}

// renameMoves gathers the keys a RENAME of src (entry se) to dst moves:
// the source's block map, or the whole subtree's entries and block maps.
// sets are the new keys and values, olds the keys to delete (src's entry
// first).
func renameMoves(t *tx, se *entry, src, dst string) (sets []kv, olds [][]byte, err error) {
	olds = [][]byte{entryKey(src)}
	if se.Type == wire.TypeFile {
		return moveKeys(t, blocksPrefix(src), blocksPrefix(src), blocksPrefix(dst), sets, olds)
	}
	for _, pfx := range [][]byte{childrenPrefix(src), descendantsPrefix(src)} {
		err = scanPrefix(t.b, pfx, func(k, v []byte) error {
			p, ok := pathOfEntryKey(k)
			if !ok {
				return &wire.Error{Code: wire.Internal, Message: "corrupt entry key " + string(k)}
			}
			sets = append(sets, kv{entryKey(dst + p[len(src):]), bytes.Clone(v)})
			olds = append(olds, bytes.Clone(k))
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return moveKeys(t, subtreeDataPrefix(src), dataPathKey(src), dataPathKey(dst), sets, olds)
}

// applyCopy makes To a copy of the file Path, within one root, sharing its
// chunks. To may not be a directory; an existing file is replaced unless
// FlagIfAbsent. IfVersion is checked against the source.
func applyCopy(t *tx) (*Result, error) {
	c := t.c
	src, dst := c.Path, c.To
	se, res, err := twoPathSource(t, false)
	if res != nil || err != nil {
		return res, err
	}
	if err := t.loadData(src, se); err != nil {
		return nil, err
	}
	if src == dst {
		return failf(wire.Invalid, "cannot copy %q onto itself", src), nil
	}
	de, err := t.f.entryOf(t.b, dst)
	if err != nil {
		return nil, err
	}
	var missing []string
	switch {
	case de != nil && de.Type == wire.TypeDir:
		return failf(wire.IsDir, "%q is a directory", dst), nil
	case de != nil && c.Flags&wire.FlagIfAbsent != 0:
		return failf(wire.Conflict, "%q already exists (if-absent)", dst), nil
	case de == nil:
		var res *Result
		missing, res, err = t.missingParents(dst, c.Flags&wire.FlagParents != 0)
		if res != nil || err != nil {
			return res, err
		}
	}
	refs, err := blockRefs(t.b, src, 0, numBlocks(se.Size, se.Block))
	if err != nil {
		return nil, err
	}
	if err := t.makeDirs(missing); err != nil {
		return nil, err
	}
	if de != nil {
		if err := t.dropBlocks(blocksPrefix(dst)); err != nil {
			return nil, err
		}
	}
	for _, r := range refs {
		t.ref(r.h, 1)
		if err := t.b.Set(blockKey(dst, r.i), r.h[:], nil); err != nil {
			return nil, storageErr("copy", err)
		}
	}
	e := *se
	e.Mtime, e.Version = c.Time, t.index
	sum, err := t.sumOf(src, se)
	if err != nil {
		return nil, err
	}
	e.Sum = sum[:]
	return t.finishFile(dst, &e)
}

// applyCommit makes Path the file whose blocks are the named chunks, stored
// before by CHUNK. Every chunk but the last must have the first one's size
// (that becomes the file's block size), the last at most that, and the
// sizes must add up to Size. The file changes in one step: a reader sees
// the old or the new contents, never a mix.
func applyCommit(t *tx) (*Result, error) {
	c := t.c
	if c.Size < 0 || c.Size > maxFileSize {
		return failf(wire.Invalid, "COMMIT of %q: size %d is outside [0, %d]", c.Path, c.Size, maxFileSize), nil
	}
	old, missing, res, err := fileTarget(t, c.Path)
	if res != nil || err != nil {
		return res, err
	}
	ids := make([]ChunkID, len(c.Chunks))
	var total, first int64
	for i, name := range c.Chunks {
		h, err := ParseChunkName(name)
		if err != nil {
			return failf(wire.Invalid, "COMMIT of %q: chunk %d: %v", c.Path, i, err), nil
		}
		m, err := t.f.chunkMeta(t.b, h)
		if err != nil {
			return nil, err
		}
		if m == nil {
			return failf(wire.NotFound, "COMMIT of %q: chunk %d (%s) is not stored: upload it with CHUNK first (unreferenced chunks are collected after the chunk TTL)", c.Path, i, name), nil
		}
		if i == 0 {
			first = m.Size
		}
		if (i < len(c.Chunks)-1 && m.Size != first) || m.Size > first {
			return failf(wire.Invalid, "COMMIT of %q: chunk %d (%s) has %d bytes; every chunk but the last must have the first chunk's %d bytes, the last at most that", c.Path, i, name, m.Size, first), nil
		}
		ids[i] = h
		total += m.Size
	}
	if total != c.Size {
		return failf(wire.Invalid, "COMMIT of %q: the %d chunks add up to %d bytes, not size %d", c.Path, len(ids), total, c.Size), nil
	}
	bs := orDefault(c.ChunkSize, DefaultChunkSize)
	if len(ids) > 1 || first > bs {
		bs = first
	}
	if err := t.makeDirs(missing); err != nil {
		return nil, err
	}
	if old != nil {
		if err := t.dropFileBlocks(c.Path, old, int64(len(ids))); err != nil {
			return nil, err
		}
	}
	var sum blockSum
	for i, h := range ids {
		if i == 0 {
			t.head = &h
		}
		t.ref(h, 1)
		if err := t.b.Set(blockKey(c.Path, int64(i)), h[:], nil); err != nil {
			return nil, storageErr("commit "+c.Path, err)
		}
		if x, ok := t.termOf(int64(i), h, blockLen(total, bs, int64(i))); ok {
			sum.add(x)
		}
	}
	e := &entry{Type: wire.TypeFile, Size: total, Mtime: c.Time, Version: t.index, Block: bs, Sum: sum[:]}
	return t.finishFile(c.Path, e)
}
