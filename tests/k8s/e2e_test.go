// Package k8s holds the Kubernetes end-to-end test of cleave: the
// manifests, the operator and a CleaveStore on a real API server
// (tests/k8s/kubeenv), with every pod a real cleave process.
package k8s

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/ring"
	cleavev1 "github.com/cleavefs/cleave/operator/apis/cleave/v1alpha1"
	versioned "github.com/cleavefs/cleave/operator/generated/clientset/versioned"
	"github.com/cleavefs/cleave/tests/k8s/kubeenv"
	"github.com/cleavefs/cleave/wire"
)

const (
	ns        = "default"       // the sample's namespace
	store     = "demo"          // the sample's name
	opNS      = "cleave-system" // the operator's namespace
	image     = "cleave:latest" // the image the manifests name
	wait      = 4 * time.Minute // the longest any one step may take
	fileCount = 24              // files written before the scale, one root each
)

// e2e is the deployment under test and what the test saw of it.
type e2e struct {
	t      *testing.T
	env    *kubeenv.Env
	root   string
	cs     versioned.Interface
	seen   *seen
	client *client.Client
}

// TestOperatorEndToEnd installs the operator with `kubectl apply -k
// manifests/default`, creates the sample CleaveStore, and checks on a
// real API server what a user would: the store becomes Ready and serves
// through its client Service; `kubectl scale` to four clusters splits
// with Splitting true during and false after, even though the leading
// operator pod is deleted in the middle, and the data written before is
// still there; a deleted node pod comes back with its volume and catches
// up, with Degraded true meanwhile; a node pod deleted with its volume
// comes back empty under a new raft id, which the operator puts in place
// of the old one (removal, learner, snapshot, promotion), Degraded true
// meanwhile.
// The steps share one deployment and run in order.
func TestOperatorEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("k8s e2e: starts a Kubernetes control plane and a whole cleave deployment")
	}
	if reason := kubeenv.Unavailable(""); reason != "" {
		t.Skip("kubeenv: " + reason)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := buildCleave(t, root)
	env := kubeenv.Start(t, kubeenv.Options{Images: map[string]string{image: bin}})
	cs, err := versioned.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	x := &e2e{t: t, env: env, root: root, cs: cs, seen: watchStore(ctx, cs)}
	defer func() {
		if t.Failed() {
			x.dump()
		}
	}()
	x.install(ctx)
	x.createStore(ctx)
	data := x.writeFiles(ctx)
	x.scaleWithOperatorRestart(ctx, data)
	x.restartNode(ctx, data)
	x.wipeNode(ctx, data)
}

// buildCleave builds cmd/cleave as "cleave", the binary behind the image.
func buildCleave(t *testing.T, root string) string {
	bin := filepath.Join(t.TempDir(), "cleave")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/cleave")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building cleave: %v\n%s", err, out)
	}
	return bin
}

// kubectl runs kubectl and fails the test on an error.
func (x *e2e) kubectl(ctx context.Context, args ...string) string {
	x.t.Helper()
	out, err := x.env.Kubectl(ctx, args...)
	if err != nil {
		x.t.Fatal(err)
	}
	return out
}

// install applies manifests/default and waits for the CRD to be
// Established and the operator's Deployment to be available.
func (x *e2e) install(ctx context.Context) {
	x.t.Log("kubectl apply -k manifests/default")
	x.kubectl(ctx, "apply", "-k", filepath.Join(x.root, "manifests", "default"))
	x.kubectl(ctx, "wait", "--for=condition=Established", "crd/cleavestores.cleave.io", "--timeout=2m")
	x.kubectl(ctx, "-n", opNS, "rollout", "status", "deployment/cleave-operator", "--timeout=4m")
	x.leader(ctx)
}

// leader returns the operator pod that holds the Lease, once one does.
func (x *e2e) leader(ctx context.Context) string {
	x.t.Helper()
	var holder string
	eventually.Holds(x.t, wait, "an operator pod holds the Lease", func() error {
		l, err := x.env.Client.CoordinationV1().Leases(opNS).Get(ctx, "cleave-operator", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			return fmt.Errorf("no holder")
		}
		holder = *l.Spec.HolderIdentity
		_, err = x.env.Client.CoreV1().Pods(opNS).Get(ctx, holder, metav1.GetOptions{})
		return err // the holder is a pod of the Deployment
	})
	return holder
}

// createStore applies the sample and waits for `kubectl get cleavestores`
// to show it Ready with its clusters, then connects through the client
// Service.
func (x *e2e) createStore(ctx context.Context) {
	x.t.Log("kubectl apply -k manifests/samples")
	x.kubectl(ctx, "apply", "-k", filepath.Join(x.root, "manifests", "samples"))
	x.waitTable(ctx, "2")
	addrs, err := x.env.ServiceAddrs(ctx, ns, store, "client")
	if err != nil || len(addrs) == 0 {
		x.t.Fatalf("client Service %s: %v, %v", store, addrs, err)
	}
	x.t.Logf("client Service %s: %v", store, addrs)
	if x.client, err = client.Dial(ctx, addrs, client.WithClientName("k8s-e2e")); err != nil {
		x.t.Fatal(err)
	}
	x.t.Cleanup(func() { x.client.Close() })
}

// waitTable waits until `kubectl get cleavestores` shows the store Ready
// with clusters clusters and Splitting and Degraded false.
func (x *e2e) waitTable(ctx context.Context, clusters string) {
	x.t.Helper()
	eventually.Holds(x.t, wait, "kubectl get cleavestores: "+store+" Ready with "+clusters+" clusters", func() error {
		out, err := x.env.Kubectl(ctx, "get", "cleavestores", "-n", ns)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && f[0] == store {
				if f[1] != clusters || f[2] != "True" {
					return fmt.Errorf("%s", out)
				}
				s, err := x.cs.CleaveV1alpha1().CleaveStores(ns).Get(ctx, store, metav1.GetOptions{})
				if err != nil {
					return err
				}
				for _, c := range []string{cleavev1.ConditionSplitting, cleavev1.ConditionDegraded} {
					if !meta.IsStatusConditionFalse(s.Status.Conditions, c) {
						return fmt.Errorf("%s not false: %+v", c, s.Status.Conditions)
					}
				}
				return nil
			}
		}
		return fmt.Errorf("no row %s in:\n%s", store, out)
	})
}

// put makes p's directory and puts data at p through the client Service.
func (x *e2e) put(ctx context.Context, p string, data []byte) {
	x.t.Helper()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := x.client.MkdirAll(wctx, path.Dir(p)); err != nil {
		x.t.Fatalf("mkdir -p %s through the client Service: %v", path.Dir(p), err)
	}
	if _, err := x.client.Put(wctx, p, data); err != nil {
		x.t.Fatalf("put %s through the client Service: %v", p, err)
	}
}

// writeFiles puts one file in each of fileCount roots through the
// client Service and reads each back.
func (x *e2e) writeFiles(ctx context.Context) map[string][]byte {
	data := map[string][]byte{}
	for i := range fileCount {
		p := fmt.Sprintf("/root%02d/file", i)
		data[p] = fmt.Appendf(nil, "written before the scale: %d", i)
		x.put(ctx, p, data[p])
	}
	x.readAll(ctx, data)
	return data
}

// readAll reads every file of data and compares it.
func (x *e2e) readAll(ctx context.Context, data map[string][]byte) {
	x.t.Helper()
	for p, want := range data {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		got, err := x.client.Get(rctx, p)
		cancel()
		if err != nil || !bytes.Equal(got, want) {
			x.t.Fatalf("get %s = %q, %v; want %q", p, got, err, want)
		}
	}
}

// scaleWithOperatorRestart scales the store to four clusters and deletes
// the leading operator pod once the first split is under way: another
// operator pod takes the Lease and the scale still ends with four clusters.
func (x *e2e) scaleWithOperatorRestart(ctx context.Context, data map[string][]byte) {
	x.seen.reset()
	x.t.Log("kubectl scale cleavestore/demo --replicas=4")
	x.kubectl(ctx, "scale", "cleavestore/"+store, "-n", ns, "--replicas=4")
	eventually.Holds(x.t, wait, "Splitting true after the scale", func() error {
		return eventually.True(x.seen.get().splitting, "not seen yet")
	})
	old := x.leader(ctx)
	x.t.Logf("deleting the leading operator pod %s in the middle of the scale", old)
	x.kubectl(ctx, "delete", "pod", "-n", opNS, old, "--wait=false")
	eventually.Holds(x.t, wait, "another operator pod leads", func() error {
		if l := x.leader(ctx); l == old {
			return fmt.Errorf("%s still holds the Lease", l)
		}
		return nil
	})
	x.waitTable(ctx, "4")
	s, err := x.cs.CleaveV1alpha1().CleaveStores(ns).Get(ctx, store, metav1.GetOptions{})
	if err != nil {
		x.t.Fatal(err)
	}
	if len(s.Status.Clusters) != 4 || len(s.Status.SplitsInProgress) != 0 {
		x.t.Fatalf("status after the scale: clusters %+v, splits in progress %+v", s.Status.Clusters, s.Status.SplitsInProgress)
	}
	x.readAll(ctx, data)
}

// restartNode deletes a node pod: the StatefulSet makes it again with its
// volume, the status says Degraded meanwhile, and the node catches up
// with a write it missed.
func (x *e2e) restartNode(ctx context.Context, data map[string][]byte) {
	const pod = store + "-c1-1"
	x.seen.reset()
	old := x.podUID(ctx, pod)
	x.t.Logf("deleting node pod %s", pod)
	x.kubectl(ctx, "delete", "pod", "-n", ns, pod, "--wait=false")
	x.writeC1(ctx, data, "missed-by-restart")
	x.waitNodeBack(ctx, data, pod, old)
}

// wipeNode deletes a node pod and its volume claim: the StatefulSet makes
// both again, the node starts on an empty volume under a new raft id, the
// operator replaces the old id with it, the status says Degraded
// meanwhile, and the new node holds what its leader applied, a write made
// while it was away included.
func (x *e2e) wipeNode(ctx context.Context, data map[string][]byte) {
	const pod, claim, dead = store + "-c1-2", "data-" + store + "-c1-2", 12
	x.seen.reset()
	old := x.podUID(ctx, pod)
	oldDir, err := x.env.VolumeDir(ctx, ns, claim)
	if err != nil {
		x.t.Fatal(err)
	}
	x.t.Logf("deleting node pod %s and its volume claim %s", pod, claim)
	x.kubectl(ctx, "delete", "pvc", "-n", ns, claim, "--wait=false")
	x.kubectl(ctx, "delete", "pod", "-n", ns, pod, "--wait=false")
	x.writeC1(ctx, data, "missed-by-wipe")
	eventually.Holds(x.t, wait, "pod "+pod+" made again on a new volume", func() error {
		uid := x.podUID(ctx, pod)
		dir, err := x.env.VolumeDir(ctx, ns, claim)
		return eventually.True(uid != "" && uid != old && err == nil && dir != oldDir, "pod uid %q, volume %q (%v)", uid, dir, err)
	})
	var fresh uint64
	eventually.Holds(x.t, wait, "node 12 replaced by the node of the new volume", func() error {
		st, err := x.client.Status(ctx)
		if err != nil {
			return err
		}
		var ids []uint64
		for _, c := range st.Clusters {
			for _, n := range c.Nodes {
				if c.ID == "c1" {
					ids = append(ids, n.ID)
				}
				if strings.HasPrefix(n.Addr, pod+".") {
					fresh = n.ID
				}
			}
		}
		return eventually.True(fresh != 0 && fresh != dead && len(ids) == 3 && !slices.Contains(ids, dead), "c1's nodes %v, the pod's node %d", ids, fresh)
	})
	x.t.Logf("node %d replaced node %d", fresh, dead)
	x.waitTable(ctx, "4")
	if !x.seen.get().degraded {
		x.t.Fatalf("the status never said Degraded while %s was replaced", pod)
	}
	x.waitCaughtUp(ctx, fresh)
	x.readAll(ctx, data)
}

// writeC1 writes a file into cluster c1: in the first root named
// prefix-N that c1's range holds.
func (x *e2e) writeC1(ctx context.Context, data map[string][]byte, prefix string) {
	x.t.Helper()
	st, err := x.client.Status(ctx)
	if err != nil {
		x.t.Fatal(err)
	}
	i := slices.IndexFunc(st.Clusters, func(c client.ClusterStatus) bool { return c.ID == "c1" })
	if i < 0 {
		x.t.Fatalf("no cluster c1 in the status: %+v", st.Clusters)
	}
	r := wire.Range(st.Clusters[i].Range)
	for n := range 10000 {
		root := fmt.Sprintf("%s-%d", prefix, n)
		if r.Contains(ring.Point(root)) {
			p := "/" + root + "/file"
			data[p] = []byte("written to c1 as " + prefix)
			x.put(ctx, p, data[p])
			return
		}
	}
	x.t.Fatalf("no root %s-N in c1's range %v", prefix, r)
}

// waitNodeBack waits until pod is a new pod (not UID old), the status has
// said Degraded, the store is Ready again, node 11 (c1's ordinal 1) has
// applied what its leader had, and every file of data reads back.
func (x *e2e) waitNodeBack(ctx context.Context, data map[string][]byte, pod, old string) {
	x.t.Helper()
	eventually.Holds(x.t, wait, "pod "+pod+" made again", func() error {
		uid := x.podUID(ctx, pod)
		return eventually.True(uid != "" && uid != old, "uid %q", uid)
	})
	x.waitTable(ctx, "4")
	if !x.seen.get().degraded {
		x.t.Fatalf("the status never said Degraded while %s was away", pod)
	}
	x.waitCaughtUp(ctx, 11)
	x.readAll(ctx, data)
}

// waitCaughtUp waits until node id of c1 has applied what c1's leader had
// applied when first asked.
func (x *e2e) waitCaughtUp(ctx context.Context, id uint64) {
	x.t.Helper()
	var target uint64
	eventually.Holds(x.t, wait, fmt.Sprintf("node %d caught up with its leader", id), func() error {
		me, lead, err := x.c1Nodes(ctx, id)
		if err != nil {
			return err
		}
		if target == 0 {
			target = lead.Applied
		}
		return eventually.True(me.Error == "" && me.Applied >= target, "node %d %s applied %d, leader applied %d (%s)", id, me.Role, me.Applied, target, me.Error)
	})
}

// c1Nodes returns node id's status and c1's leader's, as the routers
// report them.
func (x *e2e) c1Nodes(ctx context.Context, id uint64) (me, lead *client.NodeStatus, err error) {
	st, err := x.client.Status(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range st.Clusters {
		for i, n := range c.Nodes {
			if n.ID == id {
				me = &c.Nodes[i]
			}
			if c.ID == "c1" && n.Role == "leader" {
				lead = &c.Nodes[i]
			}
		}
	}
	if me == nil || lead == nil {
		return nil, nil, fmt.Errorf("node %d %+v, c1 leader %+v", id, me, lead)
	}
	return me, lead, nil
}

// podUID returns the UID of pod ns/name, or "" if there is none or it is
// being deleted.
func (x *e2e) podUID(ctx context.Context, name string) string {
	p, err := x.env.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || err == nil && p.DeletionTimestamp != nil {
		return ""
	}
	if err != nil {
		x.t.Fatal(err)
	}
	return string(p.UID)
}

// dump logs what a failure needs: the store, the pods and the events.
func (x *e2e) dump() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"get", "cleavestores", "-A", "-o", "yaml"},
		{"get", "pods,pvc", "-A", "-o", "wide"},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
	} {
		out, err := x.env.Kubectl(ctx, args...)
		x.t.Logf("kubectl %s (%v):\n%s", strings.Join(args, " "), err, out)
	}
	pods, _ := x.env.Client.CoreV1().Pods(opNS).List(ctx, metav1.ListOptions{})
	for _, p := range pods.Items {
		x.t.Logf("---- log of %s ----\n%s", p.Name, lastLines(x.env.PodLog(opNS, p.Name, "operator"), 60))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// seen is what the watch of the store has observed since the last reset.
type seen struct {
	mu        sync.Mutex
	splitting bool // Splitting was true
	degraded  bool // Degraded was true
}

type seenState struct{ splitting, degraded bool }

func (s *seen) reset() {
	s.mu.Lock()
	s.splitting, s.degraded = false, false
	s.mu.Unlock()
}

func (s *seen) get() seenState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return seenState{s.splitting, s.degraded}
}

// watchStore watches the store until ctx is done and records every time
// Splitting or Degraded is true, so a condition that is true only between
// two polls is still seen.
func watchStore(ctx context.Context, cs versioned.Interface) *seen {
	s := &seen{}
	go func() {
		for ctx.Err() == nil {
			w, err := cs.CleaveV1alpha1().CleaveStores(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + store})
			if err != nil {
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
				continue
			}
			for ev := range w.ResultChan() {
				st, ok := ev.Object.(*cleavev1.CleaveStore)
				if !ok {
					continue
				}
				s.mu.Lock()
				s.splitting = s.splitting || meta.IsStatusConditionTrue(st.Status.Conditions, cleavev1.ConditionSplitting)
				s.degraded = s.degraded || meta.IsStatusConditionTrue(st.Status.Conditions, cleavev1.ConditionDegraded)
				s.mu.Unlock()
			}
			w.Stop()
		}
	}()
	return s
}
