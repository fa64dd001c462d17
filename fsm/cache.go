package fsm

// Replicated state that Apply keeps in memory instead of reading Pebble:
// the owned range, the records of recently used sessions ("s/s/" be64)
// and the seqs whose results they store ("s/s/" be64 be64), the metadata
// of recently written chunks ("s/k/" H), the entries of recently used
// paths ("s/e/"; an inline file's without its contents), the id of every
// stored chunk while there are at most maxKnownChunks, and lower bounds on
// the times of the session expiry index ("s/t/") and of the pending
// chunks ("s/p/"), by which Apply skips the expiry and chunk-GC scans
// when they could find nothing. Knowing a
// session's stored seqs, Apply reads a stored result only for a retry and
// finds the oldest to drop without a read, however out of order a
// pipelining client's commands apply; knowing the chunk ids, it knows a
// new chunk absent without a read.
//
// Each value equals what a read through the batch of the entry being
// applied would give (the bounds are at or below every key's time), so a
// replica decides exactly as if it had read Pebble: apply stays a
// function of the entries and the replicated state. That holds because
//
//   - every write of the owned range goes through setRange, every write
//     of a session record through putSession and every delete of one
//     through forgetSession, every write of a session result through
//     putResult and every delete of one through dropResult or (the whole
//     session) forgetSession, every write of a chunk's metadata through
//     putMeta and every delete of one through deleteChunk (both keep the
//     chunk ids), every write of an entry through putEntry and every
//     delete or raw write of one (a tree's removal or rename, a split's
//     cleanup, the test-only mtime fault) through forgetEntries, and every
//     write of an "s/t/" or "s/p/" key through noteWrite, which update the
//     cache with what they write;
//   - a batch Apply wrote into is committed before the next Apply, or the
//     replica stops and this FSM applies nothing more
//     (replica.StateMachine): a restarted node opens a new FSM;
//   - a value not known (at NewFSM, and after Restored replaced the
//     state) is read through the batch on first use, the chunk ids by a
//     scan of the chunk metadata, and a bound is learned from the scan it
//     guards.
//
// Deleting a key never invalidates a lower bound, so those deletes need
// no accessor. A session record, its stored seqs, chunk metadata or an
// entry not cached are read (and then cached); at most maxCachedSessions,
// maxCachedWindows, maxCachedChunks and maxCachedEntries are kept, beyond
// which the others are read. A store with more than maxKnownChunks chunks
// looks each new chunk up: a point read, cheap with the tables' bloom
// filters but not free (it visits every L0 table).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/wire"
	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"
)

// applyCache is the FSM's in-memory copy of replicated state; see above.
// mu orders Apply (the replica's loop) against Bootstrap, ForkState and
// Restored, which other goroutines call while no entry is applied.
type applyCache struct {
	mu sync.Mutex

	rangeKnown bool       // owned and owns hold the stored range
	owned      wire.Range // the owned range, if owns
	owns       bool       // whether a range is stored

	// Lower bounds on the time in every "s/t/" and "s/p/" key, compared
	// as the keys order them (big-endian uint64); 0 when not known.
	sessLow uint64
	pendLow uint64

	sessions records[uint64, sessionMeta] // stored session records, by session
	windows  map[uint64]*seqWindow        // the seqs whose results a session stores, by session
	chunks   records[ChunkID, chunkMeta]  // stored chunk metadata, by chunk
	entries  records[string, entry]       // stored entries, by path

	// The ids of every stored chunk ("s/k/" keys) when ids is idsKnown:
	// read once, then kept by putMeta and deleteChunk, while there are
	// at most maxKnownChunks.
	ids      map[ChunkID]struct{}
	idsState idsState
}

// idsState says what applyCache.ids holds.
type idsState int

const (
	idsUnread  idsState = iota // not read yet (or a write failed): read them on first use
	idsKnown                   // every stored chunk's id
	idsTooMany                 // more than maxKnownChunks are stored: look each up
)

// maxCachedSessions bounds applyCache.sessions (about 100 bytes each),
// maxCachedWindows applyCache.windows (at most sessionWindow+1 seqs, 8
// KiB, each), maxCachedChunks applyCache.chunks (about 100 bytes each: a
// loadgen-like put overwrites one of a few thousand files and releases
// its chunk) and maxCachedEntries applyCache.entries (about 200 bytes
// each).
const (
	maxCachedSessions = 1 << 16
	maxCachedWindows  = 1 << 10
	maxCachedChunks   = 1 << 15
	maxCachedEntries  = 1 << 15
)

// maxKnownChunks bounds applyCache.ids (about 50 bytes each): a store
// with more chunks looks each new chunk up.
const maxKnownChunks = 1 << 18

// reset forgets every value: the state under the FSM was replaced.
func (c *applyCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rangeKnown, c.owned, c.owns = false, wire.Range{}, false
	c.sessLow, c.pendLow = 0, 0
	c.sessions.m, c.chunks.m, c.entries.m, c.windows = nil, nil, nil, nil
	c.ids, c.idsState = nil, idsUnread
}

// records holds stored records by key, each equal to what the batch
// holds for the key; never an absence. applyCache.mu guards it.
type records[K comparable, V any] struct {
	m map[K]V
}

// cachedRead returns the record of k from memory, or else reads it with
// read (nil: there is none) and keeps it, unless max records are held.
// The caller owns the returned copy.
func cachedRead[K comparable, V any](c *applyCache, r *records[K, V], k K, max int, read func() (*V, error)) (*V, error) {
	c.mu.Lock()
	v, ok := r.m[k]
	c.mu.Unlock()
	if ok {
		return &v, nil
	}
	p, err := read()
	if err != nil || p == nil {
		return p, err
	}
	cachedWrite(c, r, k, max, p, nil)
	return p, nil
}

// cachedWrite records that the batch now holds v for k (nil: it deleted
// k). A write that failed (err) may or may not be in the batch: k is
// forgotten, to be read again.
func cachedWrite[K comparable, V any](c *applyCache, r *records[K, V], k K, max int, v *V, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, held := r.m[k]
	switch {
	case err != nil || v == nil:
		delete(r.m, k)
	case held || len(r.m) < max:
		if r.m == nil {
			r.m = map[K]V{}
		}
		r.m[k] = *v
	}
}

// session returns the record of session s as stored in b (nil if there
// is none), from memory once known. The caller owns the returned copy.
func (f *FSM) session(b *pebble.Batch, s uint64) (*sessionMeta, error) {
	return cachedRead(&f.cache, &f.cache.sessions, s, maxCachedSessions, func() (*sessionMeta, error) { return getSession(b, s) })
}

// putSession writes m as the record of session s into b. It is the only
// writer of session records.
func (f *FSM) putSession(b *pebble.Batch, s uint64, m *sessionMeta) error {
	err := b.Set(sessionKey(s), encodeSessionMeta(m), nil)
	cachedWrite(&f.cache, &f.cache.sessions, s, maxCachedSessions, m, err)
	if err != nil {
		return storageErr("write session", err)
	}
	return nil
}

// forgetSession drops session s, its record and its stored seqs, from
// memory; whoever deletes its keys from a batch calls it.
func (f *FSM) forgetSession(s uint64) {
	cachedWrite[uint64, sessionMeta](&f.cache, &f.cache.sessions, s, maxCachedSessions, nil, nil)
	f.cache.mu.Lock()
	delete(f.cache.windows, s)
	f.cache.mu.Unlock()
}

// storedSeqs returns the seqs whose results session s (record m, nil if
// there is none) stores in b, from memory once known; nil when more than
// maxCachedWindows sessions are, and the caller reads instead. The window
// returned is the cache's: Apply changes it only through putResult and
// dropResult, with the batch.
func (f *FSM) storedSeqs(b *pebble.Batch, s uint64, m *sessionMeta) (*seqWindow, error) {
	c := &f.cache
	c.mu.Lock()
	w, ok := c.windows[s]
	full := len(c.windows) >= maxCachedWindows
	c.mu.Unlock()
	if ok || full {
		return w, nil
	}
	w = &seqWindow{} // a session without a record stores no result
	if m != nil {
		var err error
		if w, err = loadSeqs(b, s, m); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.windows == nil {
		c.windows = map[uint64]*seqWindow{}
	}
	c.windows[s] = w
	return w, nil
}

// putResult writes res as session s's result for seq into b and adds seq
// to w, the session's stored seqs (nil: not kept). It is the only writer
// of session results.
func (f *FSM) putResult(b *pebble.Batch, s, seq uint64, res *Result, w *seqWindow) error {
	err := b.Set(sessionResultKey(s, seq), encodeResult(res), nil)
	f.changeSeqs(s, w, err, func() { w.add(seq) })
	if err != nil {
		return storageErr("write session", err)
	}
	return nil
}

// dropResult deletes session s's result for seq from b and w (nil: not
// kept). With expiry, which forgets the session, it is the only deleter
// of session results.
func (f *FSM) dropResult(b *pebble.Batch, s, seq uint64, w *seqWindow) error {
	err := b.Delete(sessionResultKey(s, seq), nil)
	f.changeSeqs(s, w, err, func() { w.remove(seq) })
	if err != nil {
		return storageErr("write session", err)
	}
	return nil
}

// changeSeqs applies change to w, session s's stored seqs, after a write
// to the batch; a write that failed (err) may or may not be in the batch,
// so the seqs are forgotten, to be read again.
func (f *FSM) changeSeqs(s uint64, w *seqWindow, err error, change func()) {
	if w == nil {
		return
	}
	f.cache.mu.Lock()
	defer f.cache.mu.Unlock()
	if err != nil {
		delete(f.cache.windows, s)
		return
	}
	change()
}

// chunkMeta returns the metadata of chunk h as stored in b (nil if there
// is none), from memory once known. The caller owns the returned copy.
// A chunk whose id is not among the known ids is absent without a read.
func (f *FSM) chunkMeta(b *pebble.Batch, h ChunkID) (*chunkMeta, error) {
	return cachedRead(&f.cache, &f.cache.chunks, h, maxCachedChunks, func() (*chunkMeta, error) {
		if stored, err := f.mayHoldChunk(b, h); err != nil || !stored {
			return nil, err
		}
		return getMeta(b, h)
	})
}

// mayHoldChunk reports whether b may store chunk h: false only when the
// known ids prove it does not. The first call reads every id.
func (f *FSM) mayHoldChunk(b *pebble.Batch, h ChunkID) (bool, error) {
	c := &f.cache
	c.mu.Lock()
	state := c.idsState
	_, known := c.ids[h]
	c.mu.Unlock()
	switch state {
	case idsKnown:
		return known, nil
	case idsTooMany:
		return true, nil
	}
	ids, err := readChunkIDs(b, maxKnownChunks)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ids == nil {
		c.idsState = idsTooMany
		return true, nil
	}
	c.ids, c.idsState = ids, idsKnown
	_, known = ids[h]
	return known, nil
}

// noteIDs records in the known ids that b now stores chunk h (or no
// longer does, gone); a write that failed (err) may or may not be in b,
// so the ids are read again.
func (f *FSM) noteIDs(h ChunkID, gone bool, err error) {
	c := &f.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.idsState != idsKnown:
	case err != nil:
		c.ids, c.idsState = nil, idsUnread
	case gone:
		delete(c.ids, h)
	default:
		c.ids[h] = struct{}{}
		if len(c.ids) > maxKnownChunks {
			c.ids, c.idsState = nil, idsTooMany
		}
	}
}

// putMeta writes m as the metadata of chunk h into b. It is the only
// writer of chunk metadata.
func (f *FSM) putMeta(b *pebble.Batch, h ChunkID, m *chunkMeta) error {
	err := b.Set(metaKey(h), encodeChunkMeta(m), nil)
	cachedWrite(&f.cache, &f.cache.chunks, h, maxCachedChunks, m, err)
	f.noteIDs(h, false, err)
	if err != nil {
		return storageErr("write chunk "+h.String(), err)
	}
	return nil
}

// deleteChunk deletes chunk h, its bytes and its metadata, from b. It is
// the only deleter of chunk metadata.
func (f *FSM) deleteChunk(b *pebble.Batch, h ChunkID) error {
	err := errors.Join(b.Delete(chunkKey(h), nil), b.Delete(metaKey(h), nil))
	cachedWrite[ChunkID, chunkMeta](&f.cache, &f.cache.chunks, h, maxCachedChunks, nil, err)
	f.noteIDs(h, true, err)
	if err != nil {
		return storageErr("delete chunk "+h.String(), err)
	}
	return nil
}

// entryOf returns the entry of p (not "/") as stored in b (nil if there is
// none), from memory once known. Memory keeps an inline file's entry
// without its contents, which would make the cache as large as the files:
// such an entry comes back unloaded, and a caller that needs the contents
// (or writes the entry back) calls tx.loadData. The caller owns the
// returned copy.
func (f *FSM) entryOf(b *pebble.Batch, p string) (*entry, error) {
	e, err := cachedRead(&f.cache, &f.cache.entries, p, maxCachedEntries, func() (*entry, error) {
		e, err := getEntry(b, p)
		if e != nil && len(e.Data) > 0 {
			e.Data, e.unloaded = nil, true
		}
		return e, err
	})
	if e != nil {
		e.Sum = bytes.Clone(e.Sum) // the cache keeps its own
	}
	return e, err
}

// loadData reads the contents of the inline file p into e if e came
// unloaded from entryOf.
func (t *tx) loadData(p string, e *entry) error {
	if e == nil || !e.unloaded {
		return nil
	}
	full, err := getEntry(t.b, p)
	if err != nil {
		return err
	}
	if full == nil || len(full.Data) == 0 || full.Version != e.Version {
		return &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("fsm: the cached entry of %s is inline at version %d; the stored one is not", p, e.Version)}
	}
	e.Data, e.unloaded = full.Data, false
	return nil
}

// entryBufs holds the buffers putEntry encodes entries into: a small
// file's entry carries its contents, so a fresh buffer per write was one
// of the largest allocations of a put. Buffers above maxPooledEntryBuf
// are left to the collector.
var entryBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledEntryBuf = 64 << 10

// putEntry writes e as the entry of p into b and, for a root, its index
// key. It is the only writer of an entry but for the raw moves and
// deletes of trees, which call forgetEntries.
func (f *FSM) putEntry(b *pebble.Batch, p string, e *entry) error {
	if e.unloaded {
		return &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("fsm: the entry of %s would be written without its inline contents", p)}
	}
	buf := entryBufs.Get().(*[]byte)
	*buf = appendEntry((*buf)[:0], e)
	err := b.Set(entryKey(p), *buf, nil) // Set copies the value
	if cap(*buf) <= maxPooledEntryBuf {
		entryBufs.Put(buf)
	}
	kept := *e
	kept.Sum = bytes.Clone(e.Sum)
	if len(kept.Data) > 0 {
		kept.Data, kept.unloaded = nil, true // see entryOf
	}
	cachedWrite(&f.cache, &f.cache.entries, p, maxCachedEntries, &kept, err)
	if err != nil {
		return storageErr("write "+p, err)
	}
	if parent, name := fspath.Split(p); parent == "/" {
		if err := b.Set(rootKey(name), nil, nil); err != nil {
			return storageErr("write "+p, err)
		}
	}
	return nil
}

// forgetEntries drops from memory the entries whose keys are among keys
// (other keys are ignored): whoever deletes entries from a batch, or
// writes them other than through putEntry, calls it.
func (f *FSM) forgetEntries(keys [][]byte) {
	f.cache.mu.Lock()
	defer f.cache.mu.Unlock()
	if len(f.cache.entries.m) == 0 {
		return
	}
	for _, k := range keys {
		if !bytes.HasPrefix(k, []byte(entryPrefix)) {
			continue
		}
		if p, ok := pathOfEntryKey(k); ok {
			delete(f.cache.entries.m, p)
		}
	}
}

// ownedRange returns the owned range as stored in b, from memory once known.
func (f *FSM) ownedRange(b *pebble.Batch) (wire.Range, bool, error) {
	c := &f.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.rangeKnown {
		r, ok, err := f.readRange(b)
		if err != nil {
			return wire.Range{}, false, err
		}
		c.rangeKnown, c.owned, c.owns = true, r, ok
	}
	return c.owned, c.owns, nil
}

// setRange writes the owned range r into b, or deletes it when r is nil.
// It is the only writer of rangeKey.
func (f *FSM) setRange(b *pebble.Batch, r *wire.Range) error {
	var err error
	if r == nil {
		err = b.Delete([]byte(rangeKey), nil)
	} else {
		var v []byte
		if v, err = msgpack.Marshal(r); err == nil {
			err = b.Set([]byte(rangeKey), v, nil)
		}
	}
	c := &f.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.rangeKnown = false // b may or may not hold the write: read it again
		return storageErr("write range", err)
	}
	c.rangeKnown, c.owns = true, r != nil
	c.owned = wire.Range{}
	if r != nil {
		c.owned = *r
	}
	return nil
}

// checkOwnedApply is checkOwned against the cached range.
func (f *FSM) checkOwnedApply(b *pebble.Batch, p string) error {
	r, ok, err := f.ownedRange(b)
	if err != nil {
		return err
	}
	return ownedErr(r, ok, p)
}

// lowBound is one of the cache's lower bounds.
type lowBound int

const (
	sessionLow lowBound = iota // times of "s/t/" keys
	pendingLow                 // times of "s/p/" keys
)

func (c *applyCache) bound(w lowBound) *uint64 {
	if w == sessionLow {
		return &c.sessLow
	}
	return &c.pendLow
}

// mayHaveBelow reports whether a key of kind w with a time ≤ t (in key
// order) may exist: false only when the bound proves there is none.
func (f *FSM) mayHaveBelow(w lowBound, t int64) bool {
	f.cache.mu.Lock()
	defer f.cache.mu.Unlock()
	return uint64(t) >= *f.cache.bound(w)
}

// noteWrite lowers bound w to t: a key of that kind with time t is being
// written. Every writer of such a key calls it.
func (f *FSM) noteWrite(w lowBound, t int64) {
	f.cache.mu.Lock()
	defer f.cache.mu.Unlock()
	if p := f.cache.bound(w); uint64(t) < *p {
		*p = uint64(t)
	}
}

// learnBound sets bound w to t, the time of the first key of the kind
// (found through the batch, before any deletes of the scan).
func (f *FSM) learnBound(w lowBound, t uint64) {
	f.cache.mu.Lock()
	defer f.cache.mu.Unlock()
	*f.cache.bound(w) = t
}

// firstTimeFrom returns the time (the be64 after prefix p) in the first
// key under p at or after from, or math.MaxUint64 when there is none. A
// scan that found no key below from calls it to learn a bound beyond its
// own limit; it may step over tombstones once, where the bounded scans,
// which it spares, would step over none on every entry.
func firstTimeFrom(b *pebble.Batch, p string, from []byte) (uint64, error) {
	it, err := b.NewIter(&pebble.IterOptions{LowerBound: from, UpperBound: upperBound([]byte(p))})
	if err != nil {
		return 0, err
	}
	t := uint64(math.MaxUint64)
	if it.First() {
		k := it.Key()
		if len(k) < len(p)+8 {
			_ = it.Close()
			return 0, fmt.Errorf("corrupt key %q", k)
		}
		t = binary.BigEndian.Uint64(k[len(p):])
	}
	return t, errors.Join(it.Error(), it.Close())
}
