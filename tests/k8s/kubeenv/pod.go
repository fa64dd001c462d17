package kubeenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// maxGrace caps a pod's termination grace period, so a test never waits
// the default 30 s for a process that ignores SIGTERM.
const maxGrace = 10 * time.Second

// podRun is one pod the kubelet runs: its network namespace, its volumes
// and one container (a local process) per container of its spec.
type podRun struct {
	k   *kubelet
	pod *corev1.Pod // as first seen; a pod's containers do not change
	net *podNet
	dir string // pods/<uid>: emptyDir and projected volumes
	ctx context.Context

	cancel        context.CancelFunc
	done          chan struct{}
	stopOnce      sync.Once
	terminateOnce sync.Once
	kick          chan struct{} // a status change to report

	mu         sync.Mutex
	ctrs       []*container
	started    time.Time
	setupError string
	conds      map[corev1.PodConditionType]corev1.PodCondition
}

func newPodRun(k *kubelet, pod *corev1.Pod) *podRun {
	ctx, cancel := context.WithCancel(k.ctx)
	r := &podRun{
		k: k, pod: pod.DeepCopy(), ctx: ctx, cancel: cancel,
		dir:  filepath.Join(k.e.Dir, "pods", string(pod.UID)),
		done: make(chan struct{}), kick: make(chan struct{}, 1),
		conds: map[corev1.PodConditionType]corev1.PodCondition{},
	}
	for _, c := range pod.Spec.Containers {
		r.ctrs = append(r.ctrs, &container{r: r, spec: c})
	}
	return r
}

func (r *podRun) name() string { return r.pod.Namespace + "/" + r.pod.Name }

// run sets the pod up, runs its containers until they end for good or the
// pod is stopped, and tears it down.
func (r *podRun) run() {
	defer close(r.done)
	statusDone := make(chan struct{})
	go func() {
		defer close(statusDone)
		r.statusLoop()
	}()
	defer func() {
		r.cancel()
		<-statusDone
		if r.net != nil {
			r.k.e.net.detach(r.net)
		}
		_ = os.RemoveAll(r.dir)
		r.k.markHosts()
	}()
	mounts, err := r.setup()
	if err != nil {
		r.mu.Lock()
		r.setupError = err.Error()
		r.mu.Unlock()
		r.kickStatus()
		<-r.ctx.Done()
		return
	}
	r.mu.Lock()
	r.started = time.Now()
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range r.ctrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(mounts)
		}()
	}
	wg.Wait()
	r.kickStatus()
	<-r.ctx.Done()
}

// setup attaches the pod to the network and resolves its volumes.
func (r *podRun) setup() ([]mount, error) {
	n, err := r.k.e.net.attach()
	if err != nil {
		return nil, fmt.Errorf("pod network: %w", err)
	}
	r.mu.Lock()
	r.net = n
	r.mu.Unlock()
	r.k.markHosts()
	r.kickStatus()
	return r.volumes()
}

// stop cancels the pod and waits until its processes are gone and its
// namespace is deleted.
func (r *podRun) stop() {
	r.stopOnce.Do(func() {
		if r.cancel != nil {
			r.cancel()
		}
	})
	<-r.done
}

// grace is the pod's termination grace period, at most maxGrace.
func (r *podRun) grace() time.Duration {
	g := maxGrace
	if s := r.pod.Spec.TerminationGracePeriodSeconds; s != nil && time.Duration(*s)*time.Second < g {
		g = time.Duration(*s) * time.Second
	}
	return g
}

func (r *podRun) kickStatus() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// ready reports whether every container of the pod is ready.
func (r *podRun) ready() bool {
	for _, c := range r.ctrs {
		if !c.isReady() {
			return false
		}
	}
	return len(r.ctrs) > 0
}

// ip returns the pod's address, or "" before it has one.
func (r *podRun) ip() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.net == nil {
		return ""
	}
	return r.net.ip.String()
}

// statusLoop reports the pod's status whenever it changes, until the pod
// is stopped.
func (r *podRun) statusLoop() {
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.kick:
		}
		if err := r.postStatus(); err != nil && r.ctx.Err() == nil {
			r.k.e.t.Logf("kubeenv: status of pod %s: %v", r.name(), err)
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(time.Second):
				r.kickStatus()
			}
		}
	}
}

// postStatus writes the pod's status subresource from what runs now.
func (r *podRun) postStatus() error {
	pods := r.k.e.Client.CoreV1().Pods(r.pod.Namespace)
	ctx, cancel := context.WithTimeout(r.ctx, 20*time.Second)
	defer cancel()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := pods.Get(ctx, r.pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != r.pod.UID || cur.DeletionTimestamp != nil {
			return nil
		}
		r.fillStatus(&cur.Status)
		_, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

// fillStatus sets the fields of st a kubelet owns, keeping the others
// (QOS class, the scheduler's condition).
func (r *podRun) fillStatus(st *corev1.PodStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	gw := r.k.e.net.gateway.String()
	st.HostIP, st.HostIPs = gw, []corev1.HostIP{{IP: gw}}
	if r.net != nil {
		ip := r.net.ip.String()
		st.PodIP, st.PodIPs = ip, []corev1.PodIP{{IP: ip}}
	}
	if !r.started.IsZero() {
		t := metav1.NewTime(r.started)
		st.StartTime = &t
	}
	st.Message, st.Reason = r.setupError, ""
	st.ContainerStatuses = st.ContainerStatuses[:0]
	started, finished, failed, ready := 0, 0, 0, 0
	for _, c := range r.ctrs {
		cs := c.status()
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		if cs.State.Running != nil || cs.RestartCount > 0 || cs.State.Terminated != nil {
			started++
		}
		if c.isFinished() {
			finished++
			if cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0 {
				failed++
			}
		}
		if cs.Ready {
			ready++
		}
	}
	switch {
	case len(r.ctrs) > 0 && finished == len(r.ctrs) && failed == 0:
		st.Phase = corev1.PodSucceeded
	case len(r.ctrs) > 0 && finished == len(r.ctrs):
		st.Phase = corev1.PodFailed
	case started > 0:
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}
	all := corev1.ConditionFalse
	if ready == len(r.ctrs) && ready > 0 {
		all = corev1.ConditionTrue
	}
	r.setCondition(st, corev1.PodInitialized, corev1.ConditionTrue)
	r.setCondition(st, corev1.ContainersReady, all)
	r.setCondition(st, corev1.PodReady, all)
}

// setCondition sets condition typ of st to status, moving its transition
// time only when the status changes.
func (r *podRun) setCondition(st *corev1.PodStatus, typ corev1.PodConditionType, status corev1.ConditionStatus) {
	c, ok := r.conds[typ]
	if !ok || c.Status != status {
		c = corev1.PodCondition{Type: typ, Status: status, LastTransitionTime: metav1.Now()}
		r.conds[typ] = c
	}
	for i := range st.Conditions {
		if st.Conditions[i].Type == typ {
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}

// containerID names a running process in a container status.
func containerID(pid int) string { return "kubeenv://" + strconv.Itoa(pid) }
