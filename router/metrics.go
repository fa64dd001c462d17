package router

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cleavefs/cleave/wire"
)

// splitPhases are the phases a split passes through, in order, and its two
// final ones: the values of cleave_router_splits' phase label.
var splitPhases = []wire.SplitPhase{
	wire.SplitPlanned, wire.SplitLearnersAdded, wire.SplitCaughtUp, wire.SplitCommitted,
	wire.SplitTableUpdated, wire.SplitCleaned, wire.SplitAbandoned,
}

// routerCollector exports, per scrape, what this router's status knows
// without asking the nodes: the splits the meta group records by phase,
// what gossip says of the nodes, and the router's place in the meta group.
// The nodes' own figures are on their side ports.
type routerCollector struct {
	r                                 *Router
	splits, members, metaLeader, meta *prometheus.Desc
}

// registerStatusMetrics registers r's status metrics in reg.
func registerStatusMetrics(reg prometheus.Registerer, r *Router) {
	reg.MustRegister(&routerCollector{
		r: r,
		splits: prometheus.NewDesc("cleave_router_splits",
			"Splits the meta group records, by phase (planned, learners-added, caught-up, split-committed, table-updated; cleaned and abandoned are final).",
			[]string{"phase"}, nil),
		members: prometheus.NewDesc("cleave_router_gossip_members",
			"Storage nodes gossip has reported to this router, by state (alive, dead).", []string{"state"}, nil),
		metaLeader: prometheus.NewDesc("cleave_router_meta_leader",
			"1 if this router leads the meta group, else 0 (always 0 without a meta group).", nil, nil),
		meta: prometheus.NewDesc("cleave_router_meta_applied_index",
			"Highest meta group log index this router applied (0 without a meta group).", nil, nil),
	})
}

// Describe implements prometheus.Collector.
func (c *routerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.splits
	ch <- c.members
	ch <- c.metaLeader
	ch <- c.meta
}

// Collect implements prometheus.Collector.
func (c *routerCollector) Collect(ch chan<- prometheus.Metric) {
	byPhase := make(map[wire.SplitPhase]int, len(splitPhases))
	if c.r.meta != nil {
		for _, s := range c.r.meta.Splits() {
			byPhase[s.Phase]++
		}
	}
	for _, p := range splitPhases {
		ch <- prometheus.MustNewConstMetric(c.splits, prometheus.GaugeValue, float64(byPhase[p]), string(p))
	}
	alive, dead := c.r.live.counts()
	ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(alive), "alive")
	ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(dead), "dead")
	self := c.r.self()
	var leader float64
	if self.Leader {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(c.metaLeader, prometheus.GaugeValue, leader)
	ch <- prometheus.MustNewConstMetric(c.meta, prometheus.GaugeValue, float64(self.Applied))
}

// counts returns how many addresses gossip says are alive and dead.
func (l *liveness) counts() (alive, dead int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range l.dead {
		if d {
			dead++
		} else {
			alive++
		}
	}
	return alive, dead
}
