package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/batchrepr"
)

// The state checksum: one hash over everything the state machine keeps
// (every key and value under "s/"), each prefixed with its length, in key
// order. Replicas at the same applied index hash alike. StateChecksum reads
// every byte; the continuous consistency check uses HashOverlay, which
// stands in a chunk's length for its bytes (a chunk key is the SHA-256 of
// its bytes, so the name already commits to the content) and hashes the
// state at an index inside a batch that is not committed yet.

// StateChecksum is "sha256:<hex>" over every key and value under "s/" in
// snap, each prefixed with its length, in key order.
func StateChecksum(snap *pebble.Snapshot) (string, error) { return hashState(snap, false) }

// hashState hashes the state machine keys of rd with a stateHasher.
func hashState(rd reader, chunkNames bool) (string, error) {
	it, err := rd.NewIter(&pebble.IterOptions{LowerBound: stateStart, UpperBound: stateEnd})
	if err != nil {
		return "", err
	}
	defer it.Close()
	h := newStateHasher(chunkNames)
	for it.First(); it.Valid(); it.Next() {
		h.add(it.Key(), it.Value())
	}
	if err := it.Error(); err != nil {
		return "", err
	}
	return h.sum(), nil
}

// --- hashing -----------------------------------------------------------------

// stateHasher hashes state machine keys and values in key order, as
// StateChecksum defines; with chunkNames set, a chunk's bytes are stood in for
// by their length.
type stateHasher struct {
	h          hash.Hash
	chunkNames bool
	l          [8]byte
}

func newStateHasher(chunkNames bool) *stateHasher {
	return &stateHasher{h: sha256.New(), chunkNames: chunkNames}
}

func (s *stateHasher) add(k, v []byte) {
	if s.chunkNames && bytes.HasPrefix(k, []byte(chunkPrefix)) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(v)))
		v = n[:]
	}
	binary.BigEndian.PutUint64(s.l[:], uint64(len(k)))
	s.h.Write(s.l[:])
	s.h.Write(k)
	binary.BigEndian.PutUint64(s.l[:], uint64(len(v)))
	s.h.Write(s.l[:])
	s.h.Write(v)
}

func (s *stateHasher) sum() string { return "sha256:" + hex.EncodeToString(s.h.Sum(nil)) }

// stateStart and stateEnd bound the state machine's keys ("s/" ... "s0").
var stateStart, stateEnd = []byte(prefix), []byte("s0")

// HashOverlay hashes the state machine as snap holds it with the point
// mutations of the batch representation repr applied on top, in order. It
// fails on a mutation it does not model (merge, range keys, excise) in the
// state machine's keys.
func HashOverlay(snap *pebble.Snapshot, repr []byte) (string, error) {
	over, rdels, err := readOverlay(repr)
	if err != nil {
		return "", err
	}
	keys := make([]string, 0, len(over))
	for k := range over {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	covered := func(k []byte) bool {
		for _, d := range rdels {
			if bytes.Compare(k, d[0]) >= 0 && bytes.Compare(k, d[1]) < 0 {
				return true
			}
		}
		return false
	}

	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: stateStart, UpperBound: stateEnd})
	if err != nil {
		return "", err
	}
	defer it.Close()
	h := newStateHasher(true)
	i := 0
	emitOver := func(k string) {
		if o := over[k]; !o.del {
			h.add([]byte(k), o.v)
		}
	}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		for i < len(keys) && keys[i] < string(k) {
			emitOver(keys[i])
			i++
		}
		if i < len(keys) && keys[i] == string(k) {
			emitOver(keys[i])
			i++
			continue
		}
		if covered(k) {
			continue
		}
		h.add(k, it.Value())
	}
	if err := it.Error(); err != nil {
		return "", err
	}
	for ; i < len(keys); i++ {
		emitOver(keys[i])
	}
	return h.sum(), nil
}

// overlayVal is a state key's value in a batch: set to v, or deleted.
type overlayVal struct {
	v   []byte
	del bool
}

// readOverlay reads the mutations of the batch representation repr to the
// state machine's keys, in order: the last value or deletion of each
// point key, and the range deletions.
func readOverlay(repr []byte) (over map[string]overlayVal, rdels [][2][]byte, err error) {
	over = map[string]overlayVal{}
	inState := func(k []byte) bool { return bytes.Compare(k, stateStart) >= 0 && bytes.Compare(k, stateEnd) < 0 }
	r := batchrepr.Read(repr)
	for {
		kind, k, v, ok, err := r.Next()
		if err != nil {
			return nil, nil, fmt.Errorf("read batch: %w", err)
		}
		if !ok {
			break
		}
		switch kind {
		case pebble.InternalKeyKindSet, pebble.InternalKeyKindSetWithDelete:
			if inState(k) {
				over[string(k)] = overlayVal{v: v}
			}
		case pebble.InternalKeyKindDelete, pebble.InternalKeyKindSingleDelete, pebble.InternalKeyKindDeleteSized:
			if inState(k) {
				over[string(k)] = overlayVal{del: true}
			}
		case pebble.InternalKeyKindRangeDelete:
			start, end := k, v
			if bytes.Compare(end, stateStart) <= 0 || bytes.Compare(start, stateEnd) >= 0 {
				continue
			}
			for ko := range over {
				if ko >= string(start) && ko < string(end) {
					over[ko] = overlayVal{del: true}
				}
			}
			rdels = append(rdels, [2][]byte{start, end})
		case pebble.InternalKeyKindLogData:
		default:
			if inState(k) || kind == pebble.InternalKeyKindRangeKeySet || kind == pebble.InternalKeyKindRangeKeyUnset ||
				kind == pebble.InternalKeyKindRangeKeyDelete || kind == pebble.InternalKeyKindExcise {
				return nil, nil, fmt.Errorf("batch holds a %v mutation the check does not model", kind)
			}
		}
	}
	return over, rdels, nil
}
