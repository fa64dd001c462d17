package up

import (
	"context"
	"fmt"
	"time"

	"github.com/cleavefs/cleave/client"
)

// opsSample is a cluster's request counter (client.NodeStatus.Ops summed
// over its nodes) at a time.
type opsSample struct {
	at  time.Time
	ops uint64
}

// splitChooser holds what the auto-split loop remembers between polls.
// Not safe for concurrent use.
type splitChooser struct {
	a       AutoSplit
	samples map[string][]opsSample // per cluster, the request counters of the last Window
	quiet   map[string]time.Time   // clusters left alone until then
	held    map[string]string      // clusters held back by a hot root: its name
}

func newSplitChooser(a AutoSplit) *splitChooser {
	return &splitChooser{a: a, samples: map[string][]opsSample{}, quiet: map[string]time.Time{}, held: map[string]string{}}
}

// heldCluster is a cluster over the ops threshold that is not split: its
// status names a hot root, whose load a split cannot spread.
type heldCluster struct {
	Cluster string
	Why     string
	Hot     client.HotRoot
}

// choose records st's counters at now and returns the cluster to split
// and why, or "". A cluster over the bytes threshold goes first (the
// most bytes first); else the busiest of those over the ops threshold
// (requests per second over at least Window). A cluster over the ops
// threshold whose status names a hot root is not chosen: newly held
// lists it the first time (and again when the root changes). While a
// split runs, and for Window after one a cluster took part in, nothing is
// chosen for it.
func (sc *splitChooser) choose(st *client.Status, now time.Time) (pick, why string, newlyHeld []heldCluster) {
	busy := false
	for _, sp := range st.Splits {
		if !sp.Phase.Final() {
			busy = true
			sc.quiet[sp.Cluster], sc.quiet[sp.NewCluster] = now.Add(sc.a.Window), now.Add(sc.a.Window)
		}
	}
	var pickBytes uint64
	var pickRate float64
	for _, cl := range st.Clusters {
		bytes, rate, span := sc.usage(cl, now)
		if busy || now.Before(sc.quiet[cl.ID]) {
			continue
		}
		switch {
		case sc.a.Bytes > 0 && bytes > sc.a.Bytes:
			if pickBytes == 0 || bytes > pickBytes {
				pick, why, pickBytes = cl.ID, fmt.Sprintf("%d bytes over %d", bytes, sc.a.Bytes), bytes
			}
		case sc.a.Ops > 0 && span >= sc.a.Window && rate > sc.a.Ops:
			reason := fmt.Sprintf("%.0f requests/s over %.0f for %v", rate, sc.a.Ops, span.Round(time.Second))
			if cl.HotRoot != nil {
				if sc.held[cl.ID] != cl.HotRoot.Name {
					newlyHeld = append(newlyHeld, heldCluster{Cluster: cl.ID, Why: reason, Hot: *cl.HotRoot})
				}
				sc.held[cl.ID] = cl.HotRoot.Name
				continue
			}
			delete(sc.held, cl.ID)
			if pickBytes == 0 && rate > pickRate {
				pick, why, pickRate = cl.ID, reason, rate
			}
		default:
			delete(sc.held, cl.ID)
		}
	}
	return pick, why, newlyHeld
}

// usage records cluster cl's request counter at now and returns its
// bytes and its request rate over the span of the samples kept (at least
// Window once there are enough).
func (sc *splitChooser) usage(cl client.ClusterStatus, now time.Time) (bytes uint64, rate float64, span time.Duration) {
	bytes, ops := clusterUsage(cl)
	ss := append(sc.samples[cl.ID], opsSample{now, ops})
	if ops < ss[0].ops { // a node restarted: its counter began again
		ss = ss[len(ss)-1:]
	}
	for len(ss) > 2 && now.Sub(ss[1].at) >= sc.a.Window {
		ss = ss[1:]
	}
	sc.samples[cl.ID] = ss
	if span = now.Sub(ss[0].at); span > 0 {
		rate = float64(ops-ss[0].ops) / span.Seconds()
	}
	return bytes, rate, span
}

// planned notes a split of rec.Cluster into rec.NewCluster started at
// now (or failed to start, with newCluster ""): both are left alone for a
// Window, and the source's rate is measured afresh.
func (sc *splitChooser) planned(cluster, newCluster string, now time.Time) {
	sc.quiet[cluster] = now.Add(sc.a.Window)
	if newCluster != "" {
		sc.quiet[newCluster] = now.Add(sc.a.Window)
		delete(sc.samples, cluster)
	}
}

// autoSplitLoop polls the deployment every AutoSplit.Interval and splits
// the cluster splitChooser.choose names, one split at a time, and logs
// the clusters it holds back because of a hot root.
func (s *supervisor) autoSplitLoop(ctx context.Context) {
	a := s.cfg.AutoSplit
	log := s.log.With("auto_split_bytes", a.Bytes, "auto_split_ops", a.Ops, "window", a.Window)
	log.Info("auto-split on")
	sc := newSplitChooser(a)
	var c *client.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	tick := time.NewTicker(a.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if c == nil {
			var err error
			if c, err = s.dial(ctx); err != nil {
				c = nil
				continue
			}
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := c.Status(sctx)
		cancel()
		if err != nil {
			continue
		}
		now := time.Now()
		pick, why, held := sc.choose(st, now)
		for _, h := range held {
			log.Warn("auto-split: hot root, not splitting", "cluster", h.Cluster, "why", h.Why, "hot_root", h.Hot.Name, "note", h.Hot.String())
		}
		if pick == "" {
			continue
		}
		log.Info("auto-split", "cluster", pick, "why", why)
		sctx, cancel = context.WithTimeout(ctx, splitRequestTimeout)
		rec, err := s.split(sctx, SplitRequest{Cluster: pick})
		cancel()
		if err != nil {
			log.Warn("auto-split: not started", "cluster", pick, "err", err)
			sc.planned(pick, "", now)
			continue
		}
		sc.planned(rec.Cluster, rec.NewCluster, now)
	}
}

// clusterUsage returns the bytes a cluster holds (the largest figure a
// reachable node reports: a lagging follower reports less) and the
// requests its nodes have served.
func clusterUsage(cl client.ClusterStatus) (bytes, ops uint64) {
	for _, n := range cl.Nodes {
		if n.Error != "" {
			continue
		}
		bytes = max(bytes, n.Bytes)
		ops += n.Ops
	}
	return bytes, ops
}
