package tests

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// A netLab is a private network for one test: a Linux bridge in the root
// namespace (the test, its clients and the router live there, on the
// bridge's address) and one network namespace per node, each joined to the
// bridge by a veth pair and holding one address. Partitions are real at the
// socket level: a cut between two hosts is a pair of blackhole routes, one
// in each host's namespace, so packets between them are dropped while
// every other link works; a healed cut deletes the routes. Existing TCP
// connections stall and time out like on a real broken link.
//
// It needs root and `ip netns`; newNetLab skips the test, saying why,
// where that fails. Names carry the test process id, so labs of parallel
// test runs on one machine do not collide; Cleanup deletes everything.
type netLab struct {
	prefix string // e.g. "10.77.3" for 10.77.3.0/24
	bridge string
	hostIP string // the bridge's address: the root namespace's host in the lab
	tag    string

	mu   sync.Mutex
	ns   map[uint64]string // node id → namespace
	ips  map[uint64]string // node id → address
	cuts map[[2]string]bool
}

// hostRoot names the root namespace in cut and heal.
const hostRoot = "host"

// newNetLab creates the bridge or skips t, saying why.
func newNetLab(t testing.TB) *netLab {
	t.Helper()
	l, why := openNetLab(t)
	if l == nil {
		t.Skip(why)
	}
	return l
}

// openNetLab creates the bridge, or returns nil and why it cannot.
func openNetLab(t testing.TB) (*netLab, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil, "network partitions need root (ip netns); skipping"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, "network partitions need the ip command (iproute2); skipping"
	}
	pid := os.Getpid()
	labSeq.Lock()
	labSeq.n++
	seq := labSeq.n
	labSeq.Unlock()
	l := &netLab{
		tag:    fmt.Sprintf("%x%x", pid%0x10000, seq%16),
		prefix: fmt.Sprintf("10.%d.%d", 100+(pid/250)%100, (pid+seq*37)%250+1),
		ns:     map[uint64]string{}, ips: map[uint64]string{}, cuts: map[[2]string]bool{},
	}
	l.bridge = "clb" + l.tag
	l.hostIP = l.prefix + ".1"
	probe := "clp" + l.tag
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		return nil, fmt.Sprintf("ip netns add failed (%v: %s); network partitions need network namespaces; skipping", err, strings.TrimSpace(string(out)))
	}
	exec.Command("ip", "netns", "del", probe).Run()
	t.Cleanup(l.close)
	l.run(t, "link", "add", l.bridge, "type", "bridge")
	l.run(t, "addr", "add", l.hostIP+"/24", "dev", l.bridge)
	l.run(t, "link", "set", l.bridge, "up")
	return l, ""
}

var labSeq struct {
	sync.Mutex
	n int
}

// run runs `ip args...` and fails t on an error.
func (l *netLab) run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// addNode creates node id's namespace and returns it and the node's address.
func (l *netLab) addNode(t testing.TB, id uint64) (ns, ip string) {
	t.Helper()
	ns = fmt.Sprintf("cln%s-%d", l.tag, id)
	ip = fmt.Sprintf("%s.%d", l.prefix, 10+id)
	veth := fmt.Sprintf("clv%s%d", l.tag, id)
	l.run(t, "netns", "add", ns)
	l.mu.Lock()
	l.ns[id], l.ips[id] = ns, ip
	l.mu.Unlock()
	l.run(t, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
	l.run(t, "link", "set", veth, "master", l.bridge, "up")
	l.run(t, "-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
	l.run(t, "-n", ns, "link", "set", "eth0", "up")
	l.run(t, "-n", ns, "link", "set", "lo", "up")
	return ns, ip
}

// host returns the namespace ("" for the root one) and address of a host:
// a node id as a decimal string, or hostRoot.
func (l *netLab) host(h string) (ns, ip string) {
	if h == hostRoot {
		return "", l.hostIP
	}
	var id uint64
	fmt.Sscan(h, &id)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ns[id], l.ips[id]
}

func nodeHost(id uint64) string { return fmt.Sprint(id) }

// route adds or deletes a blackhole route to ip in namespace ns.
func (l *netLab) route(t testing.TB, verb, ns, ip string) {
	args := []string{"route", verb, "blackhole", ip + "/32"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil && verb == "add" {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// cut drops every packet between hosts a and b (node ids as strings, or
// hostRoot), both ways.
func (l *netLab) cut(t testing.TB, a, b string) {
	t.Helper()
	l.mu.Lock()
	key := [2]string{min(a, b), max(a, b)}
	done := l.cuts[key]
	l.cuts[key] = true
	l.mu.Unlock()
	if done {
		return
	}
	nsA, ipA := l.host(a)
	nsB, ipB := l.host(b)
	l.route(t, "add", nsA, ipB)
	l.route(t, "add", nsB, ipA)
}

// isolate cuts node id from every other node and, with fromHost, from the
// root namespace (the router and the clients) too.
func (l *netLab) isolate(t testing.TB, id uint64, others []uint64, fromHost bool) {
	t.Helper()
	for _, o := range others {
		if o != id {
			l.cut(t, nodeHost(id), nodeHost(o))
		}
	}
	if fromHost {
		l.cut(t, nodeHost(id), hostRoot)
	}
}

// heal removes every cut.
func (l *netLab) heal(t testing.TB) {
	l.mu.Lock()
	cuts := l.cuts
	l.cuts = map[[2]string]bool{}
	l.mu.Unlock()
	for k := range cuts {
		nsA, ipA := l.host(k[0])
		nsB, ipB := l.host(k[1])
		l.route(t, "del", nsA, ipB)
		l.route(t, "del", nsB, ipA)
	}
}

// close deletes the namespaces (their veth ends go with them), any
// blackhole route left in the root namespace, and the bridge.
func (l *netLab) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.cuts {
		for _, h := range k {
			if h != hostRoot {
				continue
			}
			other := k[0]
			if other == hostRoot {
				other = k[1]
			}
			var id uint64
			fmt.Sscan(other, &id)
			exec.Command("ip", "route", "del", "blackhole", l.ips[id]+"/32").Run()
		}
	}
	for _, ns := range l.ns {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	exec.Command("ip", "link", "del", l.bridge).Run()
}
