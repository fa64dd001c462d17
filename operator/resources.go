package operator

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	cleavev1 "github.com/cleavefs/cleave/operator/apis/cleave/v1alpha1"
	"github.com/cleavefs/cleave/wire"
)

// The ports every cleave pod listens on, all interfaces; each pod has its
// own IP, so routers and nodes share the numbers.
const (
	ClientPort = 7400 // client listener: data ops, STATUS, admin verbs
	PeerPort   = 7401 // peer listener: raft, snapshots, membership, split
	GossipPort = 7946 // gossip pool (UDP and TCP)
	HTTPPort   = 9090 // side port: /metrics, /healthz, /readyz
)

// Labels and annotations the operator sets.
const (
	LabelStore     = "cleave.io/store"   // the CleaveStore's name, on everything
	LabelCluster   = "cleave.io/cluster" // a node's cluster id, "c1"
	LabelComponent = "app.kubernetes.io/component"

	// AnnotationSplitFrom on a cluster's StatefulSet names the cluster it
	// is split off; absent on the clusters the store was created with.
	AnnotationSplitFrom = "cleave.io/split-from"
	// AnnotationRange on a bootstrap cluster's StatefulSet is the range it
	// was created with (START-END, what --range bootstraps).
	AnnotationRange = "cleave.io/range"
	// AnnotationBootstrap on the routers' StatefulSet lists the bootstrap
	// clusters as ID=START-END,...: the routers' --cluster flags.
	AnnotationBootstrap = "cleave.io/bootstrap-clusters"
	// AnnotationSpecHash is a hash of the operator's desired spec of an
	// object: an object whose hash differs is updated.
	AnnotationSpecHash = "cleave.io/spec-hash"

	// podIndexLabel is the ordinal the StatefulSet controller puts on each
	// of its pods.
	podIndexLabel = "apps.kubernetes.io/pod-index"

	dataDir     = "/var/lib/cleave"
	caDir       = "/etc/cleave/ca"
	certDir     = "/etc/cleave/certs"
	routerStore = "1Gi" // each router's volume: the meta group's log and table
)

// clusterPlan is one cluster of a store: what its StatefulSet is built from.
type clusterPlan struct {
	ID     string     // "c1"
	Num    int        // N of cN: the cluster's node ids are 10N+ordinal
	Range  wire.Range // bootstrap cluster: the range it was created with
	Parent string     // split-born cluster: the cluster it is split off; "" for a bootstrap one
}

// shape is what a store's objects are built from: the store (defaulted)
// and the facts fixed at creation.
type shape struct {
	store    *cleavev1.CleaveStore
	image    string // the image of every pod
	domain   string // the Kubernetes cluster domain, "cluster.local"
	routers  int    // router count, fixed at creation
	replicas int    // nodes per cluster, fixed at creation
	boot     []clusterPlan
	clusters []clusterPlan // every cluster, bootstrap and split-born, by Num
}

// clusterNum returns N of "cN", or 0 if id is not of that form.
func clusterNum(id string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "c"))
	if err != nil || !strings.HasPrefix(id, "c") || n <= 0 {
		return 0
	}
	return n
}

// nodeID is the raft id of ordinal i of cluster number num. A pod knows
// its ordinal (label apps.kubernetes.io/pod-index) but no arithmetic, so
// the id is written as the cluster number followed by the ordinal digit,
// which is why a cluster has at most 9 nodes.
func nodeID(num, i int) uint64 { return uint64(num*10 + i) }

// routerRaftID is the meta group id of router ordinal i: "1" then the
// ordinal digit, as for nodes.
func routerRaftID(i int) uint64 { return uint64(10 + i) }

func routerName(s *cleavev1.CleaveStore) string             { return s.Name + "-router" }
func clusterName(s *cleavev1.CleaveStore, id string) string { return s.Name + "-" + id }
func clientServiceName(s *cleavev1.CleaveStore) string      { return s.Name }
func podHost(sh *shape, set string, i int) string {
	return fmt.Sprintf("%s-%d.%s.%s.svc.%s", set, i, set, sh.store.Namespace, sh.domain)
}

// members returns cluster c's nodes as the routing table names them.
func (sh *shape) members(c clusterPlan) []wire.Member {
	set := clusterName(sh.store, c.ID)
	out := make([]wire.Member, sh.replicas)
	for i := range out {
		h := podHost(sh, set, i)
		out[i] = wire.Member{ID: nodeID(c.Num, i), Addr: hostPort(h, ClientPort), PeerAddr: hostPort(h, PeerPort)}
	}
	return out
}

// RouterAddrs returns the client addresses of the routers of sh's store.
func (sh *shape) routerAddrs() []string {
	out := make([]string, sh.routers)
	for i := range out {
		out[i] = hostPort(podHost(sh, routerName(sh.store), i), ClientPort)
	}
	return out
}

func (sh *shape) gossipSeeds() string {
	out := make([]string, sh.routers)
	for i := range out {
		out[i] = hostPort(podHost(sh, routerName(sh.store), i), GossipPort)
	}
	return strings.Join(out, ",")
}

func hostPort(h string, port int) string { return h + ":" + strconv.Itoa(port) }

// formatPeers writes members as --peers reads them: ID=CLIENT/PEER,...
// sorted by id (as up.FormatPeers).
func formatPeers(ms []wire.Member) string {
	ms = slices.Clone(ms)
	sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = strconv.FormatUint(m.ID, 10) + "=" + wire.JoinAddrs(m.Addr, m.PeerAddr)
	}
	return strings.Join(parts, ",")
}

// formatCluster writes a cluster as `cleave router --cluster` reads it:
// ID=NODE@CLIENT/PEER,... (as up.FormatCluster).
func formatCluster(id string, ms []wire.Member) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = strconv.FormatUint(m.ID, 10) + "@" + wire.JoinAddrs(m.Addr, m.PeerAddr)
	}
	return id + "=" + strings.Join(parts, ",")
}

// labels returns the labels of the store's objects of component
// ("router" or "node") and, for nodes, cluster id.
func labels(s *cleavev1.CleaveStore, component, cluster string) map[string]string {
	l := map[string]string{
		"app.kubernetes.io/name":       "cleave",
		"app.kubernetes.io/instance":   s.Name,
		"app.kubernetes.io/managed-by": "cleave-operator",
		LabelComponent:                 component,
		LabelStore:                     s.Name,
	}
	if cluster != "" {
		l[LabelCluster] = cluster
	}
	return l
}

// selectorLabels are the labels a StatefulSet, Service or PDB selects by.
func selectorLabels(s *cleavev1.CleaveStore, component, cluster string) map[string]string {
	l := map[string]string{LabelStore: s.Name, LabelComponent: component}
	if cluster != "" {
		l[LabelCluster] = cluster
	}
	return l
}

// objectMeta is the metadata of an object of the store: its name, labels
// and the store as controller owner.
func objectMeta(s *cleavev1.CleaveStore, name string, l map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       s.Namespace,
		Labels:          l,
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(s, cleavev1.SchemeGroupVersion.WithKind("CleaveStore"))},
	}
}

// headlessService returns the headless Service that gives set's pods their
// DNS names. Not-ready pods are published too: a cluster's members must
// find each other before any of them is ready.
func headlessService(s *cleavev1.CleaveStore, set, component, cluster string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: objectMeta(s, set, labels(s, component, cluster)),
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			PublishNotReadyAddresses: true,
			Selector:                 selectorLabels(s, component, cluster),
			Ports: []corev1.ServicePort{
				{Name: "client", Port: ClientPort, TargetPort: intstr.FromInt32(ClientPort)},
				{Name: "peer", Port: PeerPort, TargetPort: intstr.FromInt32(PeerPort)},
				{Name: "http", Port: HTTPPort, TargetPort: intstr.FromInt32(HTTPPort)},
			},
		},
	}
}

// clientService returns the Service clients use: the ready routers.
func clientService(s *cleavev1.CleaveStore) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: objectMeta(s, clientServiceName(s), labels(s, "router", "")),
		Spec: corev1.ServiceSpec{
			Selector: selectorLabels(s, "router", ""),
			Ports:    []corev1.ServicePort{{Name: "client", Port: ClientPort, TargetPort: intstr.FromInt32(ClientPort)}},
		},
	}
}

// pdb returns the PodDisruptionBudget of a StatefulSet of n members: at
// most (n-1)/2 away at once, what a Raft group of n survives, and at least
// one so that a node drain is never blocked for good.
func pdb(s *cleavev1.CleaveStore, set, component, cluster string, n int) *policyv1.PodDisruptionBudget {
	most := intstr.FromInt32(int32(max(1, (n-1)/2)))
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: objectMeta(s, set, labels(s, component, cluster)),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &most,
			Selector:       &metav1.LabelSelector{MatchLabels: selectorLabels(s, component, cluster)},
		},
	}
}

// storageSize returns the store's node volume size.
func storageSize(s *cleavev1.CleaveStore) resource.Quantity {
	if s.Spec.Storage.Size != nil {
		return *s.Spec.Storage.Size
	}
	return resource.MustParse(cleavev1.DefaultStorageSize)
}

// formatBootstrap writes the bootstrap clusters for AnnotationBootstrap.
func formatBootstrap(boot []clusterPlan) string {
	parts := make([]string, len(boot))
	for i, c := range boot {
		parts[i] = c.ID + "=" + wire.FormatRange(c.Range)
	}
	return strings.Join(parts, ",")
}

// parseBootstrap reads what formatBootstrap writes.
func parseBootstrap(v string) ([]clusterPlan, error) {
	var out []clusterPlan
	for part := range strings.SplitSeq(v, ",") {
		id, rs, ok := strings.Cut(part, "=")
		if !ok || clusterNum(id) == 0 {
			return nil, fmt.Errorf("%s %q: want cN=START-END,...", AnnotationBootstrap, v)
		}
		r, err := wire.ParseRange(rs)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", AnnotationBootstrap, v, err)
		}
		out = append(out, clusterPlan{ID: id, Num: clusterNum(id), Range: r})
	}
	return out, nil
}
