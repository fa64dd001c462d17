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

// autoSplitLoop polls the deployment every AutoSplit.Interval and splits
// the cluster most over a threshold (largest first), one split at a time.
// A cluster that took part in a split is left alone for a Window after it
// is planned: its figures still count the moved half until cleanup.
func (s *supervisor) autoSplitLoop(ctx context.Context) {
	a := s.cfg.AutoSplit
	log := s.log.With("auto_split_bytes", a.Bytes, "auto_split_ops", a.Ops, "window", a.Window)
	log.Info("auto-split on")
	samples := map[string][]opsSample{}
	quiet := map[string]time.Time{}
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
		busy := false
		for _, sp := range st.Splits {
			if !sp.Phase.Final() {
				busy = true
				quiet[sp.Cluster], quiet[sp.NewCluster] = now.Add(a.Window), now.Add(a.Window)
			}
		}
		pick, why := "", ""
		var pickBytes uint64
		for _, cl := range st.Clusters {
			bytes, ops := clusterUsage(cl)
			ss := append(samples[cl.ID], opsSample{now, ops})
			if ops < ss[0].ops { // a node restarted: its counter began again
				ss = ss[len(ss)-1:]
			}
			for len(ss) > 2 && now.Sub(ss[1].at) >= a.Window {
				ss = ss[1:]
			}
			samples[cl.ID] = ss
			if busy || now.Before(quiet[cl.ID]) {
				continue
			}
			reason := ""
			if a.Bytes > 0 && bytes > a.Bytes {
				reason = fmt.Sprintf("%d bytes over %d", bytes, a.Bytes)
			}
			if span := now.Sub(ss[0].at); reason == "" && a.Ops > 0 && span >= a.Window {
				if rate := float64(ops-ss[0].ops) / span.Seconds(); rate > a.Ops {
					reason = fmt.Sprintf("%.0f requests/s over %.0f for %v", rate, a.Ops, span.Round(time.Second))
				}
			}
			if reason != "" && (pick == "" || bytes > pickBytes) {
				pick, why, pickBytes = cl.ID, reason, bytes
			}
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
			quiet[pick] = now.Add(a.Window)
			continue
		}
		quiet[rec.Cluster], quiet[rec.NewCluster] = now.Add(a.Window), now.Add(a.Window)
		delete(samples, rec.Cluster)
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
