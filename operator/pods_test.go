package operator

import (
	"net"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// argValue returns the value of flag name in args ("--flag value" or
// "--flag=value") and whether it is there.
func argValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// TestPodsAdvertiseGossip: every pod binds gossip on all interfaces, which
// the gossip pool refuses without an advertise address, and memberlist
// needs that address to be an IP: each pod advertises its pod IP (the
// downward API's status.podIP) on the gossip port. Without it every
// router and node exits at start ("listens on every interface; set an
// advertise address"), as the Kubernetes e2e found.
func TestPodsAdvertiseGossip(t *testing.T) {
	sets, err := StatefulSets(newStore("demo"), "cleave:test", "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sets {
		c := st.Spec.Template.Spec.Containers[0]
		bind, ok := argValue(c.Args, "--gossip")
		if !ok {
			t.Fatalf("%s: no --gossip in %q", st.Name, c.Args)
		}
		if host, _, _ := net.SplitHostPort(bind); host != "0.0.0.0" {
			continue
		}
		adv, ok := argValue(c.Args, "--gossip-advertise")
		if !ok {
			t.Fatalf("%s: --gossip %s binds every interface and there is no --gossip-advertise in %q", st.Name, bind, c.Args)
		}
		host, port, err := net.SplitHostPort(adv)
		if err != nil || port != "7946" {
			t.Fatalf("%s: --gossip-advertise %q: want $(VAR):7946 (%v)", st.Name, adv, err)
		}
		name, ok := strings.CutPrefix(host, "$(")
		name, closed := strings.CutSuffix(name, ")")
		if !ok || !closed {
			t.Fatalf("%s: --gossip-advertise %q: want the pod IP from an env var", st.Name, adv)
		}
		i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
		if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil || c.Env[i].ValueFrom.FieldRef.FieldPath != "status.podIP" {
			t.Fatalf("%s: --gossip-advertise %q: env %s is not the downward API's status.podIP (%+v)", st.Name, adv, name, c.Env)
		}
	}
}

// TestPodsReportWhyTheyExited: a node that refuses to start (its volume
// was replaced and its leader knows its old id, or any other start error)
// exits with the reason as its last output line; every container keeps
// the tail of its output as its termination message, so `kubectl describe
// pod` and the pod's status say why it is restarting.
func TestPodsReportWhyTheyExited(t *testing.T) {
	store := newStore("demo")
	store.Spec.TLSSecretName = "demo-ca"
	sets, err := StatefulSets(store, "cleave:test", "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sets {
		spec := st.Spec.Template.Spec
		for _, c := range append(spec.InitContainers, spec.Containers...) {
			if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
				t.Errorf("%s: container %s: termination message policy %q, want %q", st.Name, c.Name, c.TerminationMessagePolicy, corev1.TerminationMessageFallbackToLogsOnError)
			}
		}
	}
}

// TestNodePodsRejoinWithTheirCA: node pods take a new raft id when their
// volume was lost (--rejoin-wiped), and with a TLS secret they may issue
// the peer certificate of that id from the mounted CA; routers do neither.
func TestNodePodsRejoinWithTheirCA(t *testing.T) {
	store := newStore("demo")
	store.Spec.TLSSecretName = "demo-ca"
	sets, err := StatefulSets(store, "cleave:test", "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sets {
		args := strings.Join(st.Spec.Template.Spec.Containers[0].Args, " ")
		node := st.Name != routerName(store)
		if node != strings.Contains(args, "--rejoin-wiped") || node != strings.Contains(args, "--rejoin-ca "+caDir) {
			t.Errorf("%s: args %s", st.Name, args)
		}
	}
}
