package operator

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cleavefs/cleave/client"
	cleavev1 "github.com/cleavefs/cleave/operator/apis/cleave/v1alpha1"
	"github.com/cleavefs/cleave/wire"
)

// observation is what one sync saw of a store besides its objects.
type observation struct {
	routersReady int32            // the routers' StatefulSet's ready pods
	ready        map[string]int32 // each cluster's StatefulSet's ready pods, by id
	status       *client.Status   // the routers' status answer; nil if not reached
	statusErr    error            // why not
	choice       splitChoice      // what scaling decided
	replacing    []replacement    // nodes replacing a member that lost its volume, not done yet
}

// newStatus computes the store's status from what the sync saw, keeping
// the conditions' transition times of old where their status is the same.
func newStatus(sh *shape, old cleavev1.CleaveStoreStatus, ob observation) cleavev1.CleaveStoreStatus {
	s := sh.store
	out := cleavev1.CleaveStoreStatus{
		ObservedGeneration: s.Generation,
		Selector:           LabelStore + "=" + s.Name,
		Conditions:         slices.Clone(old.Conditions),
	}
	inTable := map[string]bool{}
	degraded := []string{}
	leaderless := []string{}
	if st := ob.status; st != nil {
		out.RoutingVersion = int64(min(st.Version, math.MaxInt64))
		for _, c := range st.Clusters {
			inTable[c.ID] = true
			cs := cleavev1.ClusterStatus{ID: c.ID, Range: wire.FormatRange(wire.Range(c.Range)), Leader: c.Leader, ReadyReplicas: ob.ready[c.ID]}
			for _, n := range c.Nodes {
				cs.Bytes = max(cs.Bytes, int64(min(n.Bytes, math.MaxInt64)))
				if n.Role == "down" || n.Error != "" {
					degraded = append(degraded, fmt.Sprintf("node %d of %s is unreachable", n.ID, c.ID))
				}
			}
			if c.Leader == "" {
				leaderless = append(leaderless, c.ID)
			}
			out.Clusters = append(out.Clusters, cs)
		}
		for _, sp := range st.Splits {
			if !sp.Phase.Final() {
				out.SplitsInProgress = append(out.SplitsInProgress, cleavev1.SplitProgress{
					ID: int64(min(sp.ID, math.MaxInt64)), Cluster: sp.Cluster, NewCluster: sp.NewCluster, Phase: string(sp.Phase), Error: sp.Error})
			}
		}
		out.Replicas = int32(len(st.Clusters))
	}
	if ob.status == nil {
		// The routers did not answer: keep what they said last rather than
		// report no clusters (the scale subresource reads Replicas).
		out.Replicas, out.RoutingVersion = old.Replicas, old.RoutingVersion
		for _, cs := range old.Clusters {
			if cs.Range != "" {
				cs.ReadyReplicas = ob.ready[cs.ID]
				out.Clusters = append(out.Clusters, cs)
				inTable[cs.ID] = true
			}
		}
		out.SplitsInProgress = old.SplitsInProgress
	}
	var pending []string
	for _, c := range sh.clusters {
		if !inTable[c.ID] && ob.status != nil {
			// Being split off: its pods starting is progress, not damage.
			pending = append(pending, c.ID)
			out.Clusters = append(out.Clusters, cleavev1.ClusterStatus{ID: c.ID, ReadyReplicas: ob.ready[c.ID]})
			continue
		}
		if ob.ready[c.ID] < int32(sh.replicas) {
			degraded = append(degraded, fmt.Sprintf("cluster %s has %d of %d pods ready", c.ID, ob.ready[c.ID], sh.replicas))
		}
	}
	for _, r := range ob.replacing {
		degraded = append(degraded, r.String())
	}
	if ob.routersReady < int32(sh.routers) {
		degraded = append(degraded, fmt.Sprintf("%d of %d routers ready", ob.routersReady, sh.routers))
	}
	set := func(typ string, ok bool, reason, msg string) {
		st := metav1.ConditionFalse
		if ok {
			st = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&out.Conditions, metav1.Condition{Type: typ, Status: st, Reason: reason, Message: msg, ObservedGeneration: s.Generation})
	}

	splitting, splitWhy := splittingState(out.SplitsInProgress, pending, ob.choice)
	if splitting {
		set(cleavev1.ConditionSplitting, true, "SplitInProgress", splitWhy)
	} else {
		set(cleavev1.ConditionSplitting, false, "NoSplit", "no split is running")
	}
	if len(degraded) > 0 {
		set(cleavev1.ConditionDegraded, true, "ReplicasUnavailable", strings.Join(degraded, "; "))
	} else {
		set(cleavev1.ConditionDegraded, false, "AllReplicasReady", "every router and node is ready")
	}
	switch {
	case ob.status == nil:
		msg := "waiting for the routers"
		if ob.statusErr != nil {
			msg = "routers not reached: " + ob.statusErr.Error()
		}
		set(cleavev1.ConditionReady, false, "RoutersUnavailable", msg)
	case len(degraded) > 0:
		set(cleavev1.ConditionReady, false, "ReplicasUnavailable", strings.Join(degraded, "; "))
	case len(leaderless) > 0:
		set(cleavev1.ConditionReady, false, "NoLeader", "no leader in "+strings.Join(leaderless, ", "))
	case splitting:
		set(cleavev1.ConditionReady, false, "Splitting", splitWhy)
	case out.Replicas < s.Spec.Clusters:
		set(cleavev1.ConditionReady, false, "Scaling", fmt.Sprintf("%d of %d clusters own a range", out.Replicas, s.Spec.Clusters))
	default:
		set(cleavev1.ConditionReady, true, "Ready", fmt.Sprintf("%d clusters serving, routing version %d", out.Replicas, out.RoutingVersion))
	}
	return out
}

// splittingState says whether a split is under way and how far it got.
func splittingState(running []cleavev1.SplitProgress, pending []string, ch splitChoice) (bool, string) {
	switch {
	case len(running) > 0:
		sp := running[0]
		return true, fmt.Sprintf("split %d of %s into %s: %s", sp.ID, sp.Cluster, sp.NewCluster, sp.Phase)
	case ch.Plan != nil:
		return true, fmt.Sprintf("creating cluster %s to split %s", ch.Plan.ID, ch.Plan.Parent)
	case ch.Request != nil:
		return true, fmt.Sprintf("asking the routers to split %s into %s", ch.Request.Cluster, ch.Request.NewCluster)
	case ch.Waiting != "":
		return true, "waiting: " + ch.Waiting
	case len(pending) > 0:
		return true, "cluster " + strings.Join(pending, ", ") + " is being split off"
	}
	return false, ""
}

// opsSample is a cluster's request counter at a time, for the ops/s
// auto-split threshold.
type opsSample struct {
	at  time.Time
	ops uint64
}

// overThreshold returns the cluster most over an auto-split threshold
// (bytes first, then ops/s since its sample in prev), or "". A cluster
// whose status names a hot root is not chosen for its rate: a split cannot
// spread one root. It records this status's counters in prev.
func overThreshold(a *cleavev1.AutoSplitSpec, st *client.Status, prev map[string]opsSample, now time.Time) string {
	if a == nil {
		return ""
	}
	var limit uint64
	if a.Bytes != nil && a.Bytes.Sign() > 0 {
		limit = uint64(a.Bytes.Value())
	}
	best, bestBytes, bestRate := "", uint64(0), 0.0
	for _, c := range st.Clusters {
		var bytes, ops uint64
		for _, n := range c.Nodes {
			bytes, ops = max(bytes, n.Bytes), ops+n.Ops
		}
		rate := 0.0
		if p, ok := prev[c.ID]; ok && now.After(p.at) && ops >= p.ops {
			rate = float64(ops-p.ops) / now.Sub(p.at).Seconds()
		}
		prev[c.ID] = opsSample{at: now, ops: ops}
		switch {
		case limit > 0 && bytes > limit && bytes > bestBytes:
			best, bestBytes = c.ID, bytes
		case bestBytes == 0 && a.OpsPerSecond > 0 && rate > float64(a.OpsPerSecond) && rate > bestRate && c.HotRoot == nil:
			best, bestRate = c.ID, rate
		}
	}
	return best
}
