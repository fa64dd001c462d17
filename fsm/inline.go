package fsm

// Small files kept in their entry.
//
// A PUT of 1 to Command.InlineSize bytes (and no more than the block size)
// keeps the contents in the file's entry (entry.Data) instead of a block
// record, a chunk and the chunk's metadata: an overwrite writes one key
// for the file where it wrote six (entry, block record, new chunk and
// metadata, old chunk and metadata deleted), and a read makes one point
// read where it made three. Such a file has no block records. Its checksum and its block
// checksum sum are those the block form would have (the SHA-256 of the
// contents, and that block's term), so Stat, COPY and a later WRITE see
// one file whichever form it has. Its bytes are verified on every read
// against that checksum, and they are hashed in full by the replicas'
// continuous consistency check, like every entry.
//
// A WRITE or APPEND that changes an inline file first turns it into a
// block file (spill): its contents become block 0, and the write goes on
// as for any file. Only PUT makes a file inline. RENAME and COPY carry the
// entry, contents included; REMOVE and an overwrite have no chunk to
// release. Entries written without InlineSize (older log entries) apply
// exactly as before.

import (
	"fmt"

	"github.com/cleavefs/cleave/wire"
)

// DefaultInlineSize is the InlineSize a node proposes unless configured
// otherwise: files up to 2 KiB live in their entry (Btrfs's default for
// its inline extents).
const DefaultInlineSize = 2 << 10

// MaxInlineSize is the largest InlineSize a node may be configured with;
// it is at most MinChunkSize, so an inline file is always one block.
const MaxInlineSize = MinChunkSize

// inlines reports whether a PUT by c of n bytes keeps them in the entry.
func inlines(c *Command, n int64) bool {
	return n > 0 && n <= c.InlineSize && n <= orDefault(c.ChunkSize, DefaultChunkSize)
}

// inlineEntry is the entry of a file whose contents data are kept inline.
func (t *tx) inlineEntry(data []byte, bs int64) *entry {
	h := ChunkOf(data)
	e := &entry{Type: wire.TypeFile, Size: int64(len(data)), Mtime: t.c.Time, Version: t.index, Block: bs, Data: data}
	var sum blockSum
	if x, ok := termOfData(0, data, h); ok {
		sum = x
	}
	e.Sum = sum[:]
	t.head = &h
	return e
}

// spill turns the inline file p (entry e) into a block file in the batch:
// its contents become the chunk of block 0, referenced once. e.Data is
// cleared; e.Sum, the same for both forms, stays. It returns the chunk.
func (t *tx) spill(p string, e *entry) (ChunkID, error) {
	h := t.store(e.Data)
	if err := t.b.Set(blockKey(p, 0), h[:], nil); err != nil {
		return h, storageErr("write "+p, err)
	}
	e.Data = nil
	return h, nil
}

// inlineBytes returns bytes [off, off+n) of the inline file p (entry e),
// after checking its contents against its size and checksum; a mismatch
// is INTERNAL and no byte is returned. The result aliases e.Data.
func inlineBytes(p string, e *entry, off, n int64) ([]byte, error) {
	if int64(len(e.Data)) != e.Size {
		return nil, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("integrity: %s keeps %d bytes inline where its size is %d; not returned", p, len(e.Data), e.Size)}
	}
	if want, err := ParseChunkName(e.Checksum); err != nil || ChunkOf(e.Data) != want {
		return nil, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("integrity: the inline contents of %s do not match its checksum %s; not returned", p, e.Checksum)}
	}
	return e.Data[off : off+n], nil
}
