// Package kubeenv runs a real Kubernetes control plane for tests: etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler, each a real
// process on 127.0.0.1 built from Go modules by scripts/build-kube.sh, with
// token authentication, a kubeconfig and kubectl. It has no kubelet and no
// container runtime: the Env registers one Node and acts as its kubelet,
// running each container of a pod bound to it as a local process in a
// network namespace of its own (see kubelet.go), so a test can run
// StatefulSets, Services and PersistentVolumeClaims of real binaries.
//
// Each container also gets a UTS namespace with the pod's host name and
// the in-cluster credentials of its service account: the projected token
// volume is bind-mounted at /var/run/secrets/kubernetes.io/serviceaccount
// in the container's mount namespace, and KUBERNETES_SERVICE_HOST and
// KUBERNETES_SERVICE_PORT name a proxy to the API server on the bridge
// (apiproxy.go), so rest.InClusterConfig works in a pod.
//
// What the fake kubelet does not do: init containers, liveness and
// startup probes, envFrom, resource limits and token rotation (a
// projected token lasts its expirationSeconds, an hour by default).
// Processes share the host's file system: a volume is a host directory,
// and arguments, environment values and working directories naming a
// mount path are rewritten to it. ClusterIPs are not routed; names resolve
// to pod IPs (hosts.go), and ServiceAddrs gives the test the addresses
// behind a Service.
//
// It needs root (network namespaces, a bridge) and the ip command; Start
// skips the test with the reason when either is missing or when no
// binaries were built (KUBEENV_BIN unset).
package kubeenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/cleavefs/cleave/internal/ports"
)

// BinEnv names the environment variable holding the directory of the
// control-plane binaries (kube-apiserver, kube-controller-manager,
// kube-scheduler, kubectl, etcd) that scripts/build-kube.sh prints.
const BinEnv = "KUBEENV_BIN"

// startTimeout bounds how long the control plane may take to come up.
const startTimeout = 3 * time.Minute

// Options configures Start.
type Options struct {
	// BinDir holds the control-plane binaries; empty means $KUBEENV_BIN.
	BinDir string
	// Images maps a container image name (as a pod spec names it, e.g.
	// "cleave:dev") to the local binary that is the image's entrypoint.
	// A pod whose image is not in the table fails to start, with an event
	// and a waiting reason naming the image.
	Images map[string]string
}

// Env is a running control plane plus the fake kubelet of its one Node.
type Env struct {
	// Dir is the test's directory: logs/, pki/, etcd/, volumes/, pods/.
	Dir string
	// Kubeconfig is the path of a kubeconfig with the admin token.
	Kubeconfig string
	// Config and Client reach the API server as the admin.
	Config *rest.Config
	Client kubernetes.Interface
	// NodeName is the name of the one Node.
	NodeName string

	t       testing.TB
	bin     string
	id      string
	images  map[string]string
	procs   []*proc
	net     *bridge
	api     *apiProxy
	kubelet *kubelet
	stopped bool
}

// Start brings up the control plane and the fake kubelet in a directory
// of t's, and stops all of it when t ends (Stop). It skips t when the
// environment cannot run here and fails t when it does not come up,
// printing the tails of the component logs.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	bin := opts.BinDir
	if bin == "" {
		bin = os.Getenv(BinEnv)
	}
	if reason := Unavailable(bin); reason != "" {
		t.Skip("kubeenv: " + reason)
	}
	e := &Env{Dir: t.TempDir(), t: t, bin: bin, images: opts.Images, id: randomID()}
	t.Cleanup(e.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := e.start(ctx); err != nil {
		e.dumpLogs()
		t.Fatalf("kubeenv: %v", err)
	}
	return e
}

// Unavailable says why the environment cannot run here with the binaries
// in bin (empty: $KUBEENV_BIN), or "" when it can; Start skips with it. A
// test calls it first to skip before expensive setup.
func Unavailable(bin string) string {
	if bin == "" {
		bin = os.Getenv(BinEnv)
	}
	if bin == "" {
		return BinEnv + " is not set: run `make test-k8s`, which builds the Kubernetes binaries (scripts/build-kube.sh) and sets it"
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return fmt.Sprintf("%s: no %s in %s (%v): run scripts/build-kube.sh", BinEnv, b, bin, err)
		}
	}
	if os.Geteuid() != 0 {
		return "needs root for network namespaces and a bridge"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "needs the ip command (Debian package iproute2)"
	}
	return ""
}

func (e *Env) start(ctx context.Context) error {
	for _, d := range []string{"logs", "pki", "volumes", "pods"} {
		if err := os.MkdirAll(filepath.Join(e.Dir, d), 0o755); err != nil {
			return err
		}
	}
	addrs, err := ports.Free(3)
	if err != nil {
		return err
	}
	etcdClient, etcdPeer, apiAddr := addrs[0], addrs[1], addrs[2]
	// The bridge comes first: the API server's certificate names its
	// gateway, where pods reach the API server (apiproxy.go).
	if e.net, err = newBridge(e.id); err != nil {
		return fmt.Errorf("pod network: %w", err)
	}
	pki, err := writePKI(filepath.Join(e.Dir, "pki"), e.net.gateway)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	if err := e.startEtcd(etcdClient, etcdPeer); err != nil {
		return err
	}
	if err := e.startAPIServer(ctx, pki, "http://"+etcdClient, apiAddr); err != nil {
		return err
	}
	if e.api, err = startAPIProxy(e.net.gateway.String(), apiAddr); err != nil {
		return fmt.Errorf("API server proxy for pods: %w", err)
	}
	if err := e.startControllers(pki); err != nil {
		return err
	}
	e.NodeName = "kubeenv-" + e.id
	e.kubelet, err = startKubelet(ctx, e)
	if err != nil {
		return fmt.Errorf("kubelet: %w", err)
	}
	return nil
}

func (e *Env) startEtcd(client, peer string) error {
	_, err := e.run("etcd", e.binary("etcd"),
		"--name", "kubeenv", "--data-dir", filepath.Join(e.Dir, "etcd"),
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "kubeenv=http://"+peer, "--unsafe-no-fsync",
		"--log-level", "warn")
	return err
}

func (e *Env) startAPIServer(ctx context.Context, p pkiFiles, etcd, addr string) error {
	host, port, _ := strings.Cut(addr, ":")
	_, err := e.run("kube-apiserver", e.binary("kube-apiserver"),
		"--etcd-servers", etcd,
		"--bind-address", host, "--secure-port", port, "--advertise-address", host,
		"--cert-dir", filepath.Join(e.Dir, "pki", "apiserver"),
		"--tls-cert-file", p.serverCert, "--tls-private-key-file", p.serverKey,
		"--client-ca-file", p.caCert,
		"--token-auth-file", p.tokens,
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", p.saPub,
		"--service-account-signing-key-file", p.saKey,
		"--service-cluster-ip-range", serviceCIDR,
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=1")
	if err != nil {
		return err
	}
	e.Kubeconfig = filepath.Join(e.Dir, "kubeconfig")
	if err := writeKubeconfig(e.Kubeconfig, "https://"+addr, p); err != nil {
		return err
	}
	e.Config = &rest.Config{
		Host:            "https://" + addr,
		BearerToken:     p.token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: p.caCert},
		QPS:             100, Burst: 200,
	}
	if e.Client, err = kubernetes.NewForConfig(e.Config); err != nil {
		return err
	}
	return e.waitReady(ctx)
}

// waitReady waits until the API server answers /readyz with ok.
func (e *Env) waitReady(ctx context.Context) error {
	var last error
	for {
		body, err := e.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return nil
		}
		last = err
		if err := e.exited(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready: %v (last answer %q)", last, body)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (e *Env) startControllers(p pkiFiles) error {
	// nodelifecycle is off: the fake kubelet reports its Node Ready once
	// and sends no heartbeats, and tests must not see its pods evicted.
	if _, err := e.run("kube-controller-manager", e.binary("kube-controller-manager"),
		"--kubeconfig", e.Kubeconfig,
		"--secure-port=0",
		"--leader-elect=false",
		"--controllers", "*,-nodelifecycle,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
		"--service-account-private-key-file", p.saKey,
		"--root-ca-file", p.caCert,
		"--use-service-account-credentials=false",
		"--service-cluster-ip-range", serviceCIDR,
		"--concurrent-statefulset-syncs=2",
		"--profiling=false",
		"--v=1"); err != nil {
		return err
	}
	// A pod found unschedulable is tried again within seconds, not the
	// default 5 minutes: a StatefulSet's pod can reach the scheduler
	// before its claim is bound (volumes.go binds it a moment later), and
	// the scheduler does not always requeue it on the binding (seen in 1
	// of 2 runs of the operator e2e, a node pod Pending for minutes).
	_, err := e.run("kube-scheduler", e.binary("kube-scheduler"),
		"--kubeconfig", e.Kubeconfig,
		"--secure-port=0",
		"--pod-max-in-unschedulable-pods-duration=5s",
		"--leader-elect=false",
		"--profiling=false",
		"--v=1")
	return err
}

// Kubectl runs kubectl with the Env's kubeconfig and returns its standard
// output; an error carries its standard error.
func (e *Env) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, e.binary("kubectl"), append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Stop stops the kubelet's pods (their processes, namespaces and links),
// the bridge and the control-plane processes, in that order. It is safe to
// call more than once; Start registers it with t.Cleanup. When t failed it
// first prints the tails of the component logs.
func (e *Env) Stop() {
	if e.stopped {
		return
	}
	e.stopped = true
	if e.t.Failed() {
		e.dumpLogs()
	}
	if e.kubelet != nil {
		e.kubelet.stop()
	}
	if e.api != nil {
		e.api.close()
	}
	if e.net != nil {
		if err := e.net.remove(); err != nil {
			e.t.Errorf("kubeenv: removing the pod network: %v", err)
		}
	}
	for i := len(e.procs) - 1; i >= 0; i-- {
		e.procs[i].stop(10 * time.Second)
	}
}

func (e *Env) binary(name string) string { return filepath.Join(e.bin, name) }

// exited returns an error naming the first control-plane process that has
// exited, or nil.
func (e *Env) exited() error {
	for _, p := range e.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v (log %s)", p.name, p.err, p.log)
		default:
		}
	}
	return nil
}

// Exited reports a control-plane process that exited, or nil while all run.
func (e *Env) Exited() error { return e.exited() }

// dumpLogs prints the last lines of every component's log.
func (e *Env) dumpLogs() {
	paths, _ := filepath.Glob(filepath.Join(e.Dir, "logs", "*.log"))
	for _, p := range paths {
		e.t.Logf("---- last lines of %s ----\n%s", p, tail(p, 40))
	}
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// proc is a process the Env started in a process group of its own, with
// its output in a log file.
type proc struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
	err       error
}

// run starts argv as name, logging to logs/<name>.log.
func (e *Env) run(name string, argv ...string) (*proc, error) {
	p, err := startProc(name, filepath.Join(e.Dir, "logs", name+".log"), nil, "", argv...)
	if err != nil {
		return nil, err
	}
	e.procs = append(e.procs, p)
	return p, nil
}

// startProc starts argv in a process group of its own (killed with the
// test process: Pdeathsig) in dir with env (both as exec.Cmd takes them),
// appending its output to log.
func startProc(name, log string, env []string, dir string, argv ...string) (*proc, error) {
	return startProcFlags(name, log, env, dir, 0, argv...)
}

// startProcFlags is startProc with clone flags for new namespaces.
func startProcFlags(name, log string, env []string, dir string, clone uintptr, argv ...string) (*proc, error) {
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env, cmd.Dir = env, dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Cloneflags: clone}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, log: log, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM to p's process group, then SIGKILL after grace, and
// waits for p to exit; the group's other processes get SIGKILL too.
func (p *proc) stop(grace time.Duration) {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
}

// exitCode returns p's exit code once it has exited (128+signal when a
// signal ended it).
func (p *proc) exitCode() int32 {
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) {
		if p.err == nil {
			return 0
		}
		return 128
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int32(ws.Signal())
	}
	return int32(ee.ExitCode())
}
