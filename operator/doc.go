// Package operator is the Kubernetes controller of cleave: for each
// CleaveStore (package operator/apis/cleave/v1alpha1) it runs the same
// deployment `cleave up` runs on one machine — a meta group of routers and
// clusters of storage nodes — with pods instead of processes, and drives
// its splits.
//
// For a store named S it owns, each with S as controller owner (so deleting
// S deletes them):
//   - S-router: a StatefulSet of the routers and its headless Service;
//   - S-cN: a StatefulSet of cluster cN's nodes and its headless Service,
//     one per cluster;
//   - S: the client Service in front of the ready routers;
//   - a PodDisruptionBudget per StatefulSet.
//
// Every process finds the others by stable pod DNS names
// (POD.SERVICE.NAMESPACE.svc.DOMAIN); see resources.go for the flags each
// pod gets and how a pod derives its Raft id from its ordinal.
//
// The controller follows k8s.io/sample-controller: informers and listers
// for CleaveStores, StatefulSets, Services and PodDisruptionBudgets, a
// typed rate-limited workqueue of store keys, and a level-driven
// syncHandler that recomputes everything from what it observes (the
// objects, the routers' status answer and their split records) and is
// idempotent: a sync that finds nothing to change writes nothing. So an
// operator restarted in the middle of a scale picks it up where the
// cluster is: a new cluster's StatefulSet that exists is not created
// again, a split the routers have recorded is not requested again, and a
// cluster of the routing table whose StatefulSet was deleted gets it back.
//
// Scaling: while fewer clusters own a range than spec.clusters asks (or
// one crosses an auto-split threshold) and no split runs, the controller
// creates a StatefulSet for the next cluster, split off the widest one;
// once all its pods are ready it asks the routers to split (Admin.Split);
// the routers' meta group drives the split to its end, and the conditions
// Splitting and Ready and the events say how far it got. One split at a
// time, as under `cleave up`. A split the routers abandon leaves its
// cluster's StatefulSet and volumes deleted, and the next sync plans a new
// one.
//
// Lost volumes: a node pod that comes back on an empty volume takes a new
// raft id (its pods run with --rejoin-wiped) and names the id it replaces
// in its status; the controller then replaces the old id with the new one
// through the routers (Admin.ReplaceNode: removal of the old id, whose
// address the new node has, then learner, snapshot, promotion), with the
// store Degraded until that is done (replace.go).
//
// Run wraps the controller in Lease leader election (the Lease does not
// fence: Raft protects the data) and bridges klog to the slog logger.
package operator
