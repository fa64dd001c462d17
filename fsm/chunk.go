package fsm

// Content-addressed chunks.
//
// A file is a grid of blocks of its entry's block size B (default 1 MiB,
// Config.ChunkSize, carried in each command so replicas agree). Block i
// covers bytes [iB, min((i+1)B, size)); its key "s/d/" P path "\x00" be64(i)
// names the chunk holding exactly those bytes, or is absent for a hole,
// which reads as zeros. A chunk is stored once per cluster under its
// SHA-256 ("s/c/" H) with a reference count ("s/k/" H): a chunk whose count
// drops to zero is deleted at once, unless a CHUNK request touched it within
// the chunk TTL, in which case it stays "pending" (indexed under "s/p/")
// until the TTL passes, so that an upload racing with a delete of the last
// file using the same bytes can still commit. A split's cleanup deletes at
// once the chunks it unreferences that only uploads for paths outside the
// cluster's range touched (chunkMeta's hull): none of their COMMITs can
// reach this cluster. Every chunk read is verified
// against its name; a mismatch is INTERNAL and never returned as data. A
// node that finds a chunk corrupt or missing (a read or the scrubber)
// rewrites it from another member's verified copy (FSM.RepairChunk).
//
// Checksum of a file (Stat.Checksum):
//   - size ≤ B: "sha256:<hex>", the SHA-256 of the contents;
//   - size > B: "sha256-sum:<B>:<hex>", the SHA-256 of be64(size) followed
//     by A, where A is the sum modulo 2^256 of SHA-256(be64(i) ‖ D_i), read
//     as 32-byte big-endian numbers, over the blocks i whose bytes are not
//     all zeros (D_i: the SHA-256 of block i). Holes and all-zero blocks
//     add nothing, so equal contents have equal checksums however they were
//     written. The entry keeps A (entry.Sum); a write subtracts the terms
//     of the blocks it replaces and adds those of the new ones, so its cost
//     is the blocks it writes, never the file's size or its holes.
// A checksum that detects corruption, not a commitment: someone choosing
// contents can make two files with the same sum (a generalized birthday
// attack on a 256-bit sum).

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"
)

// Chunk defaults, used when a command carries zero.
const (
	DefaultChunkSize = 1 << 20         // 1 MiB
	DefaultChunkTTL  = int64(3600e9)   // 1 hour, in nanoseconds of entry time
	chunkGCPerEntry  = 16              // pending chunks collected per applied entry, at most
	chunkNamePrefix  = "sha256:"       // chunk names are "sha256:<64 hex>"
	sumPrefix        = "sha256-sum:"   // checksum of files over one block
	MinChunkSize     = 4 << 10         // smallest configurable block size
	MaxChunkSize     = 4 << 20         // largest configurable block size (fits a frame)
	chunkKeyLen      = 4 + sha256.Size // "s/c/" H
	blockKeySuffix   = 1 + 8           // "\x00" be64(i)
	pendingKeyLen    = 4 + 8 + sha256.Size
	chunkMetaVersion = 0
)

const (
	chunkPrefix   = prefix + "c/"
	metaPrefix    = prefix + "k/"
	pendingPrefix = prefix + "p/"
)

// ChunkID is the SHA-256 of a chunk's bytes.
type ChunkID [sha256.Size]byte

func (h ChunkID) String() string { return chunkNamePrefix + hex.EncodeToString(h[:]) }

func ChunkOf(data []byte) ChunkID { return sha256.Sum256(data) }

// ParseChunkName parses "sha256:<64 lowercase hex>".
func ParseChunkName(s string) (ChunkID, error) {
	var h ChunkID
	hx, ok := strings.CutPrefix(s, chunkNamePrefix)
	if !ok || len(hx) != 2*sha256.Size || strings.ToLower(hx) != hx {
		return h, fmt.Errorf("chunk name %q is not %q followed by 64 lowercase hex digits", s, chunkNamePrefix)
	}
	if _, err := hex.Decode(h[:], []byte(hx)); err != nil {
		return h, fmt.Errorf("chunk name %q is not %q followed by 64 lowercase hex digits", s, chunkNamePrefix)
	}
	return h, nil
}

func chunkKey(h ChunkID) []byte {
	return append(append(make([]byte, 0, chunkKeyLen), chunkPrefix...), h[:]...)
}
func metaKey(h ChunkID) []byte {
	return append(append(make([]byte, 0, chunkKeyLen), metaPrefix...), h[:]...)
}
func pendingKey(t int64, h ChunkID) []byte {
	k := binary.BigEndian.AppendUint64([]byte(pendingPrefix), uint64(t))
	return append(k, h[:]...)
}

// chunkMeta is the bookkeeping of one stored chunk. Field names are part of
// the on-disk format.
type chunkMeta struct {
	Refs    int64 `msgpack:"r,omitempty"` // block references from files
	Touched int64 `msgpack:"t,omitempty"` // entry time of the last CHUNK request that stored it
	Size    int64 `msgpack:"s"`
	// [Lo, Hi] holds the ring points of the paths of the CHUNK requests
	// that touched it within the TTL of Touched, when Hull is set; unset
	// (a record written before the hull was kept) means any path may
	// still commit it. A split's cleanup deletes at once a chunk it leaves
	// unreferenced whose hull lies outside the cluster's range: no COMMIT
	// this cluster accepts can be waiting for it.
	Lo   uint64 `msgpack:"l,omitempty"`
	Hi   uint64 `msgpack:"h,omitempty"`
	Hull bool   `msgpack:"u,omitempty"`
}

// touch records a CHUNK request for path at time now (entry time) with
// the chunk TTL ttl: the time and the path's ring point in the hull.
func (m *chunkMeta) touch(path string, now, ttl int64) {
	pt := ring.PathPoint(path)
	switch live := m.Touched != 0 && now < m.Touched+ttl; {
	case !live:
		m.Lo, m.Hi, m.Hull = pt, pt, true
	case m.Hull:
		m.Lo, m.Hi = min(m.Lo, pt), max(m.Hi, pt)
	}
	m.Touched = now
}

// awaitedOutside reports whether only uploads for paths outside r can be
// waiting for the chunk: its hull is known and lies outside r.
func (m *chunkMeta) awaitedOutside(r wire.Range) bool {
	return m.Hull && (m.Hi < r.Start || (r.End != 0 && m.Lo >= r.End))
}

// readChunkIDs returns the id of every chunk rd stores, or nil if there
// are more than max.
func readChunkIDs(rd reader, max int) (map[ChunkID]struct{}, error) {
	ids := map[ChunkID]struct{}{}
	err := scanPrefix(rd, []byte(metaPrefix), func(k, _ []byte) error {
		var h ChunkID
		if len(k) != len(metaPrefix)+len(h) {
			return &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("corrupt chunk metadata key %q", k)}
		}
		copy(h[:], k[len(metaPrefix):])
		ids[h] = struct{}{}
		if len(ids) > max {
			return errTooMany
		}
		return nil
	})
	if errors.Is(err, errTooMany) {
		return nil, nil
	}
	return ids, err
}

// errTooMany stops readChunkIDs' scan.
var errTooMany = errors.New("too many chunks")

func getMeta(rd reader, h ChunkID) (*chunkMeta, error) {
	v, c, err := rd.Get(metaKey(h))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, storageErr("read chunk "+h.String(), err)
	}
	var m chunkMeta
	err = decodeChunkMeta(v, &m)
	if cerr := c.Close(); cerr != nil {
		return nil, storageErr("read chunk "+h.String(), cerr)
	}
	if err != nil {
		return nil, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("corrupt metadata of chunk %v: %v", h, err)}
	}
	return &m, nil
}

// decodeChunkMeta decodes the stored chunk metadata v into m, which must
// be zero.
func decodeChunkMeta(v []byte, m *chunkMeta) error {
	if decodeChunkMetaFast(v, m) == nil {
		return nil
	}
	*m = chunkMeta{}
	return msgpack.Unmarshal(bytes.Clone(v), m)
}

// readChunk returns the verified bytes of chunk h, which must have n bytes.
// path names the file, for the error.
func readChunk(rd reader, h ChunkID, n int64, path string) ([]byte, error) {
	v, err := getValue(rd, chunkKey(h))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, &CorruptError{Chunk: h, Err: &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("integrity: chunk %v of %s is missing", h, path)}}
	}
	if err != nil {
		return nil, storageErr("read chunk "+h.String()+" of "+path, err)
	}
	if ChunkOf(v) != h {
		return nil, corruptChunk(h, path, "sha256 mismatch")
	}
	if int64(len(v)) != n {
		// The right bytes (they match the name) where the block map wants
		// another length: the metadata is wrong, no replica's copy helps.
		return nil, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("integrity: chunk %v of %s has %d bytes where the file needs %d; not returned", h, path, len(v), n)}
	}
	return v, nil
}

// --- reference counting ------------------------------------------------------

func (t *tx) ref(h ChunkID, d int64) {
	if t.refs == nil {
		t.refs = map[ChunkID]int64{}
	}
	t.refs[h] += d
}

// store makes data a new block: it returns its chunk id, takes a reference
// and remembers the bytes in case the chunk is not stored yet.
func (t *tx) store(data []byte) ChunkID {
	h := ChunkOf(data)
	if t.fresh == nil {
		t.fresh = map[ChunkID][]byte{}
	}
	if _, ok := t.fresh[h]; !ok {
		t.fresh[h] = data
	}
	t.ref(h, 1)
	return h
}

// flush applies the gathered reference changes, in chunk order: new chunks
// are written, chunks left without references are deleted or, if a CHUNK
// request touched them within the TTL, left pending.
func (t *tx) flush() error {
	ids := make([]ChunkID, 0, len(t.refs))
	for h := range t.refs {
		ids = append(ids, h)
	}
	slices.SortFunc(ids, func(a, b ChunkID) int { return bytes.Compare(a[:], b[:]) })
	ttl := orDefault(t.c.ChunkTTL, DefaultChunkTTL)
	for _, h := range ids {
		d := t.refs[h]
		if d == 0 {
			continue
		}
		m, err := t.f.chunkMeta(t.b, h)
		if err != nil {
			return err
		}
		if m == nil {
			data, ok := t.fresh[h]
			if !ok || d < 0 {
				return &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("integrity: chunk %v is referenced but not stored", h)}
			}
			if err := t.b.Set(chunkKey(h), data, nil); err != nil {
				return storageErr("write chunk "+h.String(), err)
			}
			if err := t.f.putMeta(t.b, h, &chunkMeta{Refs: d, Size: int64(len(data))}); err != nil {
				return err
			}
			continue
		}
		old := m.Refs
		m.Refs += d
		switch {
		case m.Refs < 0:
			return &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("integrity: chunk %v reference count would drop to %d", h, m.Refs)}
		case old == 0 && m.Refs > 0:
			if err := t.b.Delete(pendingKey(m.Touched, h), nil); err != nil {
				return storageErr("write chunk "+h.String(), err)
			}
		case old > 0 && m.Refs == 0:
			if m.Touched != 0 && t.c.expiryTime() < m.Touched+ttl && !(t.outside != nil && m.awaitedOutside(*t.outside)) {
				t.f.noteWrite(pendingLow, m.Touched)
				if err := t.b.Set(pendingKey(m.Touched, h), nil, nil); err != nil {
					return storageErr("write chunk "+h.String(), err)
				}
				break
			}
			if err := t.f.deleteChunk(t.b, h); err != nil {
				return err
			}
			continue
		}
		if err := t.f.putMeta(t.b, h, m); err != nil {
			return err
		}
	}
	t.refs, t.fresh = nil, nil
	return nil
}

// collectChunks deletes up to chunkGCPerEntry pending chunks whose TTL has
// passed at the entry's time.
func (f *FSM) collectChunks(b *pebble.Batch, c *Command) error {
	ttl := orDefault(c.ChunkTTL, DefaultChunkTTL)
	if c.expiryTime()-ttl < 0 {
		return nil // nothing can be that old
	}
	if !f.mayHaveBelow(pendingLow, c.expiryTime()-ttl) {
		return nil // the cached bound proves there is no candidate
	}
	// The upper bound keeps the scan away from the tombstones of chunks
	// uploaded recently and already committed.
	var h0 ChunkID
	it, err := b.NewIter(&pebble.IterOptions{LowerBound: []byte(pendingPrefix), UpperBound: pendingKey(c.expiryTime()-ttl+1, h0)})
	if err != nil {
		return storageErr("scan pending chunks", err)
	}
	type due struct {
		key []byte
		t   int64
		h   ChunkID
	}
	var dues []due
	low, found := uint64(0), false
	for valid := it.First(); valid && len(dues) < chunkGCPerEntry; valid = it.Next() {
		k := it.Key()
		if len(k) != pendingKeyLen {
			_ = it.Close()
			return &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("corrupt pending chunk key %q", k)}
		}
		tm := int64(binary.BigEndian.Uint64(k[len(pendingPrefix):]))
		if !found {
			low, found = uint64(tm), true // the first key
		}
		if c.expiryTime() < tm+ttl {
			break
		}
		var d due
		d.key, d.t = bytes.Clone(k), tm
		copy(d.h[:], k[len(pendingPrefix)+8:])
		dues = append(dues, d)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return storageErr("scan pending chunks", err)
	}
	if !found {
		if low, err = firstTimeFrom(b, pendingPrefix, pendingKey(c.expiryTime()-ttl+1, h0)); err != nil {
			return storageErr("scan pending chunks", err)
		}
	}
	f.learnBound(pendingLow, low)
	for _, d := range dues {
		if err := b.Delete(d.key, nil); err != nil {
			return storageErr("collect chunk", err)
		}
		m, err := f.chunkMeta(b, d.h)
		if err != nil {
			return err
		}
		if m != nil && m.Refs == 0 && m.Touched == d.t {
			if err := f.deleteChunk(b, d.h); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyChunk stores Data as a chunk, pending until a COMMIT references it.
func applyChunk(t *tx) (*Result, error) {
	c := t.c
	max := orDefault(c.ChunkSize, DefaultChunkSize)
	switch {
	case len(c.Data) == 0:
		return failf(wire.Invalid, "CHUNK for %q has no data: a chunk holds 1 to %d bytes", c.Path, max), nil
	case int64(len(c.Data)) > max:
		return failf(wire.TooLarge, "CHUNK for %q has %d bytes; this cluster's chunk size is %d", c.Path, len(c.Data), max), nil
	}
	h := ChunkOf(c.Data)
	m, err := t.f.chunkMeta(t.b, h)
	if err != nil {
		return nil, err
	}
	if m == nil {
		if err := t.b.Set(chunkKey(h), c.Data, nil); err != nil {
			return nil, storageErr("write chunk "+h.String(), err)
		}
		m = &chunkMeta{Size: int64(len(c.Data))}
	} else if m.Refs == 0 {
		if err := t.b.Delete(pendingKey(m.Touched, h), nil); err != nil {
			return nil, storageErr("write chunk "+h.String(), err)
		}
	}
	m.touch(c.Path, c.expiryTime(), orDefault(c.ChunkTTL, DefaultChunkTTL))
	if m.Refs == 0 {
		t.f.noteWrite(pendingLow, m.Touched)
		if err := t.b.Set(pendingKey(m.Touched, h), nil, nil); err != nil {
			return nil, storageErr("write chunk "+h.String(), err)
		}
	}
	if err := t.f.putMeta(t.b, h, m); err != nil {
		return nil, err
	}
	return &Result{Chunk: h.String(), Stat: &wire.Stat{Name: h.String(), Type: wire.TypeFile, Size: m.Size, Mtime: c.Time, Version: t.index}}, nil
}

// --- block maps -----------------------------------------------------------------

// blockLen is the length of block i of a file of size n with block size bs.
func blockLen(n, bs, i int64) int64 { return min(bs, n-i*bs) }

// numBlocks is the number of blocks of a file of size n.
func numBlocks(n, bs int64) int64 { return (n + bs - 1) / bs }

// blockRef is one stored block of a file.
type blockRef struct {
	i int64
	h ChunkID
}

// blockRefs returns the stored blocks of file p with index in [from, to),
// in order.
//
// A few blocks are looked up one by one: point reads cost much less than
// opening an iterator (over a snapshot, or an indexed batch and the DB),
// and reading or rewriting one block is the common case.
func blockRefs(rd reader, p string, from, to int64) ([]blockRef, error) {
	const pointReads = 4
	if to-from <= pointReads {
		var out []blockRef
		for i := from; i < to; i++ {
			k := blockKey(p, i)
			v, c, err := rd.Get(k)
			if errors.Is(err, pebble.ErrNotFound) {
				continue // a hole
			}
			if err != nil {
				return nil, storageErr("read blocks of "+p, err)
			}
			if len(v) != sha256.Size {
				c.Close()
				return nil, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("corrupt block record %q of %s", k, p)}
			}
			r := blockRef{i: i}
			copy(r.h[:], v)
			out = append(out, r)
			if err := c.Close(); err != nil {
				return nil, storageErr("read blocks of "+p, err)
			}
		}
		return out, nil
	}
	pfx := blocksPrefix(p)
	it, err := rd.NewIter(&pebble.IterOptions{
		LowerBound: binary.BigEndian.AppendUint64(bytes.Clone(pfx), uint64(from)),
		UpperBound: binary.BigEndian.AppendUint64(bytes.Clone(pfx), uint64(to)),
	})
	if err != nil {
		return nil, storageErr("read blocks of "+p, err)
	}
	var out []blockRef
	for valid := it.First(); valid; valid = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != len(pfx)+8 || len(v) != sha256.Size {
			_ = it.Close()
			return nil, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("corrupt block record %q of %s", k, p)}
		}
		var r blockRef
		r.i = int64(binary.BigEndian.Uint64(k[len(pfx):]))
		copy(r.h[:], v)
		out = append(out, r)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, storageErr("read blocks of "+p, err)
	}
	return out, nil
}

// readBytes returns bytes [off, off+n) of file p (entry e), reading and
// verifying only the blocks that overlap the range. The range must lie
// within the file. For an inline file the result aliases e.Data.
func readBytes(rd reader, p string, e *entry, off, n int64) ([]byte, error) {
	if len(e.Data) > 0 {
		return inlineBytes(p, e, off, n)
	}
	out := make([]byte, n)
	if n == 0 {
		return out, nil
	}
	bs := e.Block
	first, last := off/bs, (off+n-1)/bs
	refs, err := blockRefs(rd, p, first, last+1)
	if err != nil {
		return nil, err
	}
	for _, r := range refs {
		data, err := readChunk(rd, r.h, blockLen(e.Size, bs, r.i), p)
		if err != nil {
			return nil, err
		}
		start := r.i * bs
		lo, hi := max(off, start), min(off+n, start+int64(len(data)))
		copy(out[lo-off:hi-off], data[lo-start:hi-start])
	}
	return out, nil
}

// readBlock returns the verified bytes of block i of file p (zeros for a
// hole), of length blockLen; the caller does not modify them.
func readBlock(rd reader, p string, e *entry, i int64) ([]byte, error) {
	return readBytes(rd, p, e, i*e.Block, blockLen(e.Size, e.Block, i))
}

// setBlock points block i of file p at a new chunk with data, releasing the
// chunk it held (old, if hadOld), and returns the new chunk's id.
func (t *tx) setBlock(p string, i int64, data []byte, old ChunkID, hadOld bool) (ChunkID, error) {
	if hadOld {
		t.ref(old, -1)
	}
	h := t.store(data)
	if err := t.b.Set(blockKey(p, i), h[:], nil); err != nil {
		return h, storageErr("write "+p, err)
	}
	return h, nil
}

// dropBlocks releases and deletes every block record under prefix pfx: one
// file's (blocksPrefix) or a whole subtree's (subtreeDataPrefix).
func (t *tx) dropBlocks(pfx []byte) error {
	var keys [][]byte
	err := scanPrefix(t.b, pfx, func(k, v []byte) error {
		if len(v) != sha256.Size {
			return &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("corrupt block record %q", k)}
		}
		keys = append(keys, bytes.Clone(k))
		t.ref(ChunkID(v), -1)
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := t.b.Delete(k, nil); err != nil {
			return storageErr("delete blocks", err)
		}
	}
	return nil
}

// dropFileBlocks releases and deletes the block records of file p, whose
// entry is e, except that the records of blocks [0, rewrite), which the
// caller sets again in the same batch, are released but not deleted (a
// delete that the next write of the key overrides). A file of a few
// blocks has them looked up one by one (block i exists only for i <
// numBlocks, see the top of fsm.go): point reads are much cheaper than an
// iterator over the indexed batch and the DB; a larger one is scanned.
func (t *tx) dropFileBlocks(p string, e *entry, rewrite int64) error {
	const pointReads = 4 // as in blockRefs
	if e.inline() {
		return nil // no block records
	}
	if e.Block <= 0 || numBlocks(e.Size, e.Block) > pointReads {
		return t.dropBlocks(blocksPrefix(p))
	}
	if h, ok := storedHead(e); ok && rewrite > 0 {
		t.ref(h, -1) // its only block, which the caller sets again
		return nil
	}
	for i := range numBlocks(e.Size, e.Block) {
		k := blockKey(p, i)
		v, c, err := t.b.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			continue // a hole
		}
		if err != nil {
			return storageErr("read blocks of "+p, err)
		}
		if len(v) != sha256.Size {
			c.Close()
			return &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("corrupt block record %q", k)}
		}
		t.ref(ChunkID(v), -1)
		if err := c.Close(); err != nil {
			return storageErr("read blocks of "+p, err)
		}
		if i < rewrite {
			continue
		}
		if err := t.b.Delete(k, nil); err != nil {
			return storageErr("delete blocks", err)
		}
	}
	return nil
}

// storedHead returns the chunk of block 0 of a one-block file (entry e)
// when the entry proves it is stored: the file's block checksum sum is
// not zero, so a block that is not all zeros is stored, and the only
// block is block 0, whose chunk's name is then the file's checksum (of
// its contents, chunk.go). Otherwise (holes or zeros, an entry from
// before Sum) ok is false and the caller reads the block record.
func storedHead(e *entry) (h ChunkID, ok bool) {
	if e.Size <= 0 || e.Size > e.Block || len(e.Sum) != sha256.Size || isZeros(e.Sum) {
		return h, false
	}
	h, err := ParseChunkName(e.Checksum)
	return h, err == nil
}

// writeBlocks stores data as the blocks of a new file p from block 0 and
// returns their block checksum sum.
func (t *tx) writeBlocks(p string, data []byte, bs int64) (blockSum, error) {
	var sum blockSum
	for i := int64(0); i*bs < int64(len(data)); i++ {
		chunk := data[i*bs : min(int64(len(data)), (i+1)*bs)]
		h := t.store(chunk)
		if i == 0 {
			t.head = &h
		}
		if err := t.b.Set(blockKey(p, i), h[:], nil); err != nil {
			return sum, storageErr("write "+p, err)
		}
		if x, ok := termOfData(i, chunk, h); ok {
			sum.add(x)
		}
	}
	return sum, nil
}

// zeroDigest is the SHA-256 of n zero bytes.
func zeroDigest(n int64) ChunkID {
	h := sha256.New()
	var zeros [32 << 10]byte
	for n > 0 {
		k := min(n, int64(len(zeros)))
		h.Write(zeros[:k])
		n -= k
	}
	var out ChunkID
	h.Sum(out[:0])
	return out
}

// blockSum is the additive block checksum of a file (see the top of this
// file): the sum, modulo 2^256, of one term per stored block that is not
// all zeros. Adding and removing a block's term costs O(1), so a write
// updates the checksum from the blocks it rewrites alone.
type blockSum [sha256.Size]byte

// blockTerm is the term of block i holding chunk h: SHA-256 of be64(i) and
// h, as a big-endian number.
func blockTerm(i int64, h ChunkID) blockSum {
	var buf [8 + sha256.Size]byte
	binary.BigEndian.PutUint64(buf[:8], uint64(i))
	copy(buf[8:], h[:])
	return sha256.Sum256(buf[:])
}

func (s *blockSum) add(x blockSum) { s.wordwise(x, bits.Add64) }

func (s *blockSum) sub(x blockSum) { s.wordwise(x, bits.Sub64) }

// wordwise sets s to op(s, x) one 64-bit word at a time, least significant
// first, passing op's carry (or borrow) on to the next word.
func (s *blockSum) wordwise(x blockSum, op func(a, b, carry uint64) (uint64, uint64)) {
	var carry uint64
	for w := 3; w >= 0; w-- {
		a := binary.BigEndian.Uint64(s[8*w:])
		b := binary.BigEndian.Uint64(x[8*w:])
		var r uint64
		r, carry = op(a, b, carry)
		binary.BigEndian.PutUint64(s[8*w:], r)
	}
}

// zero returns the SHA-256 of n zero bytes, computed once per length in a
// command.
func (t *tx) zero(n int64) ChunkID {
	if h, ok := t.zeros[n]; ok {
		return h
	}
	if t.zeros == nil {
		t.zeros = map[int64]ChunkID{}
	}
	h := zeroDigest(n)
	t.zeros[n] = h
	return h
}

// termOf is the checksum term of block i holding chunk h of n bytes: none
// (ok false) for an all-zero block, which counts as a hole.
func (t *tx) termOf(i int64, h ChunkID, n int64) (blockSum, bool) {
	t.cost++
	if h == t.zero(n) {
		return blockSum{}, false
	}
	return blockTerm(i, h), true
}

// termOfData is termOf for a block whose bytes are at hand.
func termOfData(i int64, data []byte, h ChunkID) (blockSum, bool) {
	if isZeros(data) {
		return blockSum{}, false
	}
	return blockTerm(i, h), true
}

func isZeros(p []byte) bool {
	for len(p) >= 8 {
		if binary.LittleEndian.Uint64(p) != 0 {
			return false
		}
		p = p[8:]
	}
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}

// sumOf returns the stored block checksum of file p (entry e). An entry
// written before the checksum was kept in it has none: the sum is then
// computed from its stored blocks, once (the cost of the blocks stored, not
// of the holes).
func (t *tx) sumOf(p string, e *entry) (blockSum, error) {
	var s blockSum
	if len(e.Sum) == len(s) {
		copy(s[:], e.Sum)
		return s, nil
	}
	if e.Size == 0 {
		return s, nil
	}
	refs, err := blockRefs(t.b, p, 0, numBlocks(e.Size, e.Block))
	if err != nil {
		return s, err
	}
	for _, r := range refs {
		t.cost++
		if x, ok := t.termOf(r.i, r.h, blockLen(e.Size, e.Block, r.i)); ok {
			s.add(x)
		}
	}
	return s, nil
}

// checksum renders Stat.Checksum of file p (entry e, whose Sum is set and
// whose blocks are written): the chunk name of its one block (of its
// contents, for an inline file), or the block checksum over more than one.
func (t *tx) checksum(p string, e *entry) (string, error) {
	if e.Size > e.Block {
		h := sha256.New()
		var l [8]byte
		binary.BigEndian.PutUint64(l[:], uint64(e.Size))
		h.Write(l[:])
		h.Write(e.Sum)
		return sumPrefix + strconv.FormatInt(e.Block, 10) + ":" + hex.EncodeToString(h.Sum(nil)), nil
	}
	if t.head != nil {
		return t.head.String(), nil
	}
	if len(e.Data) > 0 {
		return ChunkOf(e.Data).String(), nil
	}
	refs, err := blockRefs(t.b, p, 0, 1)
	if err != nil {
		return "", err
	}
	if len(refs) == 1 {
		return refs[0].h.String(), nil
	}
	return t.zero(e.Size).String(), nil
}

func orDefault(v, d int64) int64 {
	if v <= 0 {
		return d
	}
	return v
}
