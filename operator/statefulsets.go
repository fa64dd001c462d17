package operator

import (
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	cleavev1 "github.com/cleavefs/cleave/operator/apis/cleave/v1alpha1"
	"github.com/cleavefs/cleave/wire"
)

// The pods' flags are the ones `cleave up` writes for its children
// (package up, run.go), with three differences: every listener binds all
// interfaces and advertises the pod's DNS name, each pod reads its Raft id
// from its ordinal (NODE_ID / RAFT_ID below, "$(VAR)" expanded by the
// kubelet), and certificates are issued per pod by an init container from
// the CA in spec.tlsSecretName instead of by the supervisor.

// podEnv returns the environment every cleave container starts with: its
// pod's name, ordinal and IP, its DNS name under set, its id (prefix followed
// by the ordinal digit) as idVar, and the token if the store has one.
func podEnv(sh *shape, set, idVar, prefix string) []corev1.EnvVar {
	env := []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_INDEX", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['" + podIndexLabel + "']"}}},
		{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "POD_HOST", Value: "$(POD_NAME)." + set + "." + sh.store.Namespace + ".svc." + sh.domain},
		{Name: idVar, Value: prefix + "$(POD_INDEX)"},
	}
	if name := sh.store.Spec.AuthSecretName; name != "" {
		env = append(env, corev1.EnvVar{Name: "CLEAVE_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "token"}}})
	}
	return env
}

// listenArgs are the listener flags of a node or router. Gossip advertises
// the pod's IP, not its DNS name: memberlist wants an IP to tell others.
func listenArgs() []string {
	return []string{
		"--listen", "0.0.0.0:" + strconv.Itoa(ClientPort),
		"--advertise", "$(POD_HOST):" + strconv.Itoa(ClientPort),
		"--peer-listen", "0.0.0.0:" + strconv.Itoa(PeerPort),
		"--peer-advertise", "$(POD_HOST):" + strconv.Itoa(PeerPort),
		"--data", dataDir,
		"--gossip", "0.0.0.0:" + strconv.Itoa(GossipPort),
		"--gossip-advertise", "$(POD_IP):" + strconv.Itoa(GossipPort),
		"--http", "0.0.0.0:" + strconv.Itoa(HTTPPort),
		"--log-format", "json",
	}
}

// tlsArgs are the TLS flags of a pod whose certificate is certName (with
// "$(VAR)" references): mutual TLS on the peer plane and TLS on the client
// listener with a CA, plaintext without one.
func tlsArgs(sh *shape, certName string, router bool) []string {
	if sh.store.Spec.TLSSecretName == "" {
		return []string{"--insecure-peer"}
	}
	crt, key, ca := certDir+"/"+certName+".crt", certDir+"/"+certName+".key", caDir+"/ca.crt"
	args := []string{"--peer-cert", crt, "--peer-key", key, "--peer-cacert", ca, "--tls-cert", crt, "--tls-key", key, "--tls-cacert", ca}
	if router {
		args = append(args, "--node-tls")
	}
	return args
}

// podSpec returns the pod of a node or router: one cleave container with
// args, and with a CA the init container that issues its certificate.
func podSpec(sh *shape, env []corev1.EnvVar, args []string, certName string, res corev1.ResourceRequirements, ready string) corev1.PodSpec {
	policy := sh.store.Spec.ImagePullPolicy
	if policy == "" {
		policy = corev1.PullIfNotPresent
	}
	uid := int64(65532)
	nonRoot := true
	sec := &corev1.PodSecurityContext{RunAsUser: &uid, RunAsGroup: &uid, FSGroup: &uid, RunAsNonRoot: &nonRoot}
	// A container that fails to start (a node refusing an empty volume
	// under an id its leader knows) prints why as its last line: keep the
	// output's tail as the termination message, which the pod's status
	// and `kubectl describe pod` show.
	why := corev1.TerminationMessageFallbackToLogsOnError
	c := corev1.Container{
		Name: "cleave", Image: sh.image, ImagePullPolicy: policy, TerminationMessagePolicy: why,
		Command: []string{"cleave"}, Args: args, Env: env, Resources: res,
		Ports: []corev1.ContainerPort{
			{Name: "client", ContainerPort: ClientPort},
			{Name: "peer", ContainerPort: PeerPort},
			{Name: "gossip", ContainerPort: GossipPort, Protocol: corev1.ProtocolUDP},
			{Name: "gossip-tcp", ContainerPort: GossipPort},
			{Name: "http", ContainerPort: HTTPPort},
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: ready, Port: intstr.FromInt32(HTTPPort)}},
			PeriodSeconds: 2, FailureThreshold: 3,
		},
		VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: dataDir}},
	}
	spec := corev1.PodSpec{SecurityContext: sec}
	if name := sh.store.Spec.TLSSecretName; name != "" {
		mounts := []corev1.VolumeMount{{Name: "ca", MountPath: caDir, ReadOnly: true}, {Name: "certs", MountPath: certDir}}
		c.VolumeMounts = append(c.VolumeMounts, mounts...)
		spec.Volumes = []corev1.Volume{
			{Name: "ca", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name}}},
			{Name: "certs", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		}
		spec.InitContainers = []corev1.Container{{
			Name: "certs", Image: sh.image, ImagePullPolicy: policy, Env: env, VolumeMounts: mounts, TerminationMessagePolicy: why,
			Command: []string{"cleave"},
			Args:    []string{"certs", "issue", "--dir", caDir, "--out", certDir, "--name", certName, "--host", "$(POD_HOST)"},
		}}
	}
	spec.Containers = []corev1.Container{c}
	return spec
}

// statefulSet wraps a pod spec into a StatefulSet of n pods with a data
// volume each. Pods start in parallel: a Raft group needs a quorum of its
// members up before any of them is ready.
func statefulSet(sh *shape, set, component, cluster string, n int, pod corev1.PodSpec, size resource.Quantity) *appsv1.StatefulSet {
	s := sh.store
	replicas := int32(n)
	l := labels(s, component, cluster)
	return &appsv1.StatefulSet{
		ObjectMeta: objectMeta(s, set, l),
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &replicas,
			ServiceName:         set,
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: selectorLabels(s, component, cluster)},
			Template:            corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l}, Spec: pod},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: l},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					StorageClassName: s.Spec.Storage.StorageClassName,
					Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
				},
			}},
		},
	}
}

// routerStatefulSet returns the routers' StatefulSet. Their --cluster flags
// name the bootstrap clusters only, the same on every start: a router with
// a table ignores them, and split-born clusters reach the table through
// the meta group.
func routerStatefulSet(sh *shape) *appsv1.StatefulSet {
	set := routerName(sh.store)
	env := podEnv(sh, set, "RAFT_ID", "1")
	args := append([]string{"router", "--id", "$(POD_NAME)"}, listenArgs()...)
	args = append(args, "--gossip-seeds", sh.gossipSeeds())
	if sh.routers > 1 {
		meta := make([]wire.Member, sh.routers)
		for i := range meta {
			h := podHost(sh, set, i)
			meta[i] = wire.Member{ID: routerRaftID(i), Addr: hostPort(h, ClientPort), PeerAddr: hostPort(h, PeerPort)}
		}
		args = append(args, "--raft-id", "$(RAFT_ID)", "--peers", formatPeers(meta))
	}
	for _, c := range sh.boot {
		args = append(args, "--cluster", formatCluster(c.ID, sh.members(c)))
	}
	cert := "router-$(RAFT_ID)"
	if sh.routers == 1 {
		cert = "router-$(POD_NAME)"
	}
	args = append(args, tlsArgs(sh, cert, true)...)
	pod := podSpec(sh, env, args, cert, sh.store.Spec.RouterResources, "/readyz")
	st := statefulSet(sh, set, "router", "", sh.routers, pod, resource.MustParse(routerStore))
	st.Annotations = map[string]string{AnnotationBootstrap: formatBootstrap(sh.boot)}
	return st
}

// clusterStatefulSet returns cluster c's StatefulSet. A bootstrap
// cluster's nodes get its range; a split-born cluster's nodes start empty
// with --join, and --peers lists its own nodes and its parent's (as under
// `cleave up`). Both are ignored once a node's volume holds its state.
func clusterStatefulSet(sh *shape, c clusterPlan) *appsv1.StatefulSet {
	set := clusterName(sh.store, c.ID)
	env := podEnv(sh, set, "NODE_ID", strconv.Itoa(c.Num))
	peers := sh.members(c)
	if c.Parent != "" {
		peers = append(peers, sh.members(clusterPlan{ID: c.Parent, Num: clusterNum(c.Parent)})...)
	}
	args := append([]string{"node", "--id", "$(NODE_ID)", "--cluster", c.ID, "--rejoin-wiped"}, listenArgs()...)
	args = append(args, "--peers", formatPeers(peers), "--gossip-seeds", sh.gossipSeeds())
	ann := map[string]string{}
	if c.Parent == "" {
		args = append(args, "--range", wire.FormatRange(c.Range))
		ann[AnnotationRange] = wire.FormatRange(c.Range)
	} else {
		args = append(args, "--join")
		ann[AnnotationSplitFrom] = c.Parent
	}
	res := sh.store.Spec.Resources
	if m, ok := res.Limits[corev1.ResourceMemory]; ok {
		args = append(args, "--memory-limit", strconv.FormatInt(m.Value(), 10))
	}
	cert := "node-$(NODE_ID)"
	args = append(args, tlsArgs(sh, cert, false)...)
	if sh.store.Spec.TLSSecretName != "" {
		args = append(args, "--rejoin-ca", caDir) // a node on a lost volume issues the certificate of its new id
	}
	// /healthz, not /readyz: a node waiting to join knows no leader until
	// its split starts, and the split waits for it to be ready.
	pod := podSpec(sh, env, args, cert, res, "/healthz")
	st := statefulSet(sh, set, "node", c.ID, sh.replicas, pod, storageSize(sh.store))
	st.Annotations = ann
	return st
}

// StatefulSets returns the StatefulSets the first sync of a new store
// creates — the routers' first, then each cluster's — with pods of image
// (unless the spec names one) named under domain. It shows what the
// operator runs without an API server: `cleave`'s tests parse the pods'
// flags with the real commands.
func StatefulSets(store *cleavev1.CleaveStore, image, domain string) ([]*appsv1.StatefulSet, error) {
	s := withDefaults(store)
	if err := validateSpec(s); err != nil {
		return nil, err
	}
	sh, _, err := observeShape(s, image, domain, nil, nil)
	if err != nil {
		return nil, err
	}
	out := []*appsv1.StatefulSet{routerStatefulSet(sh)}
	for _, c := range sh.clusters {
		out = append(out, clusterStatefulSet(sh, c))
	}
	return out, nil
}
