package kubeenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// randomID returns 4 hex digits that tell this Env's links, namespaces
// and Node apart from another Env's on the same machine.
func randomID() string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ipCmd runs ip with args and returns an error carrying its output.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// bridge is the pod network: a Linux bridge with the first address of a
// private /24, onto which every pod's veth pair is plugged; the host
// reaches every pod IP through it.
type bridge struct {
	id, name string
	subnet   *net.IPNet
	gateway  net.IP

	mu   sync.Mutex
	used map[byte]bool // last octets taken by pods
}

// ownersDir holds one file per Env on this machine, named by its id and
// holding the pid of the test process that owns it, so that the links and
// namespaces of a test process that died without Stop can be found and
// removed (sweepStale).
const ownersDir = "/run/kubeenv"

// newBridge creates the bridge for Env id on a /24 of 10.0.0.0/8 that no
// interface of this machine is on, after sweeping the leftovers of dead
// test processes.
func newBridge(id string) (*bridge, error) {
	sweepStale()
	if err := os.MkdirAll(ownersDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(ownersDir, id), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	subnet, err := freeSubnet()
	if err != nil {
		return nil, err
	}
	b := &bridge{id: id, name: "kbr" + id, subnet: subnet, used: map[byte]bool{}}
	b.gateway = ipAt(subnet, 1)
	ones, _ := subnet.Mask.Size()
	if err := ipCmd("link", "add", b.name, "type", "bridge"); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"addr", "add", fmt.Sprintf("%s/%d", b.gateway, ones), "dev", b.name},
		{"link", "set", b.name, "up"},
	} {
		if err := ipCmd(args...); err != nil {
			_ = ipCmd("link", "del", b.name)
			return nil, err
		}
	}
	return b, nil
}

// freeSubnet picks a /24 in 10.100.0.0-10.199.255.0 that overlaps no
// address of this machine's interfaces.
func freeSubnet() (*net.IPNet, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	for range 64 {
		r := make([]byte, 2)
		_, _ = rand.Read(r)
		_, subnet, _ := net.ParseCIDR(fmt.Sprintf("10.%d.%d.0/24", 100+int(r[0])%100, r[1]))
		clash := false
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && (n.Contains(subnet.IP) || subnet.Contains(n.IP)) {
				clash = true
			}
		}
		if !clash {
			return subnet, nil
		}
	}
	return nil, fmt.Errorf("no free /24 in 10.100.0.0/14")
}

func ipAt(subnet *net.IPNet, last byte) net.IP {
	ip := make(net.IP, 4)
	copy(ip, subnet.IP.To4())
	ip[3] = last
	return ip
}

// remove deletes the bridge (after the pods' namespaces are gone) and its
// owner file.
func (b *bridge) remove() error {
	err := ipCmd("link", "del", b.name)
	_ = os.Remove(filepath.Join(ownersDir, b.id))
	return err
}

// sweepStale removes the namespaces, links and /etc/netns directories of
// every Env whose owning test process no longer runs.
func sweepStale() {
	owners, _ := os.ReadDir(ownersDir)
	for _, o := range owners {
		b, err := os.ReadFile(filepath.Join(ownersDir, o.Name()))
		pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || perr != nil || syscall.Kill(pid, 0) == nil {
			continue
		}
		removeEnvNet(o.Name())
		_ = os.Remove(filepath.Join(ownersDir, o.Name()))
	}
}

// removeEnvNet removes what the Env with that id made in the network.
func removeEnvNet(id string) {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if name, _, _ := strings.Cut(line, " "); strings.HasPrefix(name, "kubeenv-"+id+"-") {
			_ = ipCmd("netns", "del", name)
		}
	}
	out, _ = exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if name == "kbr"+id || strings.HasPrefix(name, "kv"+id) {
			_ = ipCmd("link", "del", name)
		}
	}
	dirs, _ := filepath.Glob(filepath.Join("/etc/netns", "kubeenv-"+id+"-*"))
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}

// podNet is one pod's network namespace, its address and its hosts file.
type podNet struct {
	ns, veth string
	ip       net.IP
	last     byte

	mu       sync.Mutex
	hosts    string // last content written to the hosts file
	hostsLen int    // the file's length
}

// attach creates a network namespace for a pod with a veth pair onto the
// bridge and the next free address of the subnet, and the
// /etc/netns/<ns>/hosts and resolv.conf that `ip netns exec` mounts over
// the ones in /etc.
func (b *bridge) attach() (*podNet, error) {
	b.mu.Lock()
	var last byte
	for i := byte(2); i < 255; i++ {
		if !b.used[i] {
			last = i
			b.used[i] = true
			break
		}
	}
	b.mu.Unlock()
	if last == 0 {
		return nil, fmt.Errorf("pod network %s is full", b.subnet)
	}
	p := &podNet{
		ns:   fmt.Sprintf("kubeenv-%s-%d", b.id, last),
		veth: fmt.Sprintf("kv%s%d", b.id, last),
		ip:   ipAt(b.subnet, last), last: last,
	}
	ones, _ := b.subnet.Mask.Size()
	steps := [][]string{
		{"netns", "add", p.ns},
		{"link", "add", p.veth, "type", "veth", "peer", "name", p.veth + "p"},
		{"link", "set", p.veth, "master", b.name, "up"},
		{"link", "set", p.veth + "p", "netns", p.ns},
		{"-n", p.ns, "link", "set", p.veth + "p", "name", "eth0"},
		{"-n", p.ns, "addr", "add", fmt.Sprintf("%s/%d", p.ip, ones), "dev", "eth0"},
		{"-n", p.ns, "link", "set", "eth0", "up"},
		{"-n", p.ns, "link", "set", "lo", "up"},
		{"-n", p.ns, "route", "add", "default", "via", b.gateway.String()},
	}
	if err := os.MkdirAll(p.etcDir(), 0o755); err != nil {
		b.detach(p)
		return nil, err
	}
	p.hosts = "127.0.0.1 localhost\n"
	p.hostsLen = len(p.hosts)
	if err := os.WriteFile(p.hostsPath(), []byte(p.hosts), 0o644); err != nil {
		b.detach(p)
		return nil, err
	}
	// No DNS server is reachable from a pod: a name not in its hosts file
	// fails at once (nothing listens on the pod's own loopback) instead of
	// waiting for the host's resolver.
	if err := os.WriteFile(filepath.Join(p.etcDir(), "resolv.conf"), []byte("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		b.detach(p)
		return nil, err
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			b.detach(p)
			return nil, err
		}
	}
	return p, nil
}

// detach deletes the pod's namespace (and with it the veth pair), its
// /etc/netns directory, and frees its address.
func (b *bridge) detach(p *podNet) {
	_ = ipCmd("netns", "del", p.ns)
	_ = ipCmd("link", "del", p.veth) // gone with the namespace unless it never moved
	_ = os.RemoveAll(p.etcDir())
	b.mu.Lock()
	delete(b.used, p.last)
	b.mu.Unlock()
}

func (p *podNet) etcDir() string    { return filepath.Join("/etc/netns", p.ns) }
func (p *podNet) hostsPath() string { return filepath.Join(p.etcDir(), "hosts") }

// writeHosts gives the pod's hosts file the content, if it changed. `ip
// netns exec` bind-mounts the file itself, so it must change in place (a
// renamed new file would not be seen by processes already running), and a
// reader must never find it empty, as it would between a truncation and
// the write: so it is overwritten in one write from the start and never
// truncated, the new content padded with blank lines to the old length.
func (p *podNet) writeHosts(content string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if content == p.hosts {
		return nil
	}
	f, err := os.OpenFile(p.hostsPath(), os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	buf := content + strings.Repeat("\n", max(0, p.hostsLen-len(content)))
	_, err = f.WriteAt([]byte(buf), 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		p.hosts, p.hostsLen = content, len(buf)
	}
	return err
}
