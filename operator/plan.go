package operator

import (
	"fmt"
	"slices"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/ring"
	cleavev1 "github.com/cleavefs/cleave/operator/apis/cleave/v1alpha1"
	"github.com/cleavefs/cleave/wire"
)

// The pure half of the controller: what a store should consist of, given
// what is observed. No clients, no clock.

// withDefaults returns a copy of s with the spec's defaults filled in (the
// CRD defaults them too; a store from an older CRD or a test may lack
// them).
func withDefaults(s *cleavev1.CleaveStore) *cleavev1.CleaveStore {
	s = s.DeepCopy()
	if s.Spec.Routers == 0 {
		s.Spec.Routers = cleavev1.DefaultRouters
	}
	if s.Spec.ReplicasPerCluster == 0 {
		s.Spec.ReplicasPerCluster = cleavev1.DefaultReplicasPerCluster
	}
	if s.Spec.Clusters == 0 {
		s.Spec.Clusters = cleavev1.DefaultClusters
	}
	return s
}

// validateSpec reports what is wrong with s's (defaulted) spec, naming the
// field: what the CRD's validation refuses, checked again because a store
// may predate it and because the pods' Raft ids depend on it (an ordinal
// must be one digit).
func validateSpec(s *cleavev1.CleaveStore) error {
	sp := s.Spec
	switch {
	case sp.Routers < 1 || sp.Routers > 9:
		return fmt.Errorf("spec.routers %d: must be 1 to 9", sp.Routers)
	case sp.ReplicasPerCluster < 1 || sp.ReplicasPerCluster > 9:
		return fmt.Errorf("spec.replicasPerCluster %d: must be 1 to 9", sp.ReplicasPerCluster)
	case sp.Clusters < 1:
		return fmt.Errorf("spec.clusters %d: must be at least 1", sp.Clusters)
	case sp.Storage.Size != nil && sp.Storage.Size.Sign() <= 0:
		return fmt.Errorf("spec.storage.size %s: must be positive", sp.Storage.Size)
	case sp.AutoSplit != nil && sp.AutoSplit.OpsPerSecond < 0:
		return fmt.Errorf("spec.autoSplit.opsPerSecond %d: must not be negative", sp.AutoSplit.OpsPerSecond)
	}
	switch sp.ImagePullPolicy {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		return fmt.Errorf("spec.imagePullPolicy %q: want Always, IfNotPresent or Never", sp.ImagePullPolicy)
	}
	return nil
}

// observeShape decides what the store consists of from its StatefulSets:
// the routers' (nil if none yet) and the clusters' (any order). What was
// fixed at creation — router count, nodes per cluster, the bootstrap
// clusters — is read from the objects that exist, so a spec change of
// those is not applied (warnings lists each); a store with no router
// StatefulSet yet is shaped from its spec. The clusters are the bootstrap
// ones and every cluster StatefulSet, by number.
func observeShape(s *cleavev1.CleaveStore, image, domain string, router *appsv1.StatefulSet, clusters []*appsv1.StatefulSet) (sh *shape, warnings []string, err error) {
	sh = &shape{store: s, image: image, domain: domain, routers: int(s.Spec.Routers), replicas: int(s.Spec.ReplicasPerCluster)}
	if s.Spec.Image != "" {
		sh.image = s.Spec.Image
	}
	if router != nil {
		if sh.boot, err = parseBootstrap(router.Annotations[AnnotationBootstrap]); err != nil {
			return nil, nil, fmt.Errorf("statefulset %s: %w", router.Name, err)
		}
		if n := int(replicasOf(router)); n != sh.routers {
			warnings = append(warnings, fmt.Sprintf("spec.routers %d is not applied: the meta group has %d routers (fixed at creation)", sh.routers, n))
			sh.routers = n
		}
	} else {
		for i, r := range ring.Even(int(s.Spec.Clusters)) {
			sh.boot = append(sh.boot, clusterPlan{ID: fmt.Sprintf("c%d", i+1), Num: i + 1, Range: r})
		}
	}
	byNum := map[int]clusterPlan{}
	for _, c := range sh.boot {
		byNum[c.Num] = c
	}
	for _, st := range clusters {
		id := st.Labels[LabelCluster]
		num := clusterNum(id)
		if num == 0 {
			return nil, nil, fmt.Errorf("statefulset %s: label %s=%q is not a cluster id cN", st.Name, LabelCluster, id)
		}
		if n := int(replicasOf(st)); n != sh.replicas {
			warnings = append(warnings, fmt.Sprintf("spec.replicasPerCluster %d is not applied: cluster %s has %d nodes (fixed at creation)", sh.replicas, id, n))
			sh.replicas = n
		}
		if parent := st.Annotations[AnnotationSplitFrom]; parent != "" {
			if clusterNum(parent) == 0 {
				return nil, nil, fmt.Errorf("statefulset %s: annotation %s=%q is not a cluster id cN", st.Name, AnnotationSplitFrom, parent)
			}
			byNum[num] = clusterPlan{ID: id, Num: num, Parent: parent}
		} else if _, ok := byNum[num]; !ok {
			return nil, nil, fmt.Errorf("statefulset %s: cluster %s is neither a bootstrap cluster nor split from one (no %s)", st.Name, id, AnnotationSplitFrom)
		}
	}
	for _, c := range byNum {
		sh.clusters = append(sh.clusters, c)
	}
	sort.Slice(sh.clusters, func(i, j int) bool { return sh.clusters[i].Num < sh.clusters[j].Num })
	return sh, warnings, nil
}

func replicasOf(st *appsv1.StatefulSet) int32 {
	if st.Spec.Replicas == nil {
		return 1
	}
	return *st.Spec.Replicas
}

// splitChoice is what scale decides about splits this sync.
type splitChoice struct {
	// Plan, if not nil, is a new cluster to create: the next split.
	Plan *clusterPlan
	// Request, if not nil, is a split to ask the routers for: its new
	// cluster's pods are all ready and the routers have no record of it.
	Request *client.SplitSpec
	// Drop names a pending cluster whose split the routers abandoned: its
	// StatefulSet and volumes are deleted, and a later sync plans anew.
	Drop string
	// Waiting says why a pending cluster's split is not requested yet.
	Waiting string
}

// decideSplit chooses the next step of scaling from the shape, the
// routers' status answer and the ready pods of each cluster (by id). A
// cluster is pending while it has a StatefulSet but owns no range in the
// routing table; at most one is, as at most one split runs at a time.
// autoSplit names a cluster over an auto-split threshold, or "".
func decideSplit(sh *shape, st *client.Status, ready map[string]int32, autoSplit string) splitChoice {
	owning := map[string]client.Range{}
	for _, c := range st.Clusters {
		owning[c.ID] = c.Range
	}
	var taken []string
	running := false
	for _, sp := range st.Splits {
		taken = append(taken, sp.NewCluster)
		running = running || !sp.Phase.Final()
	}
	for _, c := range sh.clusters {
		if _, ok := owning[c.ID]; ok || c.Parent == "" {
			continue
		}
		i := slices.IndexFunc(st.Splits, func(sp client.SplitStatus) bool { return sp.NewCluster == c.ID })
		switch {
		case i >= 0 && st.Splits[i].Phase == client.SplitAbandoned:
			return splitChoice{Drop: c.ID}
		case i >= 0:
			return splitChoice{} // recorded: the meta group drives it
		case ready[c.ID] < int32(sh.replicas):
			return splitChoice{Waiting: fmt.Sprintf("cluster %s has %d of %d pods ready", c.ID, ready[c.ID], sh.replicas)}
		}
		return splitChoice{Request: &client.SplitSpec{Cluster: c.Parent, NewCluster: c.ID, Nodes: clientMembers(sh.members(c))}}
	}
	if running || len(st.Clusters) == 0 {
		return splitChoice{}
	}
	src := autoSplit
	if len(st.Clusters) < int(sh.store.Spec.Clusters) {
		src = widest(st.Clusters)
	}
	if src == "" {
		return splitChoice{}
	}
	num := 0
	for _, c := range sh.clusters {
		num = max(num, c.Num)
	}
	for _, id := range taken {
		num = max(num, clusterNum(id))
	}
	return splitChoice{Plan: &clusterPlan{ID: fmt.Sprintf("c%d", num+1), Num: num + 1, Parent: src}}
}

// missing returns the clusters the routing table has and sh does not: a
// StatefulSet deleted by hand (its volumes kept). Each is planned as it
// was: split-born with its parent from the split records, else a
// bootstrap cluster with the range the table gives it (which --range only
// uses on an empty volume).
func missing(sh *shape, st *client.Status) []clusterPlan {
	have := map[string]bool{}
	for _, c := range sh.clusters {
		have[c.ID] = true
	}
	var out []clusterPlan
	for _, c := range st.Clusters {
		num := clusterNum(c.ID)
		if have[c.ID] || num == 0 {
			continue
		}
		p := clusterPlan{ID: c.ID, Num: num, Range: wire.Range(c.Range)}
		for _, sp := range st.Splits {
			if sp.NewCluster == c.ID && sp.Phase != client.SplitAbandoned {
				p.Parent, p.Range = sp.Cluster, wire.Range{}
			}
		}
		out = append(out, p)
	}
	return out
}

// widest returns the id of the cluster with the widest range, the first
// in ring order among equals: splitting it keeps the ranges even.
func widest(cs []client.ClusterStatus) string {
	best, width := "", uint64(0)
	for _, c := range cs {
		w := c.Range.End - c.Range.Start // End 0 is the top of the ring: wraps to the right width
		if best == "" || w > width {
			best, width = c.ID, w
		}
	}
	return best
}

// clientMembers converts members as the flags name them to the SDK's type.
func clientMembers(ms []wire.Member) []client.Member {
	out := make([]client.Member, len(ms))
	for i, m := range ms {
		out[i] = client.Member(m)
	}
	return out
}
