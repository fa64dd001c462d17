package cluster

// A node's memory budget (Config.MemoryLimit).
//
// Where a node's memory goes under a stream of 1 MiB chunks (measured with
// heap profiles and /proc/PID/smaps under a 1 GiB upload through cleave up):
//   - the Go heap: about 60 MiB live — raft entries in the log cache and in
//     flight (replica), Pebble batches holding a Ready's entries and chunk
//     values, frames being decoded — which the collector lets grow to
//     twice that before it runs (GOGC 100);
//   - outside the Go heap: Pebble's block cache (chunk values pass through
//     it when read or scrubbed) and memtables, allocated with C malloc.
//     glibc serves those ~1 MiB blocks from per-thread arenas once its
//     dynamic mmap threshold has risen past them, and freed blocks in the
//     middle of an arena are never returned: the C side held 150–180 MiB
//     for a 64 MiB cache.
//
// So a node that owns its process fixes the mmap threshold (blocks of
// 128 KiB or more are mapped and unmapped on their own, returned to the OS
// when freed), limits malloc to two arenas, and gives the Go runtime a soft
// limit for what is left of the budget. Both are process-wide.

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/cockroachdb/pebble/v2"
)

// memorySlack is what the budget keeps for the binary's code and data and
// C allocations besides the cache and memtables.
const memorySlack = 32 << 20

// minGoLimit is the smallest soft limit the node gives the Go runtime; a
// budget that leaves less is applied as this (and logged).
const minGoLimit = 64 << 20

// setMemoryLimit applies cfg.MemoryLimit to the process, if set.
func setMemoryLimit(cfg Config, po *pebble.Options, log *slog.Logger) {
	if cfg.MemoryLimit <= 0 {
		return
	}
	tuneMalloc()
	if os.Getenv("GOMEMLIMIT") != "" {
		log.Info("GOMEMLIMIT is set; the node keeps it", "GOMEMLIMIT", os.Getenv("GOMEMLIMIT"))
		return
	}
	memtables := 2 * int64(po.MemTableSize)
	if memtables == 0 {
		memtables = 2 * 4 << 20
	}
	goLimit := cfg.MemoryLimit - po.CacheSize - memtables - memorySlack
	if goLimit < minGoLimit {
		log.Warn("memory limit leaves little for the Go heap", "memory_limit", cfg.MemoryLimit, "cache", po.CacheSize, "go_limit", minGoLimit)
		goLimit = minGoLimit
	}
	debug.SetMemoryLimit(goLimit)
	log.Info("memory budget", "memory_limit", cfg.MemoryLimit, "block_cache", po.CacheSize, "memtables", memtables, "go_soft_limit", goLimit)
}
