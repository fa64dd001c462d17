package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/wire"
)

// Usage counts the files whose root hashes into the owned range and the sum
// of their sizes, in all and per root, from the committed state. It reads
// every entry of the range (O(entries)); a split's source counts the moved half until it is
// cleaned up, a new cluster never counts the half it did not take.
func (f *FSM) Usage() (files, bytes uint64, roots map[string]*wire.RootUsage, err error) {
	rng, err := f.Range()
	if err != nil {
		return 0, 0, nil, err
	}
	roots = map[string]*wire.RootUsage{}
	lo := binary.BigEndian.AppendUint64([]byte(entryPrefix), rng.Start)
	hi := upperBound([]byte(entryPrefix))
	if rng.End != 0 {
		hi = binary.BigEndian.AppendUint64([]byte(entryPrefix), rng.End)
	}
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, 0, nil, err
	}
	for valid := it.First(); valid; valid = it.Next() {
		e, err := decodeEntry("", it.Value())
		if err != nil {
			return 0, 0, nil, errors.Join(err, it.Close())
		}
		if e.Type == wire.TypeFile {
			files++
			bytes += uint64(max(e.Size, 0))
			if root := entryRoot(it.Key()); root != "" {
				ru := roots[root]
				if ru == nil {
					ru = &wire.RootUsage{Name: root}
					roots[root] = ru
				}
				ru.Files++
				ru.Bytes += uint64(max(e.Size, 0))
			}
		}
	}
	return files, bytes, roots, errors.Join(it.Error(), it.Close())
}

// ChunkUsage is what a node stores of chunks: all of them, and the part
// no file references (pending until the chunk TTL passes).
type ChunkUsage struct {
	Chunks, Bytes               uint64
	PendingChunks, PendingBytes uint64
}

// ChunkUsage counts the stored chunks and their bytes from their metadata
// records (the chunks' bytes are not read), in all and those without a
// reference. O(chunks).
func (f *FSM) ChunkUsage() (ChunkUsage, error) {
	var u ChunkUsage
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: []byte(metaPrefix), UpperBound: upperBound([]byte(metaPrefix))})
	if err != nil {
		return u, err
	}
	for valid := it.First(); valid; valid = it.Next() {
		var m chunkMeta
		if err := msgpack.Unmarshal(it.Value(), &m); err != nil {
			return u, errors.Join(fmt.Errorf("corrupt metadata of chunk %x: %w", it.Key()[len(metaPrefix):], err), it.Close())
		}
		u.Chunks++
		u.Bytes += uint64(max(m.Size, 0))
		if m.Refs == 0 {
			u.PendingChunks++
			u.PendingBytes += uint64(max(m.Size, 0))
		}
	}
	return u, errors.Join(it.Error(), it.Close())
}

// entryRoot returns the root directory of an entry key (entryPrefix, the
// root's point, parent, NUL, name), "" if the key is malformed.
func entryRoot(key []byte) string {
	if len(key) < len(entryPrefix)+8 {
		return ""
	}
	rest := string(key[len(entryPrefix)+8:])
	parent, name, ok := strings.Cut(rest, "\x00")
	if !ok {
		return ""
	}
	if parent == "/" {
		return name
	}
	return fspath.Root(parent)
}
