package operator

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cleavefs/cleave/client"
	cleavev1 "github.com/cleavefs/cleave/operator/apis/cleave/v1alpha1"
	"github.com/cleavefs/cleave/wire"
)

// TestInvalidSpec: a spec the CRD's validation would refuse (a store
// written before it, or with validation off) is not acted on: nothing is
// created, an event and the Ready condition name the field. More than 9
// nodes per cluster would give two nodes one Raft id (c1's ordinal 10 is
// "110", c11's ordinal 0 too).
func TestInvalidSpec(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*cleavev1.CleaveStore)
		want string
	}{
		{"replicas", func(s *cleavev1.CleaveStore) { s.Spec.ReplicasPerCluster = 10 }, "spec.replicasPerCluster 10: must be 1 to 9"},
		{"routers", func(s *cleavev1.CleaveStore) { s.Spec.Routers = -1 }, "spec.routers -1: must be 1 to 9"},
		{"clusters", func(s *cleavev1.CleaveStore) { s.Spec.Clusters = -2 }, "spec.clusters -2: must be at least 1"},
		{"storage", func(s *cleavev1.CleaveStore) { q := resource.MustParse("0"); s.Spec.Storage.Size = &q }, "spec.storage.size 0: must be positive"},
		{"pull policy", func(s *cleavev1.CleaveStore) { s.Spec.ImagePullPolicy = "Sometimes" }, `spec.imagePullPolicy "Sometimes": want Always, IfNotPresent or Never`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore("demo")
			tc.edit(s)
			f := newFixture(t, s)
			kw, _ := f.sync("demo")
			wantActions(t, "kube writes", kw)
			c := condition(t, f.store("demo"), cleavev1.ConditionReady)
			if c.Status != metav1.ConditionFalse || c.Reason != "InvalidSpec" || !strings.Contains(c.Message, tc.want) {
				t.Fatalf("Ready %+v, want InvalidSpec naming %q", c, tc.want)
			}
			if len(f.events) != 1 || !strings.Contains(f.events[0], "InvalidSpec") || !strings.Contains(f.events[0], tc.want) {
				t.Fatalf("events %q", f.events)
			}
		})
	}
}

// TestStatusKeptWhileRoutersUnreachable: routers that stop answering do
// not make the store report zero clusters (the scale subresource would
// read 0); the last known clusters stay, with current ready counts.
func TestStatusKeptWhileRoutersUnreachable(t *testing.T) {
	f := newFixture(t, newStore("demo"))
	converge(t, f)
	f.admin.set(nil)
	f.sync("demo")
	s := f.store("demo")
	if s.Status.Replicas != 2 || s.Status.RoutingVersion != 1 || len(s.Status.Clusters) != 2 || s.Status.Clusters[0].Range == "" {
		t.Fatalf("status %+v", s.Status)
	}
	wantCondition(t, s, cleavev1.ConditionReady, metav1.ConditionFalse, "RoutersUnavailable")
	if c := condition(t, s, cleavev1.ConditionReady); !strings.Contains(c.Message, "connection refused") {
		t.Fatalf("Ready message %q", c.Message)
	}
}

// TestWidest: the split source is the widest range, the first in ring
// order among equals; the full ring (End 0 from Start 0) counts as widest.
func TestWidest(t *testing.T) {
	q := uint64(1) << 62
	for _, tc := range []struct {
		cs   []client.ClusterStatus
		want string
	}{
		{[]client.ClusterStatus{{ID: "c1", Range: client.Range{End: 0}}}, "c1"},
		{[]client.ClusterStatus{{ID: "c1", Range: lower}, {ID: "c2", Range: upper}}, "c1"},
		{[]client.ClusterStatus{{ID: "c1", Range: client.Range{End: q}}, {ID: "c3", Range: client.Range{Start: q, End: half}}, {ID: "c2", Range: upper}}, "c2"},
	} {
		if got := widest(tc.cs); got != tc.want {
			t.Errorf("widest(%v) = %s, want %s", tc.cs, got, tc.want)
		}
	}
}

// TestOverThreshold: bytes over the limit win, the biggest first; else
// the request rate since the last sample, the busiest first; nothing on
// the first sample or without thresholds.
func TestOverThreshold(t *testing.T) {
	st := func(ops1, ops2, bytes2 uint64) *client.Status {
		return &client.Status{Clusters: []client.ClusterStatus{
			{ID: "c1", Nodes: []client.NodeStatus{{Ops: ops1, Bytes: 10}}},
			{ID: "c2", Nodes: []client.NodeStatus{{Ops: ops2, Bytes: bytes2}}},
		}}
	}
	gi := resource.MustParse("1Gi")
	now := time.Unix(1000, 0)
	prev := map[string]opsSample{}
	a := &cleavev1.AutoSplitSpec{OpsPerSecond: 100}
	if got := overThreshold(a, st(0, 0, 0), prev, now); got != "" {
		t.Fatalf("first sample: %q", got)
	}
	if got := overThreshold(a, st(500, 2000, 0), prev, now.Add(10*time.Second)); got != "c2" {
		t.Fatalf("c2 at 200 ops/s: %q", got)
	}
	if got := overThreshold(a, st(600, 2100, 0), prev, now.Add(20*time.Second)); got != "" {
		t.Fatalf("10 ops/s each: %q", got)
	}
	a.Bytes = &gi
	if got := overThreshold(a, st(600, 2100, 2<<30), prev, now.Add(30*time.Second)); got != "c2" {
		t.Fatalf("c2 over 1Gi: %q", got)
	}
	if got := overThreshold(nil, st(0, 0, 2<<30), prev, now); got != "" {
		t.Fatalf("no thresholds: %q", got)
	}
	// A cluster whose load one root carries is not split for its rate.
	a.Bytes = nil
	hot := st(700, 5000, 0)
	hot.Clusters[1].HotRoot = &client.HotRoot{Name: "r", Ops: 2900, Total: 2900}
	if got := overThreshold(a, hot, prev, now.Add(40*time.Second)); got != "" {
		t.Fatalf("c2's load is one root: %q", got)
	}
}

// TestObserveShapeRefusesForeignLabels: a cluster StatefulSet whose labels
// or annotations the operator did not write is an error naming it, not a
// guess.
func TestObserveShapeRefusesForeignLabels(t *testing.T) {
	f := newFixture(t, newStore("demo"))
	converge(t, f)
	st := f.statefulSet("demo-c2")
	st.Annotations[AnnotationSplitFrom] = "x9"
	if _, err := f.kube.AppsV1().StatefulSets(ns).Update(context.Background(), st, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.trySync("demo"); err == nil || !strings.Contains(err.Error(), `statefulset demo-c2: annotation cleave.io/split-from="x9" is not a cluster id cN`) {
		t.Fatalf("sync error %v", err)
	}
	if _, err := parseBootstrap("c1=0-5,c2"); err == nil || !strings.Contains(err.Error(), "want cN=START-END") {
		t.Fatalf("parseBootstrap error %v", err)
	}
}

// TestRecreateDeletedCluster: a cluster the routing table has but whose
// StatefulSet is gone (deleted by hand, the volumes kept) gets it back as
// it was: split-born with its parent from the split records.
func TestRecreateDeletedCluster(t *testing.T) {
	f := newFixture(t, newStore("demo"))
	converge(t, f)
	f.edit("demo", func(s *cleavev1.CleaveStore) { s.Spec.Clusters = 3 })
	f.sync("demo")
	quarter := half / 2
	done := healthy(2, map[string]client.Range{"c1": {Start: 0, End: quarter}, "c2": upper, "c3": {Start: quarter, End: half}})
	done.Splits = []client.SplitStatus{{ID: 1, Cluster: "c1", NewCluster: "c3", Phase: client.SplitCleaned}}
	f.admin.set(done)
	f.sync("demo")
	for _, name := range []string{"demo-c3", "demo-c2"} {
		if err := f.kube.AppsV1().StatefulSets(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	kw, _ := f.sync("demo")
	wantActions(t, "kube writes", kw, "create statefulsets demo-c2", "create statefulsets demo-c3")
	if c3 := f.statefulSet("demo-c3"); c3.Annotations[AnnotationSplitFrom] != "c1" {
		t.Fatalf("c3 recreated with annotations %v", c3.Annotations)
	}
	if c2 := f.statefulSet("demo-c2"); c2.Annotations[AnnotationRange] != wire.FormatRange(wire.Range(upper)) {
		t.Fatalf("c2 recreated with annotations %v", c2.Annotations)
	}
}
