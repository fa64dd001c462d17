package cluster

import "github.com/cockroachdb/pebble/v2"

// Storage engine shape of a node, on top of fsm.PebbleOptions. The raft
// log lives in the same Pebble as the state: every entry is written,
// then deleted by one range deletion once it is LogRetention entries
// behind the applied index. What costs CPU is an entry that reaches a
// table before its deletion does and is then compacted down; the larger
// the memtable and the more L0 files a compaction takes at once, the more
// entries meet their range deletion in the same flush or compaction and
// are dropped there.
const (
	// defaultMemTableSize is one memtable (Config.MemTableSize 0).
	defaultMemTableSize = 16 << 20
	// l0CompactionThreshold is the L0 read amplification (sublevels)
	// that starts an L0 compaction; Pebble's default is 4.
	l0CompactionThreshold = 8
	// l0StopWritesThreshold is the L0 read amplification at which
	// writes stop until compactions catch up; Pebble's default is 12.
	l0StopWritesThreshold = 24
)

// tuneStorage sets the node's memtable size (memTable, or the default
// when 0) and L0 thresholds in po.
func tuneStorage(po *pebble.Options, memTable uint64) {
	po.MemTableSize = defaultMemTableSize
	if memTable > 0 {
		po.MemTableSize = memTable
	}
	po.L0CompactionThreshold = l0CompactionThreshold
	po.L0StopWritesThreshold = l0StopWritesThreshold
}
