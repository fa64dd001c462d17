package kubeenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/cleavefs/cleave/internal/eventually"
)

const ns = "kubeenv-test"

// buildPodServer builds testdata/podserver, the binary behind the image
// "podserver:dev".
func buildPodServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "podserver")
	out, err := exec.Command("go", "build", "-o", bin, "./testdata/podserver").CombinedOutput()
	if err != nil {
		t.Fatalf("building podserver: %v\n%s", err, out)
	}
	return bin
}

// TestStatefulSetOnFakeKubelet brings the control plane up, runs a
// StatefulSet of two pods on the fake kubelet and checks what a cleave
// deployment relies on: readiness, distinct pod IPs, stable DNS names
// between pods, each pod's own host name, in-cluster credentials that the
// API server accepts, a Service reachable from the test, a volume that survives
// its pod, and no process, namespace or link left behind.
func TestStatefulSetOnFakeKubelet(t *testing.T) {
	if testing.Short() {
		t.Skip("kubeenv: starts a Kubernetes control plane")
	}
	if reason := Unavailable(""); reason != "" {
		t.Skip("kubeenv: " + reason)
	}
	e := Start(t, Options{Images: map[string]string{"podserver:dev": buildPodServer(t)}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	out, err := e.Kubectl(ctx, "get", "--raw", "/readyz")
	if err != nil || out != "ok" {
		t.Fatalf("kubectl get --raw /readyz = %q, %v; want ok", out, err)
	}
	createStatefulSet(ctx, t, e)
	pods := waitReadyPods(t, e, 2)
	t.Logf("pods ready: %v", pods)
	if pods["web-0"] == pods["web-1"] {
		t.Fatalf("web-0 and web-1 share IP %s", pods["web-0"])
	}
	for from, to := range map[string]string{"web-0": "web-1", "web-1": "web-0"} {
		got := httpGet(t, pods[from]+":8080", "/call?addr="+to+".web."+ns+".svc.cluster.local:8080")
		if got != to {
			t.Fatalf("%s calling %s by name got %q", from, to, got)
		}
	}
	for name, ip := range pods {
		if got := httpGet(t, ip+":8080", "/hostname"); got != name {
			t.Fatalf("%s: os.Hostname() in the pod = %q; want the pod's name", name, got)
		}
	}
	if got, want := httpGet(t, pods["web-0"]+":8080", "/whoami"), "system:serviceaccount:"+ns+":default "+ns; got != want {
		t.Fatalf("web-0 asking the API server who it is with its in-cluster credentials: %q; want %q", got, want)
	}
	addrs, err := e.ServiceAddrs(ctx, ns, "web-client", "http")
	if err != nil || len(addrs) != 2 {
		t.Fatalf("ServiceAddrs(web-client) = %v, %v; want the 2 pods", addrs, err)
	}
	if got := httpGet(t, addrs[0], "/healthz"); got != "ok" {
		t.Fatalf("web-client at %s: /healthz = %q", addrs[0], got)
	}

	checkRestart(ctx, t, e)
	checkUnknownImage(ctx, t, e)
	checkVolumeSurvives(ctx, t, e, pods["web-0"])
	checkDeleteStops(ctx, t, e)

	e.Stop()
	checkNoLeftovers(t, e)
}

// checkRestart kills a container's process and checks that the kubelet
// reports the exit and restarts it (restartPolicy Always) until it is ready
// again.
func checkRestart(ctx context.Context, t *testing.T, e *Env) {
	pid := e.Pids()[ns+"/web-1/tcp"]
	if pid == 0 {
		t.Fatalf("no process for web-1/tcp in %v", e.Pids())
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually.Holds(t, time.Minute, "web-1/tcp restarted and ready", func() error {
		p, err := e.Client.CoreV1().Pods(ns).Get(ctx, "web-1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name != "tcp" {
				continue
			}
			last := cs.LastTerminationState.Terminated
			if cs.RestartCount != 1 || !cs.Ready || last == nil || last.ExitCode != 128+int32(syscall.SIGKILL) {
				return fmt.Errorf("restarts %d, ready %v, last exit %+v", cs.RestartCount, cs.Ready, last)
			}
			return nil
		}
		return fmt.Errorf("no status for container tcp")
	})
}

// checkUnknownImage runs a pod whose image is not in the image table: it
// must stay Pending with a waiting reason that names the image, and go
// when deleted.
func checkUnknownImage(ctx context.Context, t *testing.T, e *Env) {
	pods := e.Client.CoreV1().Pods(ns)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "stray"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "nope:1"}}},
	}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually.Holds(t, time.Minute, "pod stray reported as not startable", func() error {
		p, err := pods.Get(ctx, "stray", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Waiting == nil {
			return fmt.Errorf("phase %s, container statuses %+v", p.Status.Phase, p.Status.ContainerStatuses)
		}
		w := p.Status.ContainerStatuses[0].State.Waiting
		if p.Status.Phase != corev1.PodPending || w.Reason != "CreateContainerError" || !strings.Contains(w.Message, `"nope:1"`) {
			return fmt.Errorf("phase %s, waiting %s: %s", p.Status.Phase, w.Reason, w.Message)
		}
		return nil
	})
	if err := pods.Delete(ctx, "stray", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually.Holds(t, time.Minute, "pod stray gone", func() error {
		_, err := pods.Get(ctx, "stray", metav1.GetOptions{})
		return eventually.True(apierrors.IsNotFound(err), "get: %v", err)
	})
}

// checkVolumeSurvives writes through web-0, deletes the pod and reads the
// value back from the pod the StatefulSet makes again.
func checkVolumeSurvives(ctx context.Context, t *testing.T, e *Env, ip string) {
	httpGet(t, ip+":8080", "/write?v=kept")
	dir, err := e.VolumeDir(ctx, ns, "data-web-0")
	if err != nil {
		t.Fatal(err)
	}
	old, err := e.Client.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Client.CoreV1().Pods(ns).Delete(ctx, "web-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually.Holds(t, 2*time.Minute, "web-0 back", func() error {
		p, err := e.Client.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
		if err != nil {
			return err
		}
		return eventually.True(p.UID != old.UID, "still the old pod, phase %s", p.Status.Phase)
	})
	pods := waitReadyPods(t, e, 2)
	if got := httpGet(t, pods["web-0"]+":8080", "/read"); got != "kept" {
		t.Fatalf("web-0 after its deletion read %q; want kept", got)
	}
	again, err := e.VolumeDir(ctx, ns, "data-web-0")
	if err != nil || again != dir {
		t.Fatalf("volume of data-web-0 moved from %s to %s (%v)", dir, again, err)
	}
}

// checkDeleteStops deletes the StatefulSet and checks that its processes
// end, then deletes a claim and checks that its directory goes.
func checkDeleteStops(ctx context.Context, t *testing.T, e *Env) {
	pids := e.Pids()
	if len(pids) != 6 {
		t.Fatalf("running containers %v; want 2 pods x 3", pids)
	}
	if _, err := e.Kubectl(ctx, "delete", "statefulset", "web", "-n", ns, "--wait=false"); err != nil {
		t.Fatal(err)
	}
	eventually.Holds(t, 2*time.Minute, "pods of the deleted StatefulSet gone", func() error {
		l, err := e.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		return eventually.True(len(l.Items) == 0, "%d pods left", len(l.Items))
	})
	eventually.Holds(t, 30*time.Second, "processes of the deleted StatefulSet ended", func() error {
		for name, pid := range pids {
			if alive(pid) {
				return fmt.Errorf("%s (pid %d) still runs", name, pid)
			}
		}
		return nil
	})
	dir, err := e.VolumeDir(ctx, ns, "data-web-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data-web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually.Holds(t, time.Minute, "directory of the deleted claim gone", func() error {
		_, err := os.Stat(dir)
		return eventually.True(errors.Is(err, os.ErrNotExist), "%s: %v", dir, err)
	})
}

// checkNoLeftovers checks, after Stop, that no namespace, link or process
// of e remains.
func checkNoLeftovers(t *testing.T, e *Env) {
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil || strings.Contains(string(out), "kubeenv-"+e.id) {
		t.Errorf("network namespaces after Stop (%v):\n%s", err, out)
	}
	out, err = exec.Command("ip", "-o", "link").CombinedOutput()
	if err != nil || strings.Contains(string(out), "kbr"+e.id) || strings.Contains(string(out), "kv"+e.id) {
		t.Errorf("links after Stop (%v):\n%s", err, out)
	}
	for _, p := range e.procs {
		if alive(p.cmd.Process.Pid) {
			t.Errorf("%s (pid %d) runs after Stop", p.name, p.cmd.Process.Pid)
		}
	}
}

// alive reports whether a process with that id exists.
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// waitReadyPods waits until n pods of the namespace are Running and Ready
// and returns their IPs by name.
func waitReadyPods(t *testing.T, e *Env, n int) map[string]string {
	t.Helper()
	ips := map[string]string{}
	eventually.Holds(t, 3*time.Minute, fmt.Sprintf("%d pods running and ready", n), func() error {
		l, err := e.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		clear(ips)
		var seen []string
		for _, p := range l.Items {
			seen = append(seen, fmt.Sprintf("%s:%s ready=%v", p.Name, p.Status.Phase, podReady(&p)))
			if p.Status.Phase == corev1.PodRunning && podReady(&p) && p.DeletionTimestamp == nil {
				ips[p.Name] = p.Status.PodIP
			}
		}
		return eventually.True(len(ips) == n, "pods %v", seen)
	})
	return ips
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// httpGet returns the body of GET http://addr+path, failing t on an error
// or a status other than 200.
func httpGet(t *testing.T, addr, path string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s%s: %s %q %v", addr, path, resp.Status, b, err)
	}
	return string(b)
}

// createStatefulSet creates the namespace, a headless Service "web", a
// client Service "web-client" and a StatefulSet "web" of 2 pods, each
// with an HTTP container (HTTP readiness probe, a claim at /data), a TCP
// container (TCP readiness probe) and one whose readiness probe is a
// command run in the pod's network namespace.
func createStatefulSet(ctx context.Context, t *testing.T, e *Env) {
	t.Helper()
	cs := e.Client
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "web"}
	port := corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}
	for _, svc := range []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone, Selector: labels, PublishNotReadyAddresses: true, Ports: []corev1.ServicePort{port},
		}},
		{ObjectMeta: metav1.ObjectMeta{Name: "web-client"}, Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{port}}},
	} {
		if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	probe := func(h corev1.ProbeHandler) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: h, PeriodSeconds: 1}
	}
	grace := int64(5)
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: new(int32(2)), ServiceName: "web", Selector: &metav1.LabelSelector{MatchLabels: labels},
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{TerminationGracePeriodSeconds: &grace, Containers: []corev1.Container{{
					Name: "http", Image: "podserver:dev", Args: []string{"--http", ":8080", "--data=/data"},
					Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					VolumeMounts:   []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
					ReadinessProbe: probe(corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}),
				}, {
					Name: "tcp", Image: "podserver:dev", Command: []string{"/usr/bin/podserver", "--tcp", ":8081"},
					ReadinessProbe: probe(corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8081)}}),
				}, {
					Name: "exec", Image: "podserver:dev", Args: []string{"--tcp", ":8082"},
					ReadinessProbe: probe(corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"podserver", "--probe", "127.0.0.1:8082"}}}),
				}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		},
	}
	if _, err := cs.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// TestExpand checks $(VAR) expansion as Kubernetes does it.
func TestExpand(t *testing.T) {
	vars := []envVar{{"A", "x"}, {"B", "y"}}
	for in, want := range map[string]string{
		"$(A)-$(B)": "x-y", "$(C)": "$(C)", "$$(A)": "$(A)", "a$": "a$", "$(A": "$(A", "plain": "plain",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestRewritePath checks that mount paths in args become host directories.
func TestRewritePath(t *testing.T) {
	mounts := []mount{{"/data/sub", "/h/sub"}, {"/data", "/h/data"}}
	for in, want := range map[string]string{
		"/data": "/h/data", "/data/x": "/h/data/x", "/data/sub/y": "/h/sub/y", "--data=/data": "--data=/h/data",
		"/database": "/database", "--x=/other": "--x=/other", "data": "data",
	} {
		if got := rewritePath(in, mounts); got != want {
			t.Errorf("rewritePath(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestSweepStale leaves a bridge and a pod namespace behind as a killed
// test process would, and checks that the next Env's sweep removes them.
func TestSweepStale(t *testing.T) {
	if reason := Unavailable(""); reason != "" {
		t.Skip("kubeenv: " + reason)
	}
	id := randomID()
	b, err := newBridge(id)
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.attach()
	if err != nil {
		b.remove()
		t.Fatal(err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	owner := filepath.Join(ownersDir, id)
	if err := os.WriteFile(owner, []byte(fmt.Sprint(dead.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	sweepStale()
	out, _ := exec.Command("ip", "netns", "list").Output()
	links, _ := exec.Command("ip", "-o", "link").Output()
	if strings.Contains(string(out), p.ns) || strings.Contains(string(links), b.name) || strings.Contains(string(links), p.veth) {
		t.Errorf("left after the sweep:\n%s\n%s", out, links)
	}
	for _, path := range []string{p.etcDir(), owner} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after the sweep (%v)", path, err)
		}
	}
}
