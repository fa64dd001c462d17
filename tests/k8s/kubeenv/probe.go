package kubeenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probe runs the container's readiness probe while the process runs (ctx)
// and sets its readiness from it with the spec's thresholds and period; a
// container without a readiness probe is ready while it runs. Liveness and
// startup probes are not run.
func (c *container) probe(ctx context.Context) {
	p := c.spec.ReadinessProbe
	if p == nil {
		c.set(func() { c.ready = true })
		return
	}
	period := seconds(p.PeriodSeconds, 10)
	success, failure := max(p.SuccessThreshold, 1), max(p.FailureThreshold, 3)
	delay := time.Duration(p.InitialDelaySeconds) * time.Second
	var ok, bad int32
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = period
		err := c.probeOnce(ctx, p)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			ok, bad = ok+1, 0
		} else {
			ok, bad = 0, bad+1
		}
		switch {
		case ok == success:
			c.set(func() { c.ready = true })
		case bad == failure:
			c.set(func() { c.ready, c.message = false, "readiness probe: "+err.Error() })
		}
	}
}

func seconds(n, def int32) time.Duration {
	if n <= 0 {
		n = def
	}
	return time.Duration(n) * time.Second
}

// probeOnce runs one TCP, HTTP or exec probe against the pod.
func (c *container) probeOnce(ctx context.Context, p *corev1.Probe) error {
	timeout := seconds(p.TimeoutSeconds, 1)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host := c.r.ip()
	switch {
	case p.TCPSocket != nil:
		if p.TCPSocket.Host != "" {
			host = p.TCPSocket.Host
		}
		port, err := c.r.port(p.TCPSocket.Port)
		if err != nil {
			return err
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	case p.HTTPGet != nil:
		return c.r.httpProbe(ctx, host, p.HTTPGet)
	case p.Exec != nil:
		if len(p.Exec.Command) == 0 {
			return fmt.Errorf("exec probe without a command")
		}
		argv0, err := resolveCommand(p.Exec.Command[0], c.bin)
		if err != nil {
			return err
		}
		args := append([]string{"netns", "exec", c.r.net.ns, argv0}, p.Exec.Command[1:]...)
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	return fmt.Errorf("kubeenv runs only TCP, HTTP and exec probes")
}

func (r *podRun) httpProbe(ctx context.Context, host string, g *corev1.HTTPGetAction) error {
	if g.Host != "" {
		host = g.Host
	}
	port, err := r.port(g.Port)
	if err != nil {
		return err
	}
	scheme := "http"
	if g.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), g.Path), nil)
	if err != nil {
		return err
	}
	for _, h := range g.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	client := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // as the kubelet does
	}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", g.Path, resp.Status)
	}
	return nil
}

// port resolves a port number or the name of a port of the pod's
// containers.
func (r *podRun) port(p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, c := range r.pod.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				return int(cp.ContainerPort), nil
			}
		}
	}
	return 0, fmt.Errorf("no container port named %q", p.StrVal)
}
