package kubeenv

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// kubelet is the fake kubelet of the Env's one Node. It runs the pods the
// scheduler binds to the Node (pod.go), binds a hostPath-like
// PersistentVolume to every pending PersistentVolumeClaim (volumes.go) and
// keeps every pod's /etc/hosts up to date with the pod and Service names
// of the cluster (hosts.go). It sends no Node heartbeats: the Env runs the
// controller manager without the node lifecycle controller.
type kubelet struct {
	e      *Env
	ctx    context.Context
	cancel context.CancelFunc
	pods   listersv1.PodLister
	svcs   listersv1.ServiceLister

	mu      sync.Mutex
	running map[types.UID]*podRun
	wg      sync.WaitGroup

	hostsDirty chan struct{}
	hostsDone  chan struct{}
}

// startKubelet registers the Node and starts watching.
func startKubelet(ctx context.Context, e *Env) (*kubelet, error) {
	if err := registerNode(ctx, e); err != nil {
		return nil, err
	}
	kctx, cancel := context.WithCancel(context.Background())
	k := &kubelet{
		e: e, ctx: kctx, cancel: cancel, running: map[types.UID]*podRun{},
		hostsDirty: make(chan struct{}, 1), hostsDone: make(chan struct{}),
	}
	mine := informers.NewSharedInformerFactoryWithOptions(e.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName=" + e.NodeName }))
	all := informers.NewSharedInformerFactory(e.Client, 0)
	podInf := mine.Core().V1().Pods()
	svcInf := all.Core().V1().Services()
	pvcInf := all.Core().V1().PersistentVolumeClaims()
	k.pods, k.svcs = podInf.Lister(), svcInf.Lister()
	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandlerFuncs
	}{
		{podInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { k.syncPod(o) },
			UpdateFunc: func(_, o any) { k.syncPod(o) },
			DeleteFunc: k.podGone,
		}},
		{svcInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { k.markHosts() },
			UpdateFunc: func(_, _ any) { k.markHosts() },
			DeleteFunc: func(any) { k.markHosts() },
		}},
		{pvcInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { k.syncClaim(o) },
			UpdateFunc: func(_, o any) { k.syncClaim(o) },
			DeleteFunc: k.claimGone,
		}},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandler(h.h); err != nil {
			cancel()
			return nil, err
		}
	}
	mine.Start(kctx.Done())
	all.Start(kctx.Done())
	go k.hostsLoop()
	for _, f := range []informers.SharedInformerFactory{mine, all} {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				k.stop()
				return nil, fmt.Errorf("watching %v: not synced", typ)
			}
		}
	}
	return k, nil
}

// registerNode creates the Node, reports it Ready with room for many pods,
// and lifts the not-ready taint the API server puts on a new Node (the
// node lifecycle controller would, on a real cluster).
func registerNode(ctx context.Context, e *Env) error {
	nodes := e.Client.CoreV1().Nodes()
	node, err := nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: e.NodeName,
		Labels: map[string]string{
			"kubernetes.io/hostname": e.NodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
		},
	}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("registering node %s: %w", e.NodeName, err)
	}
	room := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("64"),
		corev1.ResourceMemory:           resource.MustParse("256Gi"),
		corev1.ResourcePods:             resource.MustParse("250"),
		corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
	}
	now := metav1.Now()
	node.Status = corev1.NodeStatus{
		Capacity: room, Allocatable: room,
		Phase: corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "kubeenv runs pods as local processes", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: e.net.gateway.String()},
			{Type: corev1.NodeHostName, Address: e.NodeName},
		},
		NodeInfo: corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: "amd64", KubeletVersion: "kubeenv"},
	}
	if node, err = nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("reporting node %s ready: %w", e.NodeName, err)
	}
	var keep []corev1.Taint
	for _, t := range node.Spec.Taints {
		if t.Key != corev1.TaintNodeNotReady {
			keep = append(keep, t)
		}
	}
	node.Spec.Taints = keep
	if _, err := nodes.Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("untainting node %s: %w", e.NodeName, err)
	}
	return nil
}

// syncPod starts a pod new to the Node, or stops and finally deletes one
// the API server marked for deletion.
func (k *kubelet) syncPod(o any) {
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	k.markHosts()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctx.Err() != nil {
		return
	}
	r := k.running[pod.UID]
	if pod.DeletionTimestamp != nil {
		if r == nil {
			r = &podRun{k: k, pod: pod.DeepCopy(), done: make(chan struct{})}
			close(r.done)
			k.running[pod.UID] = r
		}
		r.terminateOnce.Do(func() {
			k.wg.Add(1)
			go k.terminate(r, pod)
		})
		return
	}
	if r != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return
	}
	r = newPodRun(k, pod)
	k.running[pod.UID] = r
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		r.run()
	}()
}

// terminate stops r's containers within the pod's grace period and then
// deletes the pod for good, as a kubelet does.
func (k *kubelet) terminate(r *podRun, pod *corev1.Pod) {
	defer k.wg.Done()
	r.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	uid := pod.UID
	err := k.e.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && k.ctx.Err() == nil {
		k.e.t.Logf("kubeenv: deleting pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
}

// podGone stops a pod that was deleted without a grace period.
func (k *kubelet) podGone(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	pod, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	k.markHosts()
	k.mu.Lock()
	r := k.running[pod.UID]
	delete(k.running, pod.UID)
	k.mu.Unlock()
	if r != nil {
		k.wg.Add(1)
		go func() {
			defer k.wg.Done()
			r.stop()
		}()
	}
}

// stop stops watching, stops every pod and waits for all of it.
func (k *kubelet) stop() {
	k.mu.Lock()
	k.cancel()
	runs := make([]*podRun, 0, len(k.running))
	for _, r := range k.running {
		runs = append(runs, r)
	}
	k.mu.Unlock()
	for _, r := range runs {
		r.stop()
	}
	k.wg.Wait()
	<-k.hostsDone
}

// runs returns the pods the kubelet runs now.
func (k *kubelet) runs() []*podRun {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]*podRun, 0, len(k.running))
	for _, r := range k.running {
		out = append(out, r)
	}
	return out
}
