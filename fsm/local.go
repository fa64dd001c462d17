package fsm

// Reads and writes of this replica's own copy outside the log: chunk
// verification (the node's scrubber), a verified chunk for a peer, the
// repair of a corrupt chunk, and a test-only fault.
//
// Why a local write is safe. The chunk key "s/c/" H is content-addressed:
// the only value it may ever hold on any replica is the bytes whose SHA-256
// is H, so writing bytes verified against H changes nothing the log
// decides — it restores the value every replica's Apply wrote. The write
// touches only that key, and only while the chunk's metadata ("s/k/" H)
// says the chunk is stored and the stored value is still missing or
// corrupt; Apply never rewrites an existing chunk's value, so there is no
// lost update. The one race is with an Apply that deletes the chunk (its
// last reference dropped) between the check and the write: the node then
// holds an orphan value without metadata, which no file references. It is
// harmless — its bytes are right, a later CHUNK or PUT of the same bytes
// overwrites it with identical bytes and takes it over, and reads never
// reach it — but it stays on disk (and in the node's state checksum) until
// then.

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cleavefs/cleave/internal/durable"
	"github.com/cleavefs/cleave/wire"
)

// ScrubStep is what one VerifyChunks call did.
type ScrubStep struct {
	Checked int      // chunks read and verified
	Bytes   int64    // their bytes
	Corrupt []string // names of the chunks that did not match their name
	Next    []byte   // resume position for the next call; nil: the pass is complete
}

// VerifyChunks verifies stored chunks in key order, starting after the
// position from (nil: the first chunk), until it has read about maxBytes
// (at least one chunk). It reads the committed state and is safe for
// concurrent use with Apply and the other reads.
func (f *FSM) VerifyChunks(from []byte, maxBytes int64) (ScrubStep, error) {
	var st ScrubStep
	lower := []byte(chunkPrefix)
	if from != nil {
		lower = append(bytes.Clone(from), 0) // strictly after from
	}
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upperBound([]byte(chunkPrefix))})
	if err != nil {
		return st, storageErr("scrub", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return st, storageErr("scrub", err)
		}
		var h ChunkID
		if len(k) != chunkKeyLen {
			st.Corrupt = append(st.Corrupt, "key "+string(k))
		} else if copy(h[:], k[len(chunkPrefix):]); ChunkOf(v) != h {
			st.Corrupt = append(st.Corrupt, h.String())
		}
		st.Checked++
		st.Bytes += int64(len(v))
		if st.Bytes >= maxBytes {
			st.Next = bytes.Clone(k)
			break
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return st, storageErr("scrub", err)
	}
	return st, nil
}

// ChunkData returns the verified bytes of the chunk named name from the
// committed state. Errors are *wire.Error: INVALID for a malformed name,
// NOT_FOUND if this node does not hold the chunk, INTERNAL if its copy is
// corrupt. Safe for concurrent use.
func (f *FSM) ChunkData(name string) ([]byte, error) {
	h, err := ParseChunkName(name)
	if err != nil {
		return nil, &wire.Error{Code: wire.Invalid, Message: err.Error()}
	}
	v, err := getValue(f.db, chunkKey(h))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, &wire.Error{Code: wire.NotFound, Message: fmt.Sprintf("chunk %v is not stored here", h)}
	}
	if err != nil {
		return nil, storageErr("read chunk "+h.String(), err)
	}
	if ChunkOf(v) != h {
		return nil, &CorruptError{Chunk: h, Err: &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("integrity: this node's copy of chunk %v failed verification (sha256 mismatch)", h)}}
	}
	return v, nil
}

// RepairChunk rewrites the local copy of chunk h with data, which must
// hash to h, if the chunk is still stored (it has metadata) and its value
// is missing or corrupt. It reports whether it wrote. See the top of this
// file for why this write outside the log is safe. Safe for concurrent use
// with Apply and the reads.
func (f *FSM) RepairChunk(h ChunkID, data []byte) (bool, error) {
	if ChunkOf(data) != h {
		return false, fmt.Errorf("repair %v: the bytes given hash to %v", h, ChunkOf(data))
	}
	m, err := getMeta(f.db, h)
	if err != nil {
		return false, err
	}
	if m == nil {
		return false, nil // no longer stored: its last reference went away
	}
	if m.Size != int64(len(data)) {
		return false, fmt.Errorf("repair %v: %d bytes where its metadata says %d", h, len(data), m.Size)
	}
	v, err := getValue(f.db, chunkKey(h))
	switch {
	case err == nil && ChunkOf(v) == h:
		return false, nil // healthy already (repaired by someone else)
	case err != nil && !errors.Is(err, pebble.ErrNotFound):
		return false, storageErr("read chunk "+h.String(), err)
	}
	if err := durable.Set(f.db, chunkKey(h), data); err != nil {
		return false, storageErr("repair chunk "+h.String(), err)
	}
	return true, nil
}

// UnsafeBumpMtime is a test-only fault: it rewrites the entry of p (not
// "/") outside the log, one nanosecond newer, so that this replica's state
// differs from its peers'. It reports whether p had an entry.
func (f *FSM) UnsafeBumpMtime(p string) (bool, error) {
	e, err := getEntry(f.db, p)
	if err != nil || e == nil {
		return false, err
	}
	e.Mtime++
	f.forgetEntries([][]byte{entryKey(p)}) // Apply reads it again
	if err := durable.Set(f.db, entryKey(p), encodeEntry(e)); err != nil {
		return false, storageErr("rewrite "+p, err)
	}
	return true, nil
}
