package operator

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kubeinformers "k8s.io/client-go/informers"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/cleavefs/cleave/client"
	cleavev1 "github.com/cleavefs/cleave/operator/apis/cleave/v1alpha1"
	"github.com/cleavefs/cleave/operator/generated/clientset/versioned/fake"
	cleaveinformers "github.com/cleavefs/cleave/operator/generated/informers/externalversions"
)

// The fixture follows sample-controller's: fake clientsets hold the
// "cluster", and each sync runs a fresh controller whose informers list
// what the clientsets hold — which is also what an operator restarted
// between two syncs sees. The routers are faked behind Admin.

const ns = "ns"

// fakeAdmin stands in for a store's routers: a canned status answer, and
// the splits asked for.
type fakeAdmin struct {
	mu       sync.Mutex
	status   *client.Status // nil: the routers cannot be reached
	splits   []client.SplitSpec
	addrs    []string
	replaced []string // "cluster dead->id addr" of each ReplaceNode
	// replaceErr, if set, is ReplaceNode's answer; nil: the replacement
	// is done, and the node no longer reports it replaces another.
	replaceErr error
}

func (a *fakeAdmin) dial(_ context.Context, addrs []string, _ Credentials) (Admin, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.addrs = addrs
	if a.status == nil {
		return nil, fmt.Errorf("connection refused")
	}
	return a, nil
}

func (a *fakeAdmin) Status(context.Context) (*client.Status, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := *a.status
	st.Clusters, st.Splits = slices.Clone(st.Clusters), slices.Clone(st.Splits)
	return &st, nil
}

func (a *fakeAdmin) Split(_ context.Context, spec client.SplitSpec) (*client.SplitStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.splits = append(a.splits, spec)
	return &client.SplitStatus{ID: uint64(len(a.splits)), Cluster: spec.Cluster, NewCluster: spec.NewCluster, Phase: client.SplitPlanned}, nil
}

func (a *fakeAdmin) ReplaceNode(_ context.Context, cluster string, dead, id uint64, addr string, _ func(string)) (*client.NodeStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.replaced = append(a.replaced, fmt.Sprintf("%s %d->%d %s", cluster, dead, id, addr))
	if a.replaceErr != nil {
		return nil, a.replaceErr
	}
	for i := range a.status.Clusters {
		nodes := a.status.Clusters[i].Nodes
		for j := range nodes {
			if nodes[j].ID == id {
				nodes[j].Replaces = 0
			}
		}
	}
	return &client.NodeStatus{ID: id, Cluster: cluster}, nil
}

func (a *fakeAdmin) Close() error { return nil }

func (a *fakeAdmin) set(st *client.Status) {
	a.mu.Lock()
	a.status = st
	a.mu.Unlock()
}

type fixture struct {
	t      *testing.T
	kube   *k8sfake.Clientset
	cleave *fake.Clientset
	admin  *fakeAdmin
	events []string // of the last sync
}

func newFixture(t *testing.T, objects ...runtime.Object) *fixture {
	var stores, kube []runtime.Object
	for _, o := range objects {
		if _, ok := o.(*cleavev1.CleaveStore); ok {
			stores = append(stores, o)
		} else {
			kube = append(kube, o)
		}
	}
	return &fixture{t: t, kube: k8sfake.NewClientset(kube...), cleave: fake.NewSimpleClientset(stores...), admin: &fakeAdmin{}}
}

func newStore(name string) *cleavev1.CleaveStore {
	return &cleavev1.CleaveStore{
		TypeMeta:   metav1.TypeMeta{APIVersion: cleavev1.SchemeGroupVersion.String(), Kind: "CleaveStore"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID(name + "-uid"), Generation: 1},
		Spec:       cleavev1.CleaveStoreSpec{Routers: 3, ReplicasPerCluster: 3, Clusters: 2, Image: "cleave:test"},
	}
}

// sync runs one sync of store name with a fresh controller and returns
// the writes it made to each clientset (reads left out).
func (f *fixture) sync(name string) (kubeWrites, cleaveWrites []core.Action) {
	f.t.Helper()
	kw, err := f.trySync(name)
	if err != nil {
		f.t.Fatalf("sync: %v", err)
	}
	return kw, writes(f.cleave.Actions())
}

// trySync is sync returning the sync's error; the cleave clientset's
// writes are left in its Actions.
func (f *fixture) trySync(name string) ([]core.Action, error) {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kubeInf := kubeinformers.NewSharedInformerFactoryWithOptions(f.kube, 0, kubeinformers.WithNamespace(ns))
	cleaveInf := cleaveinformers.NewSharedInformerFactoryWithOptions(f.cleave, 0, cleaveinformers.WithNamespace(ns))
	rec := record.NewFakeRecorder(100)
	cfg := DefaultConfig()
	cfg.Dial, cfg.Logger = f.admin.dial, slog.New(slog.DiscardHandler)
	c, err := NewController(cfg, f.kube, f.cleave, cleaveInf.Cleave().V1alpha1().CleaveStores(),
		kubeInf.Apps().V1().StatefulSets(), kubeInf.Core().V1().Services(), kubeInf.Policy().V1().PodDisruptionBudgets(), rec)
	if err != nil {
		f.t.Fatal(err)
	}
	kubeInf.Start(ctx.Done())
	cleaveInf.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		f.t.Fatal("caches did not sync")
	}
	f.kube.ClearActions()
	f.cleave.ClearActions()
	_, err = c.syncHandler(ctx, cache.ObjectName{Namespace: ns, Name: name})
	f.events = nil
	for len(rec.Events) > 0 {
		f.events = append(f.events, <-rec.Events)
	}
	return writes(f.kube.Actions()), err
}

// writes keeps the actions that change something.
func writes(actions []core.Action) []core.Action {
	var out []core.Action
	for _, a := range actions {
		if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" {
			out = append(out, a)
		}
	}
	return out
}

// describe writes actions as "verb resource name" lines, sorted.
func describe(actions []core.Action) []string {
	var out []string
	for _, a := range actions {
		name := ""
		switch a := a.(type) {
		case core.CreateAction:
			name = a.GetObject().(metav1.Object).GetName()
		case core.UpdateAction:
			name = a.GetObject().(metav1.Object).GetName()
		case core.DeleteAction:
			name = a.GetName()
		case core.DeleteCollectionAction:
			name = a.GetListRestrictions().Labels.String()
		}
		verb := a.GetVerb()
		if a.GetSubresource() != "" {
			verb += "/" + a.GetSubresource()
		}
		out = append(out, verb+" "+a.GetResource().Resource+" "+name)
	}
	slices.Sort(out)
	return out
}

func wantActions(t *testing.T, what string, got []core.Action, want ...string) {
	t.Helper()
	slices.Sort(want)
	if g := describe(got); !slices.Equal(g, want) {
		t.Fatalf("%s:\ngot  %q\nwant %q", what, g, want)
	}
}

// store reads the store back from the clientset.
func (f *fixture) store(name string) *cleavev1.CleaveStore {
	f.t.Helper()
	s, err := f.cleave.CleaveV1alpha1().CleaveStores(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// edit changes store name's spec with change and raises its generation,
// as the API server does for a spec change.
func (f *fixture) edit(name string, change func(*cleavev1.CleaveStore)) {
	f.t.Helper()
	s := f.store(name)
	change(s)
	s.Generation++
	if _, err := f.cleave.CleaveV1alpha1().CleaveStores(ns).Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) statefulSet(name string) *appsv1.StatefulSet {
	f.t.Helper()
	st, err := f.kube.AppsV1().StatefulSets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// ready marks every pod of the StatefulSets named ready, as the
// StatefulSet controller would once the pods' probes pass.
func (f *fixture) ready(names ...string) {
	f.t.Helper()
	for _, name := range names {
		st := f.statefulSet(name)
		st.Status.Replicas, st.Status.ReadyReplicas = *st.Spec.Replicas, *st.Spec.Replicas
		if _, err := f.kube.AppsV1().StatefulSets(ns).UpdateStatus(context.Background(), st, metav1.UpdateOptions{}); err != nil {
			f.t.Fatal(err)
		}
	}
}

// healthy is the routers' answer for a store whose clusters own ranges.
func healthy(version uint64, clusters map[string]client.Range) *client.Status {
	st := &client.Status{Version: version}
	for id, r := range clusters {
		num := clusterNum(id)
		c := client.ClusterStatus{ID: id, Range: r, Leader: fmt.Sprintf("leader-of-%s:7400", id)}
		for i := range 3 {
			c.Nodes = append(c.Nodes, client.NodeStatus{ID: nodeID(num, i), Cluster: id, Role: "follower", Bytes: 1000})
		}
		st.Clusters = append(st.Clusters, c)
	}
	slices.SortFunc(st.Clusters, func(a, b client.ClusterStatus) int { return strings.Compare(a.ID, b.ID) })
	return st
}

var (
	half  = uint64(1) << 63
	lower = client.Range{Start: 0, End: half}
	upper = client.Range{Start: half, End: 0}
)

func condition(t *testing.T, s *cleavev1.CleaveStore, typ string) metav1.Condition {
	t.Helper()
	c := meta.FindStatusCondition(s.Status.Conditions, typ)
	if c == nil {
		t.Fatalf("no %s condition in %+v", typ, s.Status.Conditions)
	}
	return *c
}

func wantCondition(t *testing.T, s *cleavev1.CleaveStore, typ string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	if c := condition(t, s, typ); c.Status != status || c.Reason != reason || c.ObservedGeneration != s.Generation {
		t.Fatalf("condition %s = %s/%s (generation %d), want %s/%s (generation %d): %s", typ, c.Status, c.Reason, c.ObservedGeneration, status, reason, s.Generation, c.Message)
	}
}

// everything is what a new store of 2 clusters has: per StatefulSet a
// headless Service and a PDB, and the client Service.
var everything = []string{
	"create services demo-router", "create services demo", "create poddisruptionbudgets demo-router", "create statefulsets demo-router",
	"create services demo-c1", "create poddisruptionbudgets demo-c1", "create statefulsets demo-c1",
	"create services demo-c2", "create poddisruptionbudgets demo-c2", "create statefulsets demo-c2",
}

// TestCreate: a new store gets every object, each owned by the store, with
// the flags that make the pods find each other; the status says the
// routers are not up yet, and no router is dialled before one is ready.
func TestCreate(t *testing.T) {
	f := newFixture(t, newStore("demo"))
	kw, cw := f.sync("demo")
	wantActions(t, "kube writes", kw, everything...)
	wantActions(t, "cleave writes", cw, "update/status cleavestores demo")
	if f.admin.addrs != nil {
		t.Fatalf("dialled routers %v before any was ready", f.admin.addrs)
	}
	for _, a := range kw {
		o := a.(core.CreateAction).GetObject().(metav1.Object)
		if ref := metav1.GetControllerOf(o); ref == nil || ref.UID != "demo-uid" || ref.Kind != "CleaveStore" {
			t.Fatalf("%s has controller %+v, want the store", o.GetName(), ref)
		}
	}
	s := f.store("demo")
	wantCondition(t, s, cleavev1.ConditionReady, metav1.ConditionFalse, "RoutersUnavailable")
	if s.Status.Selector != "cleave.io/store=demo" || s.Status.ObservedGeneration != 1 {
		t.Fatalf("status selector %q generation %d", s.Status.Selector, s.Status.ObservedGeneration)
	}

	host := func(set string, i int) string { return fmt.Sprintf("%s-%d.%s.ns.svc.cluster.local", set, i, set) }
	member := func(set string, id, i int) string {
		return fmt.Sprintf("%d@%s:7400/%s:7401", id, host(set, i), host(set, i))
	}
	args := strings.Join(f.statefulSet("demo-router").Spec.Template.Spec.Containers[0].Args, " ")
	for _, want := range []string{
		"router --id $(POD_NAME)", "--advertise $(POD_HOST):7400", "--raft-id $(RAFT_ID)",
		"--peers 10=" + host("demo-router", 0) + ":7400/" + host("demo-router", 0) + ":7401,11=",
		"--cluster c1=" + member("demo-c1", 10, 0) + "," + member("demo-c1", 11, 1) + "," + member("demo-c1", 12, 2),
		"--cluster c2=" + member("demo-c2", 20, 0), "--insecure-peer",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("router args lack %q:\n%s", want, args)
		}
	}
	c2 := f.statefulSet("demo-c2")
	args = strings.Join(c2.Spec.Template.Spec.Containers[0].Args, " ")
	for _, want := range []string{"node --id $(NODE_ID) --cluster c2", "--range 9223372036854775808-18446744073709551616", "--peers 20="} {
		if !strings.Contains(args, want) {
			t.Errorf("c2 args lack %q:\n%s", want, args)
		}
	}
	if strings.Contains(args, "--join") || *c2.Spec.Replicas != 3 || c2.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("c2: replicas %d, policy %s, args %s", *c2.Spec.Replicas, c2.Spec.PodManagementPolicy, args)
	}
	env := map[string]string{}
	for _, e := range c2.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["NODE_ID"] != "2$(POD_INDEX)" || env["POD_HOST"] != "$(POD_NAME).demo-c2.ns.svc.cluster.local" {
		t.Errorf("c2 env %v", env)
	}
}

// converge syncs a new store, marks every pod ready, answers for the
// routers with two healthy clusters, and syncs until a sync writes
// nothing (at most 3 syncs).
func converge(t *testing.T, f *fixture) {
	t.Helper()
	f.sync("demo")
	f.ready("demo-router", "demo-c1", "demo-c2")
	f.admin.set(healthy(1, map[string]client.Range{"c1": lower, "c2": upper}))
	for range 3 {
		kw, cw := f.sync("demo")
		if len(kw)+len(cw) == 0 {
			return
		}
	}
	t.Fatal("the store did not settle in 3 syncs")
}

// TestNoOp: once a store is as its spec says and its status is current, a
// sync writes nothing at all; the status says Ready.
func TestNoOp(t *testing.T) {
	f := newFixture(t, newStore("demo"))
	converge(t, f)
	kw, cw := f.sync("demo")
	wantActions(t, "kube writes", kw)
	wantActions(t, "cleave writes", cw)
	s := f.store("demo")
	wantCondition(t, s, cleavev1.ConditionReady, metav1.ConditionTrue, "Ready")
	wantCondition(t, s, cleavev1.ConditionSplitting, metav1.ConditionFalse, "NoSplit")
	wantCondition(t, s, cleavev1.ConditionDegraded, metav1.ConditionFalse, "AllReplicasReady")
	if s.Status.Replicas != 2 || s.Status.RoutingVersion != 1 || len(s.Status.Clusters) != 2 || s.Status.Clusters[0].Bytes != 1000 || s.Status.Clusters[1].ReadyReplicas != 3 {
		t.Fatalf("status %+v", s.Status)
	}
	if len(f.admin.splits) != 0 {
		t.Fatalf("splits requested: %+v", f.admin.splits)
	}
}

// TestReplaceWipedNode: a node that lost its volume and restarted under a
// new id (it names the id it replaces) is replaced through the routers,
// with the store Degraded and events saying so until that is done; a
// replacement that fails is tried again at the next sync.
func TestReplaceWipedNode(t *testing.T) {
	f := newFixture(t, newStore("demo"))
	converge(t, f)
	if args := strings.Join(f.statefulSet("demo-c1").Spec.Template.Spec.Containers[0].Args, " "); !strings.Contains(args, "--rejoin-wiped") {
		t.Fatalf("node pods do not rejoin when wiped: %s", args)
	}
	st := healthy(1, map[string]client.Range{"c1": lower, "c2": upper})
	wiped := &st.Clusters[0].Nodes[1] // node 11 of c1, its pod back on an empty volume
	wiped.ID, wiped.Replaces, wiped.Role = 70123, 11, "follower"
	wiped.Addr, wiped.PeerAddr = "demo-c1-1.demo-c1.ns.svc.cluster.local:7400", "demo-c1-1.demo-c1.ns.svc.cluster.local:7401"
	f.admin.set(st)
	f.admin.replaceErr = fmt.Errorf("promote: node 70123 has not caught up yet")

	kw, _ := f.sync("demo")
	wantActions(t, "kube writes", kw)
	want := "c1 11->70123 demo-c1-1.demo-c1.ns.svc.cluster.local:7400/demo-c1-1.demo-c1.ns.svc.cluster.local:7401"
	if !slices.Equal(f.admin.replaced, []string{want}) {
		t.Fatalf("replacements asked %q, want %q", f.admin.replaced, want)
	}
	s := f.store("demo")
	wantCondition(t, s, cleavev1.ConditionDegraded, metav1.ConditionTrue, "ReplicasUnavailable")
	if c := condition(t, s, cleavev1.ConditionDegraded); !strings.Contains(c.Message, "node 11 of c1 lost its volume; node 70123 is replacing it (promote: node 70123 has not caught up yet)") {
		t.Fatalf("Degraded message %q", c.Message)
	}
	if !slices.ContainsFunc(f.events, func(e string) bool { return strings.Contains(e, ReasonNodeReplacing) }) {
		t.Fatalf("no %s event: %q", ReasonNodeReplacing, f.events)
	}

	f.admin.replaceErr = nil
	f.sync("demo")
	if len(f.admin.replaced) != 2 || f.admin.replaced[1] != want {
		t.Fatalf("replacements asked %q, want %q twice", f.admin.replaced, want)
	}
	if !slices.ContainsFunc(f.events, func(e string) bool { return strings.Contains(e, ReasonNodeReplaced) }) {
		t.Fatalf("no %s event: %q", ReasonNodeReplaced, f.events)
	}
	f.sync("demo")
	if len(f.admin.replaced) != 2 {
		t.Fatalf("replacement asked again once done: %q", f.admin.replaced)
	}
	wantCondition(t, f.store("demo"), cleavev1.ConditionDegraded, metav1.ConditionFalse, "AllReplicasReady")
}

// TestUpdate: a changed image rolls every StatefulSet to it and touches
// nothing else; a changed router count is reported, not applied.
func TestUpdate(t *testing.T) {
	f := newFixture(t, newStore("demo"))
	converge(t, f)
	f.edit("demo", func(s *cleavev1.CleaveStore) { s.Spec.Image, s.Spec.Routers = "cleave:v2", 5 })
	kw, cw := f.sync("demo")
	wantActions(t, "kube writes", kw, "update statefulsets demo-router", "update statefulsets demo-c1", "update statefulsets demo-c2")
	wantActions(t, "cleave writes", cw, "update/status cleavestores demo") // observedGeneration 2
	for _, name := range []string{"demo-router", "demo-c1", "demo-c2"} {
		st := f.statefulSet(name)
		if img := st.Spec.Template.Spec.Containers[0].Image; img != "cleave:v2" {
			t.Errorf("%s image %s", name, img)
		}
		if *st.Spec.Replicas != 3 {
			t.Errorf("%s replicas %d, want 3 (fixed at creation)", name, *st.Spec.Replicas)
		}
	}
	if !slices.ContainsFunc(f.events, func(e string) bool {
		return strings.Contains(e, ReasonSpecNotApplied) && strings.Contains(e, "spec.routers 5")
	}) {
		t.Fatalf("no SpecNotApplied event for spec.routers: %q", f.events)
	}
	if s := f.store("demo"); s.Status.ObservedGeneration != 2 {
		t.Fatalf("observedGeneration %d", s.Status.ObservedGeneration)
	}
}

// TestScale: raising clusters 2→3 creates c3's StatefulSet split off the
// widest cluster, asks the routers to split only once all of c3's pods
// are ready, asks once, and reports the split in the conditions until the
// routing table gives c3 its range. Each sync is a fresh controller, so
// this is also an operator restarted at every step of the scale.
func TestScale(t *testing.T) {
	f := newFixture(t, newStore("demo"))
	converge(t, f)
	f.edit("demo", func(s *cleavev1.CleaveStore) { s.Spec.Clusters = 3 })

	kw, _ := f.sync("demo")
	wantActions(t, "kube writes", kw, "create services demo-c3", "create poddisruptionbudgets demo-c3", "create statefulsets demo-c3")
	c3 := f.statefulSet("demo-c3")
	args := strings.Join(c3.Spec.Template.Spec.Containers[0].Args, " ")
	if c3.Annotations[AnnotationSplitFrom] != "c1" || !strings.Contains(args, "--join") || strings.Contains(args, "--range") ||
		!strings.Contains(args, "--peers 10=") || !strings.Contains(args, ",30=") {
		t.Fatalf("c3: annotations %v, args %s", c3.Annotations, args)
	}
	if !slices.ContainsFunc(f.events, func(e string) bool { return strings.Contains(e, ReasonSplitPlanned) }) {
		t.Fatalf("no SplitPlanned event: %q", f.events)
	}
	wantCondition(t, f.store("demo"), cleavev1.ConditionSplitting, metav1.ConditionTrue, "SplitInProgress")
	wantCondition(t, f.store("demo"), cleavev1.ConditionReady, metav1.ConditionFalse, "Splitting")

	// c3's pods are not ready: no split yet, and nothing planned twice.
	kw, _ = f.sync("demo")
	wantActions(t, "kube writes while c3 starts", kw)
	if len(f.admin.splits) != 0 {
		t.Fatalf("split requested before c3's pods were ready: %+v", f.admin.splits)
	}
	if c := condition(t, f.store("demo"), cleavev1.ConditionSplitting); !strings.Contains(c.Message, "c3 has 0 of 3 pods ready") {
		t.Fatalf("Splitting message %q", c.Message)
	}

	f.ready("demo-c3")
	f.sync("demo")
	if len(f.admin.splits) != 1 {
		t.Fatalf("splits requested: %+v", f.admin.splits)
	}
	sp := f.admin.splits[0]
	ids := []uint64{}
	for _, m := range sp.Nodes {
		ids = append(ids, m.ID)
	}
	if sp.Cluster != "c1" || sp.NewCluster != "c3" || !slices.Equal(ids, []uint64{30, 31, 32}) ||
		sp.Nodes[0].Addr != "demo-c3-0.demo-c3.ns.svc.cluster.local:7400" || sp.Nodes[0].PeerAddr != "demo-c3-0.demo-c3.ns.svc.cluster.local:7401" {
		t.Fatalf("split spec %+v", sp)
	}

	// The meta group has recorded it: not asked again while it runs.
	running := healthy(1, map[string]client.Range{"c1": lower, "c2": upper})
	running.Splits = []client.SplitStatus{{ID: 1, Cluster: "c1", NewCluster: "c3", Phase: client.SplitCaughtUp}}
	f.admin.set(running)
	kw, _ = f.sync("demo")
	wantActions(t, "kube writes while splitting", kw)
	if len(f.admin.splits) != 1 {
		t.Fatalf("split asked again: %+v", f.admin.splits)
	}
	st := f.store("demo")
	if c := condition(t, st, cleavev1.ConditionSplitting); c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "caught-up") {
		t.Fatalf("Splitting %+v", c)
	}
	if len(st.Status.SplitsInProgress) != 1 || st.Status.SplitsInProgress[0].Phase != "caught-up" {
		t.Fatalf("splitsInProgress %+v", st.Status.SplitsInProgress)
	}

	// Done: c3 owns the upper half of c1's range.
	quarter := half / 2
	done := healthy(2, map[string]client.Range{"c1": {Start: 0, End: quarter}, "c2": upper, "c3": {Start: quarter, End: half}})
	done.Splits = []client.SplitStatus{{ID: 1, Cluster: "c1", NewCluster: "c3", Phase: client.SplitCleaned}}
	f.admin.set(done)
	f.sync("demo")
	kw, cw := f.sync("demo")
	wantActions(t, "writes once scaled", append(kw, cw...))
	st = f.store("demo")
	wantCondition(t, st, cleavev1.ConditionSplitting, metav1.ConditionFalse, "NoSplit")
	wantCondition(t, st, cleavev1.ConditionReady, metav1.ConditionTrue, "Ready")
	if st.Status.Replicas != 3 || st.Status.RoutingVersion != 2 || len(st.Status.SplitsInProgress) != 0 {
		t.Fatalf("status %+v", st.Status)
	}
	if len(f.admin.splits) != 1 {
		t.Fatalf("splits requested: %+v", f.admin.splits)
	}
}

// TestSplitAbandoned: a split the routers abandon has its cluster's
// StatefulSet, Service, PDB and volumes deleted; the next sync plans a
// new cluster under a new id (an abandoned id is not reused).
func TestSplitAbandoned(t *testing.T) {
	f := newFixture(t, newStore("demo"))
	converge(t, f)
	f.edit("demo", func(s *cleavev1.CleaveStore) { s.Spec.Clusters = 3 })
	f.sync("demo")
	gone := healthy(1, map[string]client.Range{"c1": lower, "c2": upper})
	gone.Splits = []client.SplitStatus{{ID: 1, Cluster: "c1", NewCluster: "c3", Phase: client.SplitAbandoned}}
	f.admin.set(gone)
	kw, _ := f.sync("demo")
	wantActions(t, "kube writes", kw, "delete statefulsets demo-c3", "delete services demo-c3", "delete poddisruptionbudgets demo-c3",
		"delete-collection persistentvolumeclaims app.kubernetes.io/component=node,cleave.io/cluster=c3,cleave.io/store=demo")
	kw, _ = f.sync("demo")
	wantActions(t, "kube writes", kw, "create services demo-c4", "create poddisruptionbudgets demo-c4", "create statefulsets demo-c4")
}

// TestDelete: every object a store has is owned by it (so the garbage
// collector deletes them with it), and a sync of a store that is gone
// writes nothing.
func TestDelete(t *testing.T) {
	f := newFixture(t, newStore("demo"))
	converge(t, f)
	if err := f.cleave.CleaveV1alpha1().CleaveStores(ns).Delete(context.Background(), "demo", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	kw, cw := f.sync("demo")
	wantActions(t, "writes after delete", append(kw, cw...))
	ctx := context.Background()
	var objs []metav1.Object
	sets, _ := f.kube.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
	svcs, _ := f.kube.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	pdbs, _ := f.kube.PolicyV1().PodDisruptionBudgets(ns).List(ctx, metav1.ListOptions{})
	for i := range sets.Items {
		objs = append(objs, &sets.Items[i])
	}
	for i := range svcs.Items {
		objs = append(objs, &svcs.Items[i])
	}
	for i := range pdbs.Items {
		objs = append(objs, &pdbs.Items[i])
	}
	if len(objs) != 10 {
		t.Fatalf("%d objects, want 10", len(objs))
	}
	for _, o := range objs {
		ref := metav1.GetControllerOf(o)
		if ref == nil || ref.UID != "demo-uid" || ref.Name != "demo" || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
			t.Errorf("%s: controller %+v, want the store blocking owner deletion", o.GetName(), ref)
		}
	}
}

// TestNotOurs: an object of a store's name that the store does not own is
// left alone, and the sync fails with an event naming it.
func TestNotOurs(t *testing.T) {
	other := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: ns}}
	f := newFixture(t, newStore("demo"), other)
	kube, err := f.trySync("demo")
	if err == nil || !strings.Contains(err.Error(), "Service demo already exists and is not managed by CleaveStore demo") {
		t.Fatalf("sync error %v", err)
	}
	for _, d := range describe(kube) {
		if strings.HasSuffix(d, "services demo") {
			t.Fatalf("wrote the foreign Service: %s", d)
		}
	}
	if !slices.ContainsFunc(f.events, func(e string) bool { return strings.Contains(e, ReasonResourceExists) }) {
		t.Fatalf("events %q", f.events)
	}
}
