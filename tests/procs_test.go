package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

// A procCluster is one cluster of `cleave node` processes and one `cleave
// router` (a meta group of one), started directly rather than by `cleave
// up`, so that a test can put every node in its own network namespace,
// wipe a node's disk and replace it without a supervisor restarting it
// behind the test's back. Its deployment (d) serves the same helpers as a
// `cleave up` one: dial, status, cli, waitLeaders, runSchedule.
type procCluster struct {
	t         testing.TB
	dir       string
	lab       *netLab // nil: every process on loopback
	retention uint64
	d         *deployment
	router    *proc
	pool      *rpc.Pool

	mu    sync.Mutex
	nodes map[uint64]*procNode
}

// proc is one child process and where its output goes.
type proc struct {
	name string
	argv []string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// procNode is one storage node of a procCluster.
type procNode struct {
	proc
	id   uint64
	addr string // HOST:PORT of its client listener
	peer string // HOST:PORT of its peer listener
	data string
	ns   string // its network namespace, "" on loopback
	ip   string // its address in the lab, "" on loopback
}

const clusterID = "c1"

// startProcCluster starts n nodes (ids 1..n) and a router. With lab set,
// each node runs in its own namespace of the lab.
func startProcCluster(t testing.TB, n int, lab *netLab, retention uint64) *procCluster {
	t.Helper()
	pc := &procCluster{t: t, dir: t.TempDir(), lab: lab, retention: retention, nodes: map[uint64]*procNode{},
		pool: rpc.NewPool(rpc.DialConfig{Client: "test"})}
	t.Cleanup(pc.stop)
	var peers []string
	for id := uint64(1); id <= uint64(n); id++ {
		nd := pc.newNode(id)
		pc.nodes[id] = nd
		peers = append(peers, nd.peerFlag())
	}
	for id := uint64(1); id <= uint64(n); id++ {
		nd := pc.nodes[id]
		nd.argv = pc.nodeArgv(nd, strings.Join(peers, ","), false)
		pc.start(&nd.proc)
	}
	raddr, rpeer := freeAddr(t), freeAddr(t)
	if lab != nil {
		raddr = lab.hostIP + ":" + strconv.Itoa(freePort(t))
		rpeer = lab.hostIP + ":" + strconv.Itoa(freePort(t))
	}
	var members []string
	for id := uint64(1); id <= uint64(n); id++ {
		members = append(members, fmt.Sprintf("%d@%s/%s", id, pc.nodes[id].addr, pc.nodes[id].peer))
	}
	pc.router = &proc{name: "router", argv: []string{cleaveBin, "router", "--id", "r1", "--listen", raddr,
		"--data", filepath.Join(pc.dir, "router"), "--raft-id", "1", "--peers", "1=" + raddr + "/" + rpeer,
		"--cluster", clusterID + "=" + strings.Join(members, ","), "--report-pid", "--insecure-peer"}}
	pc.start(pc.router)
	pc.d = &deployment{dir: pc.dir, router: raddr, routers: []string{raddr}}
	pc.waitRouter(60 * time.Second)
	pc.d.waitLeaders(t, 60*time.Second)
	return pc
}

// waitRouter waits until the router answers status.
func (pc *procCluster) waitRouter(timeout time.Duration) {
	pc.t.Helper()
	eventually.Holds(pc.t, timeout, "router serving (logs in "+pc.dir+")", func() error {
		out, err := pc.d.cli(pc.t, nil, "status", "-o", "json")
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	})
}

// newNode chooses the address and directories of node id.
func (pc *procCluster) newNode(id uint64) *procNode {
	nd := &procNode{id: id, data: filepath.Join(pc.dir, fmt.Sprintf("n%d", id))}
	nd.name = fmt.Sprintf("node%d", id)
	if pc.lab != nil {
		nd.ns, nd.ip = pc.lab.addNode(pc.t, id)
		nd.addr, nd.peer = nd.ip+":7000", nd.ip+":7001"
	} else {
		nd.addr, nd.peer = freeAddr(pc.t), freeAddr(pc.t)
	}
	return nd
}

// peerFlag is the node's entry in a --peers list: ID=CLIENT/PEER.
func (nd *procNode) peerFlag() string { return fmt.Sprintf("%d=%s/%s", nd.id, nd.addr, nd.peer) }

func (pc *procCluster) nodeArgv(nd *procNode, peers string, join bool) []string {
	argv := []string{cleaveBin, "node", "--id", strconv.FormatUint(nd.id, 10), "--cluster", clusterID,
		"--listen", nd.addr, "--peer-listen", nd.peer, "--peers", peers, "--data", nd.data, "--report-pid",
		"--log-retention", strconv.FormatUint(pc.retention, 10), "--insecure-peer"}
	if join {
		argv = append(argv, "--join")
	} else {
		argv = append(argv, "--range", "0-18446744073709551616")
	}
	if nd.ns != "" {
		argv = append([]string{"ip", "netns", "exec", nd.ns}, argv...)
	}
	return argv
}

// start runs p with its output appended to its log file.
func (pc *procCluster) start(p *proc) {
	pc.t.Helper()
	if p.log == "" {
		p.log = filepath.Join(pc.dir, p.name+".log")
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		pc.t.Fatal(err)
	}
	p.cmd = exec.Command(p.argv[0], p.argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		pc.t.Fatalf("start %s: %v", p.name, err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); f.Close(); close(done) }(p.cmd, p.done)
}

// kill sends SIGKILL to p and waits for it to exit.
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGCONT) // a paused process dies too
	p.cmd.Process.Kill()
	<-p.done
}

// stop sends SIGTERM to p and waits for it to exit, at most grace; then it
// kills p.
func (p *proc) stop(grace time.Duration) {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill()
	}
}

// alive reports whether p runs.
func (p *proc) alive() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// restart starts node id again with the same arguments (and disk).
func (pc *procCluster) restart(id uint64) {
	pc.mu.Lock()
	nd := pc.nodes[id]
	pc.mu.Unlock()
	if !nd.alive() {
		pc.start(&nd.proc)
	}
}

// node returns node id.
func (pc *procCluster) node(id uint64) *procNode {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.nodes[id]
}

// forget drops node id (killed, replaced) from the cluster's nodes.
func (pc *procCluster) forget(id uint64) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	delete(pc.nodes, id)
}

// ids returns the ids of the nodes started, in order.
func (pc *procCluster) ids() []uint64 {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var ids []uint64
	for id := range pc.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// joinNode starts node id empty with --join; peers lists the current
// members as ID=CLIENT/PEER.
func (pc *procCluster) joinNode(id uint64, peers []string) *procNode {
	pc.t.Helper()
	nd := pc.newNode(id)
	nd.argv = pc.nodeArgv(nd, strings.Join(append([]string{nd.peerFlag()}, peers...), ","), true)
	pc.mu.Lock()
	pc.nodes[id] = nd
	pc.mu.Unlock()
	pc.start(&nd.proc)
	return nd
}

// nodeStatus asks node addr directly for its status; with checksum set
// it includes the state checksum.
func (pc *procCluster) nodeStatus(ctx context.Context, addr string, checksum bool) (*wire.NodeStatus, error) {
	return askStatus(ctx, pc.pool, addr, checksum)
}

// leader returns the id of the node that answers as leader, waiting for
// one until timeout.
func (pc *procCluster) leader(timeout time.Duration) uint64 {
	pc.t.Helper()
	var lead uint64
	eventually.Holds(pc.t, timeout, fmt.Sprintf("a leader among nodes %v", pc.ids()), func() error {
		var seen []string
		lead, seen = pc.leaderAmong(pc.ids(), time.Second)
		return eventually.True(lead != 0, "%s", strings.Join(seen, "; "))
	})
	return lead
}

// leaderAmong asks each running node of ids for its role, waiting at most
// wait for each, and returns the first that answers as leader, or 0 and
// what each node said.
func (pc *procCluster) leaderAmong(ids []uint64, wait time.Duration) (uint64, []string) {
	var seen []string
	for _, id := range ids {
		nd := pc.node(id)
		if !nd.alive() {
			seen = append(seen, fmt.Sprintf("%d: not running", id))
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		st, err := pc.nodeStatus(ctx, nd.addr, false)
		cancel()
		switch {
		case err != nil:
			seen = append(seen, fmt.Sprintf("%d: %v", id, err))
		case st.Role == "leader":
			return id, nil
		default:
			seen = append(seen, fmt.Sprintf("%d: %s", id, st.Role))
		}
	}
	return 0, seen
}

// follower returns a random member other than the leader, waiting at most
// timeout for a leader.
func (pc *procCluster) follower(rng *rand.Rand, timeout time.Duration) uint64 {
	lead := pc.leader(timeout)
	var ids []uint64
	for _, id := range pc.ids() {
		if id != lead {
			ids = append(ids, id)
		}
	}
	return ids[rng.IntN(len(ids))]
}

// wipe kills node id and deletes its disk, and returns it.
func (pc *procCluster) wipe(t testing.TB, id uint64) *procNode {
	t.Helper()
	nd := pc.node(id)
	nd.kill()
	if err := os.RemoveAll(nd.data); err != nil {
		t.Fatal(err)
	}
	return nd
}

// peersExcept lists every node but id as ID=CLIENT/PEER, the peers joinNode
// takes for a node that replaces id.
func (pc *procCluster) peersExcept(id uint64) []string {
	var peers []string
	for _, other := range pc.ids() {
		if other != id {
			peers = append(peers, pc.node(other).peerFlag())
		}
	}
	return peers
}

// stop kills every process and tears the lab down.
func (pc *procCluster) stop() {
	for _, id := range pc.ids() {
		pc.node(id).kill()
	}
	if pc.router != nil {
		pc.router.kill()
	}
	pc.pool.Close()
	if pc.t.Failed() {
		pc.t.Logf("process logs kept in %s (CLEAVE_KEEP=1 keeps them after the test)", pc.dir)
		if os.Getenv("CLEAVE_KEEP") != "" {
			keep := filepath.Join(os.TempDir(), "cleave-"+strings.ReplaceAll(pc.t.Name(), "/", "-"))
			os.RemoveAll(keep)
			exec.Command("cp", "-a", pc.dir, keep).Run()
			pc.t.Logf("copied to %s", keep)
		}
	}
}

// freePort returns a TCP port that was free on loopback a moment ago.
func freePort(t testing.TB) int {
	a := freeAddr(t)
	_, p, _ := strings.Cut(a, ":")
	n, _ := strconv.Atoi(p)
	return n
}
