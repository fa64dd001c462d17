package cluster

import (
	"github.com/prometheus/client_golang/prometheus"

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
