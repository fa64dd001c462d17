package fsm

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
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
//
// Every table has a bloom filter (10 bits a key, about 1% false
// positives; the later levels inherit it): apply looks up keys that are
// mostly absent (the metadata of a chunk not stored yet, the entry of a
// new file) and keys that live in one table of one level, and without a
// filter each such lookup read an index and a data block in every level
// whose key range covers it. Tables written before keep working without.
//
// L0 is compacted at 16 sublevels, not Pebble's 4 (and writes stop at 64,
// not 12). Every flushed memtable spans the whole key space — the log's
// newest entries and chunks, entries and session records scattered by
// hash — so each L0 compaction rewrites most of the level below; waiting
// for more flushes merges four times as much into each rewrite. Under a
// 1 KiB put load that took about 9% off the server CPU per put (five
// alternated pairs of runs, 1–13% each); reads pay with more tables to
// consult, whose bloom filters keep the misses cheap.
//
// The DB runs without a write-ahead log (DisableWAL). The replica's log is
// the state's write-ahead log: every batch Apply writes comes from an entry
// the log holds, synced, until a flush has made the batch durable, and a
// restart replays the entries after the applied index the DB recovered.
// Pebble's WAL wrote every put's value a second time, and its writer
// woke once for each commit. What must survive a crash outside the log is
// committed and then flushed (package internal/durable).
func PebbleOptions(lg pebble.Logger) *pebble.Options {
	o := &pebble.Options{Logger: lg, CacheSize: 64 << 20, DisableWAL: true}
	o.L0CompactionThreshold = 16
	o.L0StopWritesThreshold = 64
	o.Levels[0].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
	o.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	return o
}

// storageLogEvery is how often a run of storage errors is logged: the
// first at once, then one line (with the count since) per period.
const storageLogEvery = 10 * time.Second

// StorageHealth records what Pebble reports about its own work: errors of
// background flushes and compactions (Pebble retries them, so a full disk
// repeats the same error), slow disk operations and write stalls. Safe for
// concurrent use; Pebble calls it from its background goroutines.
type StorageHealth struct {
	log *slog.Logger

	mu      sync.Mutex
	report  StorageReport
	loggedN uint64    // BackgroundErrors when the last line was logged
	loggedT time.Time // when it was logged
}

// StorageReport is a StorageHealth's record.
type StorageReport struct {
	LastError        string    // the latest background error, "" before any
	LastErrorAt      time.Time // when it happened
	BackgroundErrors uint64    // background errors since open
	DiskSlow         uint64    // disk operations slower than Pebble's threshold since open
	WriteStalls      uint64    // write stalls begun since open
	Stalled          bool      // a write stall is in progress
	StalledSince     time.Time // when it began, zero when none is
}

// NewStorageHealth returns an empty record that logs to log.
func NewStorageHealth(log *slog.Logger) *StorageHealth {
	return &StorageHealth{log: log.With("component", "pebble")}
}

// Listen makes o's Pebble report to h, besides any listener o has.
func (h *StorageHealth) Listen(o *pebble.Options) {
	l := pebble.EventListener{
		BackgroundError: h.backgroundError,
		DiskSlow: func(info pebble.DiskSlowInfo) {
			h.mu.Lock()
			h.report.DiskSlow++
			h.mu.Unlock()
			h.log.Warn("slow disk", "op", info.OpType.String(), "path", info.Path, "duration", info.Duration)
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			h.mu.Lock()
			h.report.WriteStalls++
			h.report.Stalled, h.report.StalledSince = true, time.Now()
			h.mu.Unlock()
			h.log.Warn("writes stalled until flushes and compactions catch up", "reason", info.Reason)
		},
		WriteStallEnd: func() {
			h.mu.Lock()
			h.report.Stalled, h.report.StalledSince = false, time.Time{}
			h.mu.Unlock()
			h.log.Info("write stall ended")
		},
	}
	if o.EventListener != nil {
		l = pebble.TeeEventListener(l, *o.EventListener)
	}
	o.EventListener = &l
}

// backgroundError records err and logs it, once per storageLogEvery at most.
func (h *StorageHealth) backgroundError(err error) {
	h.mu.Lock()
	now := time.Now()
	r := &h.report
	r.BackgroundErrors++
	msg, _, _ := strings.Cut(err.Error(), "\n") // Pebble's errors add a stack trace on later lines
	r.LastError, r.LastErrorAt = msg, now
	logIt := h.loggedT.IsZero() || now.Sub(h.loggedT) >= storageLogEvery
	since := r.BackgroundErrors - h.loggedN
	if logIt {
		h.loggedN, h.loggedT = r.BackgroundErrors, now
	}
	h.mu.Unlock()
	if logIt {
		h.log.Error("storage background error (flush or compaction); Pebble retries it", "err", msg, "errors_since_last_line", since)
	}
}

// Report returns what h has recorded.
func (h *StorageHealth) Report() StorageReport {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.report
}

// CompactState compacts the state machine's keys down to Pebble's last
// level, so that the tombstones of a bulk delete (a split's cleanup drops
// half of what the node held) meet the values they delete and both are
// gone, instead of being carried through every later compaction and
// stepped over by reads until writes happen to push them down. It blocks
// until the compaction is done or ctx ends.
func (f *FSM) CompactState(ctx context.Context) error {
	return f.db.Compact(ctx, stateStart, stateEnd, false)
}
