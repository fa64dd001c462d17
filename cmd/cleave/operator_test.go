package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cleavefs/cleave/cluster"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/operator"
	cleavev1 "github.com/cleavefs/cleave/operator/apis/cleave/v1alpha1"
	"github.com/cleavefs/cleave/router"
	"github.com/cleavefs/cleave/wire"
)

// TestOperatorFlags: `cleave operator` turns its flags (and CLEAVE_*
// variables) into the operator's configuration, and names a bad value.
func TestOperatorFlags(t *testing.T) {
	parse := func(args ...string) (operator.RunConfig, error) {
		var got operator.RunConfig
		err := execute(newOperatorCmd(func(_ context.Context, rc operator.RunConfig) error { got = rc; return nil }), args...)
		return got, err
	}
	rc, err := parse("--kubeconfig", "/k", "--namespace", "prod", "--image", "cleave:v9", "--workers", "4", "--status-interval", "3s")
	if err != nil {
		t.Fatal(err)
	}
	if rc.Kubeconfig != "/k" || rc.Namespace != "prod" || rc.Image != "cleave:v9" || rc.Workers != 4 ||
		rc.StatusInterval != 3*time.Second || rc.ClusterDomain != "cluster.local" || rc.LeaseName != "cleave-operator" || rc.Dial == nil {
		t.Fatalf("config %+v", rc)
	}
	t.Setenv("CLEAVE_NAMESPACE", "from-env")
	if rc, err = parse(); err != nil || rc.Namespace != "from-env" {
		t.Fatalf("CLEAVE_NAMESPACE: namespace %q, err %v", rc.Namespace, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--workers", "0"}, "--workers 0: must be at least 1"},
		{[]string{"--cluster-domain", ".local."}, `ClusterDomain ".local."`},
		{[]string{"--status-interval", "0s"}, "StatusInterval 0s: must be positive"},
		{[]string{"--log-format", "xml"}, `--log-format "xml"`},
	} {
		if _, err := parse(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

// kubeVar is a $(VAR) reference in a container's env or args, which the
// kubelet expands.
var kubeVar = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// podArgs returns the args of st's pod of ordinal i as the kubelet runs
// them: the downward-API variables set and every $(VAR) expanded.
func podArgs(t *testing.T, st *appsv1.StatefulSet, i int) []string {
	t.Helper()
	c := st.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	expand := func(s string) string {
		return kubeVar.ReplaceAllStringFunc(s, func(m string) string {
			v, ok := env[m[2:len(m)-1]]
			if !ok {
				t.Fatalf("%s: %s is not defined before its use", st.Name, m)
			}
			return v
		})
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = expand(e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = fmt.Sprintf("%s-%d", st.Name, i)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.labels['apps.kubernetes.io/pod-index']":
			env[e.Name] = strconv.Itoa(i)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP":
			env[e.Name] = fmt.Sprintf("10.1.0.%d", i+2)
		default:
			t.Fatalf("%s: env %s from %+v", st.Name, e.Name, e.ValueFrom)
		}
	}
	out := make([]string, len(c.Args))
	for j, a := range c.Args {
		out[j] = expand(a)
	}
	return out
}

// TestOperatorPodFlags: the flags the operator gives its pods are read by
// `cleave node` and `cleave router` into the configuration they mean: a
// node's Raft id from its ordinal, its advertised DNS names, its cluster's
// members and range; a router's meta-group id, peers and the bootstrap
// clusters.
func TestOperatorPodFlags(t *testing.T) {
	store := &cleavev1.CleaveStore{ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "ns"},
		Spec: cleavev1.CleaveStoreSpec{Routers: 3, ReplicasPerCluster: 3, Clusters: 2}}
	sets, err := operator.StatefulSets(store, "cleave:test", "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	host := func(set string, i int) string { return fmt.Sprintf("%s-%d.%s.ns.svc.cluster.local", set, i, set) }

	var rc router.Config
	args := podArgs(t, sets[0], 1)
	if args[0] != "router" {
		t.Fatalf("router pod runs %v", args)
	}
	if err := execute(newRouterCmd(func(_ context.Context, c router.Config) error { rc = c; return nil }), args[1:]...); err != nil {
		t.Fatalf("cleave %s: %v", strings.Join(args, " "), err)
	}
	if rc.ID != "demo-router-1" || rc.Advertise != host("demo-router", 1)+":7400" || rc.PeerAdvertise != host("demo-router", 1)+":7401" ||
		rc.Meta == nil || rc.Meta.RaftID != 11 || len(rc.Meta.Peers) != 3 || rc.Meta.Peers[12] != wire.JoinAddrs(host("demo-router", 2)+":7400", host("demo-router", 2)+":7401") {
		t.Fatalf("router config: id %s advertise %s/%s meta %+v", rc.ID, rc.Advertise, rc.PeerAdvertise, rc.Meta)
	}
	if b := rc.Bootstrap; b == nil || len(b.Clusters) != 2 || b.Clusters[1].ID != "c2" || b.Clusters[1].Members[2].ID != 22 ||
		b.Clusters[1].Members[2].Addr != host("demo-c2", 2)+":7400" || b.Ranges[1].Range != ring.Even(2)[1] {
		t.Fatalf("router bootstrap table %+v", rc.Bootstrap)
	}

	var nc cluster.Config
	args = podArgs(t, sets[1], 1)
	if err := execute(newNodeCmd(func(_ context.Context, c cluster.Config) error { nc = c; return nil }), args[1:]...); err != nil {
		t.Fatalf("cleave %s: %v", strings.Join(args, " "), err)
	}
	if nc.NodeID != 11 || nc.ClusterID != "c1" || nc.Listen != "0.0.0.0:7400" || nc.Advertise != host("demo-c1", 1)+":7400" ||
		nc.PeerListen != "0.0.0.0:7401" || nc.PeerAdvertise != host("demo-c1", 1)+":7401" || nc.Range != ring.Even(2)[0] ||
		len(nc.Peers) != 3 || nc.Peers[12] != host("demo-c1", 2)+":7401" || nc.Clients[10] != host("demo-c1", 0)+":7400" ||
		len(nc.GossipSeeds) != 3 || nc.GossipSeeds[0] != host("demo-router", 0)+":7946" || nc.GossipAdvertise != "10.1.0.3:7946" {
		t.Fatalf("node config %+v", nc)
	}
}
