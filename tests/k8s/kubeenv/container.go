package kubeenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// container is one container of a pod: a local process started with `ip
// netns exec` in the pod's namespace, restarted per the pod's
// restartPolicy, with its output appended to logs/pod-<ns>-<pod>-<name>.log.
type container struct {
	r    *podRun
	spec corev1.Container

	mu        sync.Mutex
	bin       string
	pid       int
	running   bool
	startedAt time.Time
	ready     bool
	restarts  int32
	lastExit  *corev1.ContainerStateTerminated
	waiting   string // reason while not running
	message   string
	finished  bool // ended and will not restart
}

// run starts the process and restarts it per the restart policy until it
// ends for good or the pod stops.
func (c *container) run(mounts []mount) {
	backoff := time.Second
	for {
		p, reason, err := c.start(mounts)
		if err != nil {
			// As a kubelet does: the pod stays Pending, the container
			// waiting with the reason, and the start is tried again.
			c.set(func() { c.waiting, c.message = reason, err.Error() })
			select {
			case <-c.r.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		start := time.Now()
		c.set(func() { c.pid, c.running, c.startedAt, c.waiting, c.message = p.cmd.Process.Pid, true, start, "", "" })
		pctx, stopProbe := context.WithCancel(c.r.ctx)
		go c.probe(pctx)
		select {
		case <-p.done:
		case <-c.r.ctx.Done():
			p.stop(c.r.grace())
		}
		stopProbe()
		code := p.exitCode()
		restart := c.r.ctx.Err() == nil && c.restarts < 1000 && (c.r.pod.Spec.RestartPolicy == corev1.RestartPolicyAlways ||
			c.r.pod.Spec.RestartPolicy == "" || c.r.pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure && code != 0)
		c.set(func() {
			c.running, c.ready, c.pid = false, false, 0
			c.lastExit = &corev1.ContainerStateTerminated{
				ExitCode: code, Reason: exitReason(code), StartedAt: metav1.NewTime(start), FinishedAt: metav1.Now(),
			}
			c.finished = !restart
			if restart {
				c.waiting, c.message = "CrashLoopBackOff", fmt.Sprintf("exited with %d; restarting in %s", code, backoff)
			}
		})
		if !restart {
			return
		}
		if time.Since(start) > 10*time.Second {
			backoff = time.Second
		}
		select {
		case <-c.r.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
		c.set(func() { c.restarts++ })
	}
}

// start starts the container's process; on an error it also returns the
// waiting reason to report.
func (c *container) start(mounts []mount) (*proc, string, error) {
	argv, env, dir, err := c.command(mounts)
	if err != nil {
		return nil, "CreateContainerError", err
	}
	log := filepath.Join(c.r.k.e.Dir, "logs", fmt.Sprintf("pod-%s-%s-%s.log", c.r.pod.Namespace, c.r.pod.Name, c.spec.Name))
	p, err := startProcFlags(c.spec.Name, log, env, dir, syscall.CLONE_NEWUTS, c.r.wrap(mounts, argv)...)
	if err != nil {
		return nil, "RunContainerError", err
	}
	return p, "", nil
}

func exitReason(code int32) string {
	if code == 0 {
		return "Completed"
	}
	return "Error"
}

// set changes c's state under its lock and has the pod's status reported.
func (c *container) set(f func()) {
	c.mu.Lock()
	f()
	c.mu.Unlock()
	c.r.kickStatus()
}

func (c *container) isReady() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ready
}

func (c *container) isFinished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.finished
}

// pidNow returns the process id of the container while it runs, else 0.
func (c *container) pidNow() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pid
}

// status is c's container status for the pod's status.
func (c *container) status() corev1.ContainerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	started := c.running
	cs := corev1.ContainerStatus{
		Name: c.spec.Name, Image: c.spec.Image, ImageID: "kubeenv://" + c.bin,
		Ready: c.ready, RestartCount: c.restarts, Started: &started,
	}
	if c.lastExit != nil {
		cs.LastTerminationState.Terminated = c.lastExit.DeepCopy()
	}
	switch {
	case c.running:
		cs.ContainerID = containerID(c.pid)
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(c.startedAt)}
	case c.finished && c.lastExit != nil:
		cs.State.Terminated = c.lastExit.DeepCopy()
	case c.waiting != "":
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: c.waiting, Message: c.message}
	default:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
	}
	return cs
}

// command works out the process's argv, environment and working directory
// from the container spec: the image names a local binary through the
// Env's image table and is the entrypoint; a command whose first word is
// that binary's base name (or a path ending in it) runs the binary, any
// other first word is looked up on the host's PATH. $(VAR) references
// expand as on Kubernetes, and paths under a volume's mount path are
// rewritten to the volume's directory on the host.
func (c *container) command(mounts []mount) (argv, env []string, dir string, err error) {
	bin, ok := c.r.k.e.images[c.spec.Image]
	if !ok {
		return nil, nil, "", fmt.Errorf("image %q is not in the kubeenv image table (Options.Images)", c.spec.Image)
	}
	c.mu.Lock()
	c.bin = bin
	c.mu.Unlock()
	vars, err := c.r.envVars(c.spec)
	if err != nil {
		return nil, nil, "", err
	}
	words := append(append([]string{}, c.spec.Command...), c.spec.Args...)
	for i, w := range words {
		words[i] = rewritePath(expand(w, vars), mounts)
	}
	switch {
	case len(c.spec.Command) == 0:
		argv = append([]string{bin}, words...)
	default:
		if argv0, err := resolveCommand(words[0], bin); err != nil {
			return nil, nil, "", err
		} else {
			argv = append([]string{argv0}, words[1:]...)
		}
	}
	host, port := c.r.k.e.api.addr()
	env = []string{"PATH=" + os.Getenv("PATH"), "HOSTNAME=" + c.r.hostname(),
		"KUBERNETES_SERVICE_HOST=" + host, "KUBERNETES_SERVICE_PORT=" + port}
	for _, v := range vars {
		env = append(env, v.name+"="+rewritePath(v.value, mounts))
	}
	if c.spec.WorkingDir != "" {
		dir = rewritePath(c.spec.WorkingDir, mounts)
	}
	return argv, env, dir, nil
}

// boundPrefix is where volumes are bind-mounted at their mount path
// rather than rewritten: what programs read at fixed paths, such as the
// service account's token and CA for rest.InClusterConfig.
const boundPrefix = "/var/run/secrets/"

// wrapScript runs in the pod's network namespace and in mount and UTS
// namespaces of the container's own ($1 the host name, then pairs of
// SOURCE TARGET to bind-mount, then --, then the container's argv). `ip
// netns exec` makes the mount namespace and keeps its mounts from
// propagating to the host; the UTS namespace comes from the clone flags
// startProc is given. A target is created on the host if missing (an
// empty directory), as a bind mount needs one.
const wrapScript = `set -e
printf %s "$1" >/proc/sys/kernel/hostname
shift
while [ "$1" != -- ]; do
	mkdir -p "$2"
	mount --bind "$1" "$2"
	shift 2
done
shift
exec "$@"`

// wrap returns the argv that runs argv as the container: in the pod's
// network namespace, with the pod's host name and the volumes under
// boundPrefix mounted at their paths.
func (r *podRun) wrap(mounts []mount, argv []string) []string {
	out := []string{"ip", "netns", "exec", r.net.ns, "sh", "-c", wrapScript, "kubeenv-container", r.hostname()}
	for _, m := range mounts {
		if strings.HasPrefix(m.path, boundPrefix) {
			out = append(out, m.dir, m.path)
		}
	}
	return append(append(out, "--"), argv...)
}

// resolveCommand maps a container's first word to a host binary: the
// image's binary when the base names match, else a PATH lookup.
func resolveCommand(word, bin string) (string, error) {
	if filepath.Base(word) == filepath.Base(bin) {
		return bin, nil
	}
	p, err := exec.LookPath(filepath.Base(word))
	if err != nil {
		return "", fmt.Errorf("command %q: neither the image's binary %s nor on the host's PATH", word, filepath.Base(bin))
	}
	return p, nil
}

// hostname is the pod's host name: spec.hostname, else its name.
func (r *podRun) hostname() string {
	if r.pod.Spec.Hostname != "" {
		return r.pod.Spec.Hostname
	}
	return r.pod.Name
}

type envVar struct{ name, value string }

// envVars resolves the container's env: values (with $(VAR) expansion of
// the ones before), field references and Secret or ConfigMap keys.
func (r *podRun) envVars(spec corev1.Container) ([]envVar, error) {
	var vars []envVar
	for _, ev := range spec.Env {
		v := ev.Value
		if ev.ValueFrom != nil {
			var err error
			if v, err = r.valueFrom(ev.ValueFrom); err != nil {
				return nil, fmt.Errorf("env %s: %w", ev.Name, err)
			}
		} else {
			v = expand(v, vars)
		}
		vars = append(vars, envVar{ev.Name, v})
	}
	return vars, nil
}

func (r *podRun) valueFrom(src *corev1.EnvVarSource) (string, error) {
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	ns := r.pod.Namespace
	switch {
	case src.FieldRef != nil:
		return r.field(src.FieldRef.FieldPath)
	case src.SecretKeyRef != nil:
		s, err := r.k.e.Client.CoreV1().Secrets(ns).Get(ctx, src.SecretKeyRef.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return string(s.Data[src.SecretKeyRef.Key]), nil
	case src.ConfigMapKeyRef != nil:
		cm, err := r.k.e.Client.CoreV1().ConfigMaps(ns).Get(ctx, src.ConfigMapKeyRef.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return cm.Data[src.ConfigMapKeyRef.Key], nil
	}
	return "", fmt.Errorf("kubeenv resolves only fieldRef, secretKeyRef and configMapKeyRef")
}

// field is the downward API's value of a pod field.
func (r *podRun) field(path string) (string, error) {
	p := r.pod
	switch path {
	case "metadata.name":
		return p.Name, nil
	case "metadata.namespace":
		return p.Namespace, nil
	case "metadata.uid":
		return string(p.UID), nil
	case "spec.nodeName":
		return r.k.e.NodeName, nil
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName, nil
	case "status.podIP":
		return r.ip(), nil
	case "status.hostIP":
		return r.k.e.net.gateway.String(), nil
	}
	if k, ok := strings.CutPrefix(path, "metadata.labels['"); ok {
		return p.Labels[strings.TrimSuffix(k, "']")], nil
	}
	if k, ok := strings.CutPrefix(path, "metadata.annotations['"); ok {
		return p.Annotations[strings.TrimSuffix(k, "']")], nil
	}
	return "", fmt.Errorf("field %q is not supported by kubeenv", path)
}

// expand replaces $(NAME) with the value of a variable defined in vars,
// leaves unknown references as they are and turns $$ into $.
func expand(s string, vars []envVar) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		if s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		end := strings.IndexByte(s[i:], ')')
		if s[i+1] != '(' || end < 0 {
			b.WriteByte(s[i])
			continue
		}
		name, found := s[i+2:i+end], false
		for j := len(vars) - 1; j >= 0 && !found; j-- {
			if vars[j].name == name {
				b.WriteString(vars[j].value)
				found = true
			}
		}
		if !found {
			b.WriteString(s[i : i+end+1])
		}
		i += end
	}
	return b.String()
}
