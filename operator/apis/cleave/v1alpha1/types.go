package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CleaveStore is one cleave deployment: a meta group of routers and
// clusters of storage nodes, each a StatefulSet. Its scale subresource is
// the number of clusters: raising it splits clusters until there are that
// many. Clusters never merge: lowering it changes nothing but a warning
// event.
//
// +genclient
// +genclient:method=GetScale,verb=get,subresource=scale,result=k8s.io/api/autoscaling/v1.Scale
// +genclient:method=UpdateScale,verb=update,subresource=scale,input=k8s.io/api/autoscaling/v1.Scale,result=k8s.io/api/autoscaling/v1.Scale
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=cstore,categories=cleave
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.clusters,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:printcolumn:name="Clusters",type=integer,JSONPath=`.status.replicas`,description="Clusters that own a range"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Routing",type=integer,JSONPath=`.status.routingVersion`,description="Routing table version"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CleaveStore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CleaveStoreSpec   `json:"spec"`
	Status CleaveStoreStatus `json:"status,omitempty"`
}

// Defaults of CleaveStoreSpec, the same shape as `cleave up`'s.
const (
	DefaultRouters            = 3
	DefaultReplicasPerCluster = 3
	DefaultClusters           = 2
	DefaultStorageSize        = "10Gi"
)

// CleaveStoreSpec is the deployment the user asks for.
type CleaveStoreSpec struct {
	// Routers is the number of routers; more than one form the meta group
	// that replicates the routing table. Fixed at creation: a change is
	// reported (event RoutersUnchanged) and not applied.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=9
	// +kubebuilder:default=3
	// +optional
	Routers int32 `json:"routers,omitempty"`

	// ReplicasPerCluster is the number of storage nodes of each cluster
	// (its Raft group). Fixed at creation, like Routers.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=9
	// +kubebuilder:default=3
	// +optional
	ReplicasPerCluster int32 `json:"replicasPerCluster,omitempty"`

	// Clusters is the number of clusters wanted, the scale subresource's
	// replicas. At creation the ring is cut into this many even ranges;
	// raising it later splits the widest cluster, one split at a time.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=999
	// +kubebuilder:default=2
	// +optional
	Clusters int32 `json:"clusters,omitempty"`

	// AutoSplit, if set, splits a cluster that crosses a threshold, as
	// `cleave up --auto-split-bytes/--auto-split-ops` does.
	// +optional
	AutoSplit *AutoSplitSpec `json:"autoSplit,omitempty"`

	// Storage is each node's volume.
	// +optional
	Storage StorageSpec `json:"storage,omitempty"`

	// Image is the cleave image every pod runs (one image, every role).
	// Default: the operator's --image.
	// +optional
	Image string `json:"image,omitempty"`

	// ImagePullPolicy of every container. Default: IfNotPresent.
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// Resources of each storage node's container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// RouterResources of each router's container.
	// +optional
	RouterResources corev1.ResourceRequirements `json:"routerResources,omitempty"`

	// TLSSecretName names a Secret in the store's namespace holding a CA
	// (keys ca.crt and ca.key). Each pod issues its own certificate from it
	// at start: the peer plane runs mutual TLS and client listeners serve
	// TLS. Empty: both in plaintext, for a network you trust.
	// +optional
	TLSSecretName string `json:"tlsSecretName,omitempty"`

	// AuthSecretName names a Secret in the store's namespace whose key
	// "token" is the deployment's root token: every pod gets it as
	// CLEAVE_TOKEN, and the operator presents it. Empty: no token.
	// +optional
	AuthSecretName string `json:"authSecretName,omitempty"`
}

// AutoSplitSpec holds the thresholds over which the operator splits a
// cluster by itself (each split raises the cluster count past
// spec.clusters). Zero means that threshold is off.
type AutoSplitSpec struct {
	// Bytes is the size of the files one cluster holds over which it is
	// split.
	// +optional
	Bytes *resource.Quantity `json:"bytes,omitempty"`

	// OpsPerSecond is the client request rate one cluster serves over which
	// it is split.
	// +kubebuilder:validation:Minimum=0
	// +optional
	OpsPerSecond int64 `json:"opsPerSecond,omitempty"`
}

// StorageSpec is the persistent volume of each storage node.
type StorageSpec struct {
	// Size of each node's volume. Default 10Gi.
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// StorageClassName of the volumes; empty means the cluster's default.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// Condition types of CleaveStoreStatus.Conditions.
const (
	// ConditionReady is true when every cluster and router is ready, each
	// cluster has a leader, and as many clusters own a range as asked.
	ConditionReady = "Ready"
	// ConditionSplitting is true while a split runs or is being prepared.
	ConditionSplitting = "Splitting"
	// ConditionDegraded is true while a pod is not ready or a node is
	// unreachable from the routers.
	ConditionDegraded = "Degraded"
)

// CleaveStoreStatus is the deployment as the operator last saw it.
type CleaveStoreStatus struct {
	// ObservedGeneration is the spec generation this status was computed
	// for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Replicas is the number of clusters that own a range, the scale
	// subresource's status replicas.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// Selector selects every pod of the store (the scale subresource's
	// label selector).
	// +optional
	Selector string `json:"selector,omitempty"`

	// RoutingVersion is the routing table's version.
	// +optional
	RoutingVersion int64 `json:"routingVersion,omitempty"`

	// Clusters are the clusters, in ring order, then those being split off.
	// +optional
	// +listType=map
	// +listMapKey=id
	Clusters []ClusterStatus `json:"clusters,omitempty"`

	// SplitsInProgress are the splits the meta group has recorded and not
	// finished.
	// +optional
	SplitsInProgress []SplitProgress `json:"splitsInProgress,omitempty"`

	// Conditions are Ready, Splitting and Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ClusterStatus is one cluster of the store.
type ClusterStatus struct {
	// ID is the cluster's id, "c1", "c2", ...
	ID string `json:"id"`
	// Range is the ring range it owns, START-END in decimal; empty while it
	// is being split off.
	// +optional
	Range string `json:"range,omitempty"`
	// Leader is the client address of its Raft leader; empty if none.
	// +optional
	Leader string `json:"leader,omitempty"`
	// ReadyReplicas is its StatefulSet's ready pod count.
	ReadyReplicas int32 `json:"readyReplicas"`
	// Bytes is the size of the files it holds (as its leader reports).
	// +optional
	Bytes int64 `json:"bytes,omitempty"`
}

// SplitProgress is one split that has not finished.
type SplitProgress struct {
	// ID is the split's id in the meta group.
	ID int64 `json:"id"`
	// Cluster is the source cluster.
	Cluster string `json:"cluster"`
	// NewCluster is the cluster it splits off.
	NewCluster string `json:"newCluster"`
	// Phase is how far it has got (planned, learners-added, caught-up,
	// split-committed, table-updated).
	Phase string `json:"phase"`
	// Error is the split driver's last error, if any.
	// +optional
	Error string `json:"error,omitempty"`
}

// CleaveStoreList is a list of CleaveStores.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type CleaveStoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`

	Items []CleaveStore `json:"items"`
}
