package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cleavefs/cleave/internal/ports"
	"github.com/cleavefs/cleave/loadgen"
	"github.com/cleavefs/cleave/up"
)

// deployment is one `cleave up` under test.
type deployment struct {
	cleave string
	dir    string
	router string
	cmd    *exec.Cmd
	done   chan error
	roles  map[int]string // node pid to raft role, as settle last saw them
}

// startDeployment runs `cleave up` with n clusters in a fresh directory
// under the output directory and waits until it says it is up.
func startDeployment(ctx context.Context, cfg config, n int) (*deployment, error) {
	addr, err := ports.Free(1)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "cleave-scale-")
	if err != nil {
		return nil, err
	}
	d := &deployment{cleave: cfg.cleave, dir: filepath.Join(dir, "data"), router: addr[0], done: make(chan error, 1)}
	d.cmd = exec.Command(cfg.cleave, "up", "--data", d.dir, "--listen", d.router, "--clusters", fmt.Sprint(n))
	log, err := os.Create(filepath.Join(cfg.out, fmt.Sprintf("up-%d.log", n)))
	if err != nil {
		return nil, err
	}
	d.cmd.Stderr = log
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s up: %w", cfg.cleave, err)
	}
	upc := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		said := false
		for sc.Scan() {
			if !said && strings.Contains(sc.Text(), "cleave is up") {
				said = true
				upc <- true
			}
		}
	}()
	go func() { d.done <- d.cmd.Wait(); log.Close() }()
	select {
	case <-upc:
		return d, nil
	case err := <-d.done:
		return nil, fmt.Errorf("cleave up exited before it was up: %v (log: %s)", err, log.Name())
	case <-time.After(2 * time.Minute):
		d.stop()
		return nil, fmt.Errorf("cleave up was not up after 2 minutes (log: %s)", log.Name())
	case <-ctx.Done():
		d.stop()
		return nil, ctx.Err()
	}
}

// stop ends the deployment (SIGTERM, then SIGKILL) and removes its data.
func (d *deployment) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
	os.RemoveAll(filepath.Dir(d.dir))
}

// routers returns every router's client address, from up.json.
func (d *deployment) routers() (string, error) {
	t, err := up.LoadTopology(d.dir)
	if err != nil {
		return "", err
	}
	return strings.Join(t.RouterAddrs(), ","), nil
}

// splitAll splits every cluster of the deployment once, one after the
// other, each with `cleave split` (which waits until the split is cleaned).
func (d *deployment) splitAll(ctx context.Context) error {
	t, err := up.LoadTopology(d.dir)
	if err != nil {
		return err
	}
	var ids []string
	for _, c := range t.Clusters {
		ids = append(ids, c.ID)
	}
	for _, id := range ids {
		fmt.Printf("splitting %s\n", id)
		cmd := exec.CommandContext(ctx, d.cleave, "split", id, "--data", d.dir, "--router", d.router, "--timeout", "10m")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("cleave split %s: %v\n%s", id, err, out)
		}
	}
	return nil
}

// status is the part of `cleave status -o json` the benchmark reads.
type status struct {
	Clusters []struct {
		ID     string `json:"id"`
		Leader string `json:"leader"`
		Nodes  []struct {
			PID        int      `json:"pid"`
			Role       string   `json:"role"`
			Error      string   `json:"error"`
			Conditions []string `json:"conditions"`
		} `json:"nodes"`
	} `json:"clusters"`
	Splits []struct {
		ID    uint64 `json:"id"`
		Phase string `json:"phase"`
	} `json:"splits"`
}

// status asks a router for the deployment's status.
func (d *deployment) status(ctx context.Context) (*status, error) {
	cmd := exec.CommandContext(ctx, d.cleave, "status", "-o", "json", "--router", d.router, "--timeout", "10s")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("cleave status: %w", err)
	}
	var st status
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("cleave status's JSON: %w", err)
	}
	return &st, nil
}

// unsettled says what keeps st from being ready to measure: a cluster
// without a leader, a node not reached or under a condition (write stall,
// no space), a split not cleaned yet; "" if none.
func (st *status) unsettled() string {
	for _, c := range st.Clusters {
		if c.Leader == "" {
			return c.ID + " has no leader"
		}
		for _, n := range c.Nodes {
			if why := strings.TrimSpace(n.Error + " " + strings.Join(n.Conditions, " ")); why != "" {
				return fmt.Sprintf("%s node pid %d: %s", c.ID, n.PID, why)
			}
		}
	}
	for _, s := range st.Splits {
		if s.Phase != "cleaned" {
			return fmt.Sprintf("split %d is %s", s.ID, s.Phase)
		}
	}
	return ""
}

// roles maps each node's pid to its raft role ("leader", "follower", ...).
func (st *status) roles() map[int]string {
	out := map[int]string{}
	for _, c := range st.Clusters {
		for _, n := range c.Nodes {
			out[n.PID] = n.Role
		}
	}
	return out
}

// settle waits, up to max, until the status is settled and then until no
// node is busy on its own: every node used under half its quota over a
// settleWindow with no load, so a split's cleanup and the compactions it
// caused are over. The CPU windows ask no status: a node's STATUS starts a
// scan of its state for the usage figures, which would keep it busy. It
// keeps the nodes' roles for measure and returns how long it waited and
// what was still not settled when max ran out ("" if it settled).
func (d *deployment) settle(ctx context.Context, quota float64, max time.Duration) (time.Duration, string) {
	start := time.Now()
	why := "not checked"
	for time.Since(start) < max && ctx.Err() == nil {
		st, err := d.status(ctx)
		if err != nil {
			why = err.Error()
		} else if why = st.unsettled(); why == "" {
			d.roles = st.roles()
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	for why == "" || strings.HasPrefix(why, busyPrefix) {
		if time.Since(start) >= max || ctx.Err() != nil {
			break
		}
		if why = d.busiestNode(ctx, quota); why == "" {
			break
		}
	}
	return time.Since(start), why
}

// busyPrefix starts what busiestNode says of a busy node.
const busyPrefix = "node pid "

// settleWindow is how long settle watches the nodes' CPU at a time.
const settleWindow = 3 * time.Second

// busiestNode measures every node's CPU over settleWindow and names the
// busiest if it used half its quota or more; "" if none did.
func (d *deployment) busiestNode(ctx context.Context, quota float64) string {
	before := map[int]loadgen.ProcStat{}
	for p := range d.roles {
		if s, err := loadgen.ReadProcStat(p); err == nil {
			before[p] = s
		}
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err().Error()
	case <-time.After(settleWindow):
	}
	wall := time.Since(t0).Seconds()
	worst, worstPID := 0.0, 0
	for p, b := range before {
		a, err := loadgen.ReadProcStat(p)
		if err != nil {
			continue
		}
		cores := float64(a.UTime+a.STime-b.UTime-b.STime) / clkTck / wall
		if cores > worst {
			worst, worstPID = cores, p
		}
	}
	if worst >= quota/2 {
		return fmt.Sprintf(busyPrefix+"%d busy at %.0f%% of its quota with no load", worstPID, 100*worst/quota)
	}
	return ""
}

// clkTck is the kernel's clock ticks per second in /proc (USER_HZ).
const clkTck = 100
