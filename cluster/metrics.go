package cluster

import (
	"io/fs"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cleavefs/cleave/fsm"
	"github.com/cleavefs/cleave/replica"
	"github.com/cleavefs/cleave/wire"
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
		counter("cleave_replica_handed_off_ready_total", "Synced Ready batches written by the writer goroutine while the loop went on; the others were written by the loop itself.", func(s replica.Stats) float64 { return float64(s.Handoffs) }),
		counter("cleave_replica_sync_seconds_total", "Time spent committing synced Ready batches.", func(s replica.Stats) float64 { return s.SyncTime.Seconds() }),
		counter("cleave_replica_log_sync_seconds_total", "Part of cleave_replica_sync_seconds_total spent writing and syncing the entries to the log; the rest committed the state after it.", func(s replica.Stats) float64 { return s.LogSyncTime.Seconds() }),
		counter("cleave_replica_proposals_total", "This node's own proposals answered with their result.", func(s replica.Stats) float64 { return float64(s.Proposals) }),
		counter("cleave_replica_proposal_queued_seconds_total", "Time the answered proposals waited for a Ready to carry their entry (the write in flight).", func(s replica.Stats) float64 { return s.Queued.Seconds() }),
		counter("cleave_replica_proposal_replicated_seconds_total", "Time from the Ready that carried an answered proposal's entry to its answer: replication to a quorum, commit and apply.", func(s replica.Stats) float64 { return s.Replicated.Seconds() }),
		counter("cleave_replica_messages_sent_total", "Raft messages this node's Ready batches handed to the transport, snapshots apart.", func(s replica.Stats) float64 { return float64(s.Sent) }),
		counter("cleave_replica_superseded_messages_total", "Raft messages not sent because a later one to the same peer made them redundant: an append without entries followed by another append (in the same Ready, or in a later one while the leader held it back), an acknowledgement followed in the same Ready by one at least as far.", func(s replica.Stats) float64 { return float64(s.Superseded) }),
		counter("cleave_replica_appended_entries_total", "Log entries written to the local log.", func(s replica.Stats) float64 { return float64(s.Appended) }),
		counter("cleave_replica_applied_entries_total", "Committed entries applied.", func(s replica.Stats) float64 { return float64(s.Applied) }),
		gauge("cleave_replica_idle", "1 if this node's group has been quiet and it ticks at the idle interval, else 0.", func(s replica.Status) float64 {
			if s.Idle {
				return 1
			}
			return 0
		}),
		counter("cleave_replica_ticks_total", "Raft ticks.", func(s replica.Stats) float64 { return float64(s.Ticks) }),
		counter("cleave_replica_idle_wakes_total", "Times the group left idle ticking because something happened.", func(s replica.Stats) float64 { return float64(s.Wakes) }),
		counter("cleave_replica_read_rounds_total", "ReadIndex rounds issued (each serves every read that joined it).", func(s replica.Stats) float64 { return float64(s.ReadRounds) }),
		counter("cleave_replica_lease_reads_total", "Linearizable reads the leader served on its read lease, without a ReadIndex round.", func(s replica.Stats) float64 { return float64(s.LeaseReads) }),
		syncHistogram{rep},
	)
}

// syncHistogram exposes the replica's fsync latency histogram
// (replica.Stats.SyncBuckets) as cleave_replica_sync_duration_seconds.
type syncHistogram struct{ rep *replica.Replica }

var syncDesc = prometheus.NewDesc("cleave_replica_sync_duration_seconds",
	"Duration of each synced commit of a Ready batch (log entries, hard state and applied index, with fdatasync).", nil, nil)

func (h syncHistogram) Describe(ch chan<- *prometheus.Desc) { ch <- syncDesc }

func (h syncHistogram) Collect(ch chan<- prometheus.Metric) {
	s := h.rep.Stats()
	cum := make(map[float64]uint64, len(replica.SyncBounds))
	var n uint64
	for i, c := range s.SyncBuckets {
		n += c
		if i < len(replica.SyncBounds) {
			cum[replica.SyncBounds[i]] = n
		}
	}
	ch <- prometheus.MustNewConstHistogram(syncDesc, n, s.SyncTime.Seconds(), cum)
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

// statusCollector exports what the node reports in its STATUS answer
// (Node.Status), read once per scrape: scrub and repair counts, files,
// bytes and requests, dropped frames, the bytes its data directory holds
// on disk, and the storage engine's disk use, flushes and compactions. Every metric carries the node's cluster as a label, so
// files and bytes sum per cluster across scrape targets.
type statusCollector struct {
	n     *Node
	descs map[string]*prometheus.Desc
}

// statusMetrics lists the metrics of statusCollector: name, help, type,
// and the value read from a NodeStatus.
var statusMetrics = []struct {
	name, help string
	kind       prometheus.ValueType
	value      func(*wire.NodeStatus) uint64
}{
	{"cleave_node_scrub_checked_chunks_total", "Chunks the scrubber verified since start.", prometheus.CounterValue, func(s *wire.NodeStatus) uint64 { return s.ScrubChecked }},
	{"cleave_node_scrub_checked_bytes_total", "Bytes the scrubber verified since start.", prometheus.CounterValue, func(s *wire.NodeStatus) uint64 { return s.ScrubBytes }},
	{"cleave_node_scrub_corrupt_chunks_total", "Chunks the scrubber found corrupt since start.", prometheus.CounterValue, func(s *wire.NodeStatus) uint64 { return s.ScrubCorrupt }},
	{"cleave_node_scrub_passes_total", "Complete scrub passes over every chunk since start.", prometheus.CounterValue, func(s *wire.NodeStatus) uint64 { return s.ScrubPasses }},
	{"cleave_node_repaired_chunks_total", "Corrupt or missing chunks rewritten from another member's verified copy since start.", prometheus.CounterValue, func(s *wire.NodeStatus) uint64 { return s.ChunksRepaired }},
	{"cleave_node_repair_failures_total", "Chunk repairs that found no healthy copy since start.", prometheus.CounterValue, func(s *wire.NodeStatus) uint64 { return s.RepairFailed }},
	{"cleave_node_files", "Files whose root is in the node's range (a few seconds old).", prometheus.GaugeValue, func(s *wire.NodeStatus) uint64 { return s.Files }},
	{"cleave_node_file_bytes", "Sum of the sizes of the node's files (a few seconds old).", prometheus.GaugeValue, func(s *wire.NodeStatus) uint64 { return s.Bytes }},
	{"cleave_node_client_ops_total", "Client requests handled since start (STATUS excluded).", prometheus.CounterValue, func(s *wire.NodeStatus) uint64 { return s.Ops }},
	{"cleave_node_foreign_frames_total", "Raft frames dropped because they named another group or epoch.", prometheus.CounterValue, func(s *wire.NodeStatus) uint64 { return s.ForeignFrames }},
	{"cleave_node_bad_commit_frames_total", "Heartbeats dropped because they declared a commit beyond the local log.", prometheus.CounterValue, func(s *wire.NodeStatus) uint64 { return s.BadCommitFrames }},
	{"cleave_node_invalid_frames_total", "Raft frames dropped because no honest peer sends them.", prometheus.CounterValue, func(s *wire.NodeStatus) uint64 { return s.InvalidFrames }},
	{"cleave_node_wrong_plane_frames_total", "One-way frames that arrived on the client listener and were dropped.", prometheus.CounterValue, func(s *wire.NodeStatus) uint64 { return s.WrongPlaneFrames }},
	{"cleave_node_log_first_index", "First index still in the local raft log (older ones are compacted).", prometheus.GaugeValue, func(s *wire.NodeStatus) uint64 { return s.LogFirst }},
}

// dataBytesMetric is the name of the disk use of the data directory.
const dataBytesMetric = "cleave_node_data_bytes"

// registerStatusMetrics registers n's status metrics in reg.
func registerStatusMetrics(reg prometheus.Registerer, n *Node) {
	c := &statusCollector{n: n, descs: make(map[string]*prometheus.Desc)}
	for _, m := range statusMetrics {
		c.descs[m.name] = prometheus.NewDesc(m.name, m.help, []string{"cluster"}, nil)
	}
	c.descs[dataBytesMetric] = prometheus.NewDesc(dataBytesMetric,
		"Bytes the node's data directory (log, state, chunks) takes on disk.", []string{"cluster"}, nil)
	for _, pm := range pebbleMetrics {
		c.descs[pm.name] = prometheus.NewDesc(pm.name, pm.help, []string{"cluster"}, nil)
	}
	reg.MustRegister(c)
}

// Describe implements prometheus.Collector.
func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one Node.Status per scrape.
func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.Status()
	for _, m := range statusMetrics {
		ch <- prometheus.MustNewConstMetric(c.descs[m.name], m.kind, float64(m.value(&st)), st.Cluster)
	}
	ch <- prometheus.MustNewConstMetric(c.descs[dataBytesMetric], prometheus.GaugeValue, float64(dirBytes(c.n.cfg.DataDir)), st.Cluster)
	if c.n.db != nil {
		m := c.n.db.Metrics()
		for _, pm := range pebbleMetrics {
			ch <- prometheus.MustNewConstMetric(c.descs[pm.name], pm.kind, float64(pm.value(m)), st.Cluster)
		}
	}
}

// pebbleMetrics are the storage engine's figures the node exports, read
// from pebble.DB.Metrics once per scrape.
var pebbleMetrics = []struct {
	name, help string
	kind       prometheus.ValueType
	value      func(*pebble.Metrics) uint64
}{
	{"cleave_node_pebble_disk_bytes", "Bytes the storage engine's files (tables, WAL, manifests) take on disk.", prometheus.GaugeValue, func(m *pebble.Metrics) uint64 { return m.DiskSpaceUsage() }},
	{"cleave_node_pebble_compactions_total", "Compactions the storage engine ran since open.", prometheus.CounterValue, func(m *pebble.Metrics) uint64 { return uint64(m.Compact.Count) }},
	{"cleave_node_pebble_flushes_total", "Memtable flushes the storage engine ran since open.", prometheus.CounterValue, func(m *pebble.Metrics) uint64 { return uint64(m.Flush.Count) }},
	{"cleave_node_pebble_flushed_bytes_total", "Bytes of tables the storage engine wrote by flushing memtables since open.", prometheus.CounterValue, func(m *pebble.Metrics) uint64 { return m.Total().TableBytesFlushed }},
	{"cleave_node_pebble_compacted_bytes_total", "Bytes of tables the storage engine wrote by compactions since open.", prometheus.CounterValue, func(m *pebble.Metrics) uint64 { return m.Total().TableBytesCompacted }},
	{"cleave_node_pebble_compaction_debt_bytes", "Bytes the storage engine estimates it must compact to reach a stable shape.", prometheus.GaugeValue, func(m *pebble.Metrics) uint64 { return m.Compact.EstimatedDebt }},
	{"cleave_node_pebble_read_amplification", "Sublevels and levels a read may have to consult (L0 sublevels plus non-empty levels).", prometheus.GaugeValue, func(m *pebble.Metrics) uint64 { return uint64(m.ReadAmp()) }},
}

// dirBytes sums the sizes of the regular files under dir; files that
// vanish while it walks (a compaction removing a table) are skipped.
func dirBytes(dir string) uint64 {
	var total uint64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += uint64(fi.Size())
			}
		}
		return nil
	})
	return total
}
