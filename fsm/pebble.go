package fsm

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
)

// PebbleOptions are the options of a storage node's Pebble instance, which
// holds the state machine (and the replica's log beside it).
//
// The block cache is 64 MiB (Pebble's default is 8 MiB): under a 1 KiB put
// load the hot index and data blocks (entries, block maps, chunk metadata,
// session records) outgrow 8 MiB, and every miss reads and
// snappy-decodes a block again; see docs/benchmarks.md.
//
// Blocks are not compressed: most bytes a node stores are file chunks (and
// the log entries that carried them), which rarely compress, and snappy on
// every flush and read cost more CPU than the disk it saved (it also stalled
// writes behind slow flushes under the race detector).
func PebbleOptions(lg pebble.Logger) *pebble.Options {
	o := &pebble.Options{Logger: lg, CacheSize: 64 << 20}
	o.Levels[0].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
	return o
}
