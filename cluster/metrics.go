package cluster

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cleavefs/cleave/fsm"
	"github.com/cleavefs/cleave/replica"
)

// registerNodeMetrics registers the replica's state and counters in reg,
// read from its published status when scraped (nothing on the write path).
func registerNodeMetrics(reg prometheus.Registerer, rep *replica.Replica) {
	gauge := func(name, help string, f func(replica.Status) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return f(rep.Status()) })
	}
	counter := func(name, help string, f func(replica.Stats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return f(rep.Stats()) })
	}
	reg.MustRegister(
		gauge("cleave_replica_term", "Current raft term.", func(s replica.Status) float64 { return float64(s.Term) }),
		gauge("cleave_replica_commit_index", "Highest log index known committed.", func(s replica.Status) float64 { return float64(s.Commit) }),
		gauge("cleave_replica_applied_index", "Highest log index applied on this node.", func(s replica.Status) float64 { return float64(s.Applied) }),
		gauge("cleave_replica_leader", "1 if this node is the leader of its group, else 0.", func(s replica.Status) float64 {
			if s.Role == "leader" {
				return 1
			}
			return 0
		}),
		gauge("cleave_replica_log_entries", "Entries in the local raft log.", func(s replica.Status) float64 {
			if s.LastIndex < s.FirstIndex {
				return 0
			}
			return float64(s.LastIndex - s.FirstIndex + 1)
		}),
		counter("cleave_replica_ready_total", "Raft Ready batches handled.", func(s replica.Stats) float64 { return float64(s.Readies) }),
		counter("cleave_replica_synced_ready_total", "Ready batches committed with fsync.", func(s replica.Stats) float64 { return float64(s.Syncs) }),
		counter("cleave_replica_sync_seconds_total", "Time spent committing synced Ready batches.", func(s replica.Stats) float64 { return s.SyncTime.Seconds() }),
		counter("cleave_replica_appended_entries_total", "Log entries written to the local log.", func(s replica.Stats) float64 { return float64(s.Appended) }),
		counter("cleave_replica_applied_entries_total", "Committed entries applied.", func(s replica.Stats) float64 { return float64(s.Applied) }),
		counter("cleave_replica_read_rounds_total", "ReadIndex rounds issued (each serves every read that joined it).", func(s replica.Stats) float64 { return float64(s.ReadRounds) }),
	)
}

// registerCheckMetrics registers the consistency check's state in reg.
func registerCheckMetrics(reg prometheus.Registerer, c *checker) {
	flag := func(f func(*checker) bool) func() float64 {
		return func() float64 {
			c.mu.Lock()
			defer c.mu.Unlock()
			if f(c) {
				return 1
			}
			return 0
		}
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cleave_node_consistency_check_index",
			Help: "Applied index of the latest consistency check this node hashed its state at."},
			func() float64 {
				c.mu.Lock()
				defer c.mu.Unlock()
				if n := len(c.results); n > 0 {
					return float64(c.results[n-1].index)
				}
				return 0
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cleave_node_consistency_checks_total",
			Help: "Consistency checks at which this node hashed its state."},
			func() float64 { return float64(c.hashed.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cleave_node_consistency_skipped_total",
			Help: "Consistency check entries this node applied without hashing its state (still hashing the previous one)."},
			func() float64 { return float64(c.skipped.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cleave_node_consistency_mismatch_total",
			Help: "Compared check indexes at which the replicas' state hashes differed."},
			func() float64 { return float64(c.mismatches.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cleave_node_consistency_alarm",
			Help: "1 while the latest compared consistency check found replicas that differ, else 0."},
			flag(func(c *checker) bool { return c.alarm != "" })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cleave_node_consistency_quarantined",
			Help: "1 while this replica's state differs from the majority's and it refuses reads, else 0."},
			flag(func(c *checker) bool { return c.quarantined })),
	)
}

// registerStorageMetrics registers the free space of the data volume, the
// watermark and what the storage engine reported in reg.
func registerStorageMetrics(reg prometheus.Registerer, g *spaceGuard, h *fsm.StorageHealth) {
	space := func(name, help string, f func(free, watermark uint64, low bool) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return f(g.sample()) })
	}
	counter := func(name, help string, f func(fsm.StorageReport) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(h.Report())) })
	}
	reg.MustRegister(
		space("cleave_node_free_bytes", "Bytes free on the volume of the node's data directory.",
			func(free, _ uint64, _ bool) float64 { return float64(free) }),
		space("cleave_node_min_free_bytes", "Free-space watermark: below it the leader refuses writes that add data (NO_SPACE); 0 when off.",
			func(_, watermark uint64, _ bool) float64 { return float64(watermark) }),
		space("cleave_node_no_space", "1 while the data volume is below the free-space watermark, else 0.",
			func(_, _ uint64, low bool) float64 {
				if low {
					return 1
				}
				return 0
			}),
		counter("cleave_node_storage_background_errors_total", "Failed storage engine flushes and compactions (each is retried).",
			func(r fsm.StorageReport) uint64 { return r.BackgroundErrors }),
		counter("cleave_node_storage_disk_slow_total", "Disk operations the storage engine found slow.",
			func(r fsm.StorageReport) uint64 { return r.DiskSlow }),
		counter("cleave_node_storage_write_stalls_total", "Write stalls of the storage engine (writes delayed until flushes and compactions catch up).",
			func(r fsm.StorageReport) uint64 { return r.WriteStalls }),
	)
}
