package kubeenv

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// clusterDomain is the DNS domain of the names in the pods' hosts files.
const clusterDomain = "cluster.local"

// markHosts has every pod's hosts file rewritten soon.
func (k *kubelet) markHosts() {
	select {
	case k.hostsDirty <- struct{}{}:
	default:
	}
}

// hostsLoop rewrites the hosts files when pods or Services change, and
// every few seconds to catch readiness changes.
func (k *kubelet) hostsLoop() {
	defer close(k.hostsDone)
	for {
		select {
		case <-k.ctx.Done():
			return
		case <-k.hostsDirty:
		case <-time.After(2 * time.Second):
		}
		k.writeHosts()
	}
}

// writeHosts gives every running pod a hosts file that names, as cluster
// DNS would: every pod with a hostname and a subdomain (a StatefulSet's
// pods under its headless Service) as <hostname>.<subdomain>.<ns>.svc,
// whether ready or not, as a Service with publishNotReadyAddresses
// publishes them; and every Service as <service>.<ns>.svc with the IPs
// of its selected pods that are ready (all of them with
// publishNotReadyAddresses). ClusterIPs are not routed here, so a Service
// name resolves to pod IPs, as a headless Service's does.
func (k *kubelet) writeHosts() {
	runs := k.runs()
	type entry struct {
		run *podRun
		pod *corev1.Pod
		ip  string
	}
	var entries []entry
	for _, r := range runs {
		ip := r.ip()
		pod, err := k.pods.Pods(r.pod.Namespace).Get(r.pod.Name)
		if ip == "" || err != nil || pod.UID != r.pod.UID {
			continue
		}
		entries = append(entries, entry{r, pod, ip})
	}
	svcs, _ := k.svcs.List(labels.Everything())
	for _, viewer := range entries {
		var lines []string
		add := func(ip string, names ...string) { lines = append(lines, ip+"\t"+strings.Join(names, " ")) }
		add("127.0.0.1", "localhost")
		add(viewer.ip, viewer.run.hostname())
		for _, o := range entries {
			if h, s := o.pod.Spec.Hostname, o.pod.Spec.Subdomain; h != "" && s != "" {
				add(o.ip, dnsNames(h+"."+s, o.pod.Namespace, viewer.pod.Namespace)...)
			}
		}
		for _, svc := range svcs {
			if len(svc.Spec.Selector) == 0 {
				continue
			}
			sel := labels.SelectorFromSet(svc.Spec.Selector)
			for _, o := range entries {
				if o.pod.Namespace == svc.Namespace && sel.Matches(labels.Set(o.pod.Labels)) &&
					(svc.Spec.PublishNotReadyAddresses || o.run.ready()) {
					add(o.ip, dnsNames(svc.Name, svc.Namespace, viewer.pod.Namespace)...)
				}
			}
		}
		err := viewer.run.net.writeHosts(strings.Join(lines, "\n") + "\n")
		if err != nil && !errors.Is(err, fs.ErrNotExist) && k.ctx.Err() == nil { // gone: the pod stopped
			k.e.t.Logf("kubeenv: hosts file of pod %s: %v", viewer.run.name(), err)
		}
	}
}

// dnsNames are the names of name in namespace ns as seen from namespace
// from: the fully qualified one, <name>.<ns>.svc, <name>.<ns>, and plain
// name in its own namespace.
func dnsNames(name, ns, from string) []string {
	out := []string{name + "." + ns + ".svc." + clusterDomain, name + "." + ns + ".svc", name + "." + ns}
	if ns == from {
		out = append(out, name)
	}
	return out
}

// ServiceAddrs returns host:port addresses, reachable from the test
// process, of the ready pods behind Service ns/name's port port (its
// number, or its name when not a number), as the Service's ClusterIP
// would reach them: the pod IP and the target port. It stands in for
// kube-proxy, which this environment does not run.
func (e *Env) ServiceAddrs(ctx context.Context, ns, name, port string) ([]string, error) {
	svc, err := e.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var sp *corev1.ServicePort
	for i, p := range svc.Spec.Ports {
		if p.Name == port || strconv.Itoa(int(p.Port)) == port {
			sp = &svc.Spec.Ports[i]
		}
	}
	if sp == nil {
		return nil, fmt.Errorf("service %s/%s has no port %q", ns, name, port)
	}
	target := sp.TargetPort
	if target.Type == intstr.Int && target.IntVal == 0 {
		target = intstr.FromInt32(sp.Port)
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	var addrs []string
	for _, r := range e.kubelet.runs() {
		ip := r.ip()
		if r.pod.Namespace != ns || ip == "" || !r.ready() || len(svc.Spec.Selector) == 0 || !sel.Matches(labels.Set(r.pod.Labels)) {
			continue
		}
		p, err := r.port(target)
		if err != nil {
			return nil, fmt.Errorf("service %s/%s: pod %s: %w", ns, name, r.pod.Name, err)
		}
		addrs = append(addrs, net.JoinHostPort(ip, strconv.Itoa(p)))
	}
	sort.Strings(addrs)
	return addrs, nil
}

// Pids returns the process ids of the containers running now, by
// "<namespace>/<pod>/<container>".
func (e *Env) Pids() map[string]int {
	out := map[string]int{}
	for _, r := range e.kubelet.runs() {
		for _, c := range r.ctrs {
			if pid := c.pidNow(); pid != 0 {
				out[r.name()+"/"+c.spec.Name] = pid
			}
		}
	}
	return out
}

// PodLog returns what container of pod ns/name has written so far, over
// all the pods of that name (the file is per name, appended across
// restarts and re-creations), or "" if nothing yet.
func (e *Env) PodLog(ns, name, container string) string {
	b, _ := os.ReadFile(filepath.Join(e.Dir, "logs", fmt.Sprintf("pod-%s-%s-%s.log", ns, name, container)))
	return string(b)
}
