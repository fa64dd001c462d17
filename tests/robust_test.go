package tests

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/wire"
)

// A fault is one thing done to a running deployment at the schedule's
// middle, and undone (if it can be) before the end.
type fault struct {
	name   string
	inject func(t *testing.T, d *deployment, rng *rand.Rand) (heal func())
}

// faults covers each kind the harness injects today: kill -9 of a leader,
// a follower and the router (cleave up restarts each), and SIGSTOP pauses.
var faults = []fault{
	{"kill-leader", func(t *testing.T, d *deployment, rng *rand.Rand) func() {
		signalNode(t, d, rng, true, syscall.SIGKILL)
		return nil
	}},
	{"kill-follower", func(t *testing.T, d *deployment, rng *rand.Rand) func() {
		signalNode(t, d, rng, false, syscall.SIGKILL)
		return nil
	}},
	{"kill-router", func(t *testing.T, d *deployment, rng *rand.Rand) func() {
		// The first router: the one every client is connected to.
		pid := routerPID(t, d, d.router)
		t.Logf("kill -9 router %s (pid %d)", d.router, pid)
		syscall.Kill(pid, syscall.SIGKILL)
		return nil
	}},
	{"pause-leader", func(t *testing.T, d *deployment, rng *rand.Rand) func() {
		pid := signalNode(t, d, rng, true, syscall.SIGSTOP)
		return func() { syscall.Kill(pid, syscall.SIGCONT) }
	}},
	{"pause-follower", func(t *testing.T, d *deployment, rng *rand.Rand) func() {
		pid := signalNode(t, d, rng, false, syscall.SIGSTOP)
		return func() { syscall.Kill(pid, syscall.SIGCONT) }
	}},
	{"kill-leaders-twice", func(t *testing.T, d *deployment, rng *rand.Rand) func() {
		signalNode(t, d, rng, true, syscall.SIGKILL)
		d.waitLeaders(t, 20*time.Second)
		signalNode(t, d, rng, true, syscall.SIGKILL)
		return nil
	}},
}

// signalNode sends sig to a random cluster's leader (or one of its
// followers) and returns the pid.
func signalNode(t *testing.T, d *deployment, rng *rand.Rand, leader bool, sig syscall.Signal) int {
	t.Helper()
	st := d.waitLeaders(t, 20*time.Second)
	c := st.Clusters[rng.IntN(len(st.Clusters))]
	var cands []wire.NodeStatus
	for _, n := range c.Nodes {
		if (n.Addr == c.Leader) == leader && n.PID > 0 {
			cands = append(cands, n)
		}
	}
	if len(cands) == 0 {
		t.Fatalf("no candidate to signal in %+v", c)
	}
	n := cands[rng.IntN(len(cands))]
	t.Logf("%s to node %d (%s of %s, pid %d)", map[syscall.Signal]string{syscall.SIGKILL: "SIGKILL", syscall.SIGSTOP: "SIGSTOP"}[sig], n.ID, map[bool]string{true: "leader", false: "follower"}[leader], c.ID, n.PID)
	if err := syscall.Kill(n.PID, sig); err != nil {
		t.Fatalf("signal %d: %v", n.PID, err)
	}
	return n.PID
}

// routerPID finds the router process of d listening on addr.
func routerPID(t *testing.T, d *deployment, addr string) int {
	t.Helper()
	want := filepath.Join(d.dir, "router")
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 1 && args[1] == "router" && strings.Contains(string(b), want) && slices.Contains(args, addr) {
			pids = append(pids, pid)
		}
	}
	if len(pids) != 1 {
		t.Fatalf("want one router process of %s on %s, found %v", d.dir, addr, pids)
	}
	return pids[0]
}

// recorder collects a history of operations for porcupine.
type recorder struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
	errs  []string // the first few client-visible errors, for failure messages

	// patience is each operation's deadline; zero means faultPatience.
	// Tests asserting that clients see no error give the SDK's default
	// (sdkPatience): a stall shorter than that is what a user waits out.
	patience time.Duration
}

const (
	faultPatience = 3 * time.Second  // fault schedules: an operation left unanswered counts as unknown
	sdkPatience   = 10 * time.Second // the client SDK's default call deadline
)

// keptErrors bounds recorder.errs.
const keptErrors = 5

// failed records a client-visible error of op on path after took.
func (r *recorder) failed(in fsOp, path string, took time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) < keptErrors {
		r.errs = append(r.errs, fmt.Sprintf("%s %s after %v: %v", in.Kind, path, took.Round(time.Millisecond), err))
	}
}

func (r *recorder) now() int64 { return int64(time.Since(r.start)) }

func (r *recorder) add(client int, in fsOp, call int64, out fsResult, ret int64) {
	if out.Unknown {
		ret = 1 << 62 // may take effect at any time after its call
	}
	r.mu.Lock()
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	r.mu.Unlock()
}

// readBack reads every key a schedule's clients use (f0..f3 in each of
// roots) through c as client id and records the reads: the history's
// final reads, which every acknowledged write must show. A read that
// fails fails t (when says after what).
func (r *recorder) readBack(t *testing.T, c *client.Client, id int, roots []string, when string) {
	t.Helper()
	for _, root := range roots {
		for i := range 4 {
			name := "f" + strconv.Itoa(i)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			call := r.now()
			b, err := c.Get(ctx, "/"+root+"/"+name)
			cancel()
			out := fsResult{Value: string(b)}
			if errors.Is(err, client.ErrNotFound) {
				out = fsResult{NotFound: true}
			} else if err != nil {
				t.Fatalf("final read of /%s/%s%s: %v", root, name, when, err)
			}
			r.add(id, fsOp{Kind: "get", Root: root, Name: name}, call, out, r.now())
		}
	}
}

// mkdirRoots creates the directory /root for each of roots through c.
func mkdirRoots(t *testing.T, c *client.Client, roots []string) {
	t.Helper()
	for _, root := range roots {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := c.MkdirAll(ctx, "/"+root)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// do runs one random operation on root and records it.
func do(ctx context.Context, c *client.Client, rec *recorder, id int, rng *rand.Rand, roots []string, seq *int) {
	doOp(ctx, c, rec, id, rng, roots, seq, nil)
}

// doOp is do; in the roots appendRoots names, half of the puts are
// appends instead (an append keeps the bytes of the file's last, partial
// block).
func doOp(ctx context.Context, c *client.Client, rec *recorder, id int, rng *rand.Rand, roots []string, seq *int, appendRoots map[string]bool) {
	root := roots[rng.IntN(len(roots))]
	name := "f" + strconv.Itoa(rng.IntN(4))
	path := "/" + root + "/" + name
	in := fsOp{Root: root, Name: name}
	var out fsResult
	patience := rec.patience
	if patience == 0 {
		patience = faultPatience
	}
	ctx, cancel := context.WithTimeout(ctx, patience)
	defer cancel()
	call := rec.now()
	var err error
	switch k := rng.IntN(10); {
	case appendRoots[root] && k < 2:
		*seq++
		in.Kind, in.Value = "append", fmt.Sprintf("a%d-%d;", id, *seq)
		_, err = c.Append(ctx, path, []byte(in.Value))
	case k < 4:
		*seq++
		in.Kind, in.Value = "put", fmt.Sprintf("c%d-%d", id, *seq)
		_, err = c.Put(ctx, path, []byte(in.Value))
	case k < 7:
		in.Kind = "get"
		var b []byte
		b, err = c.Get(ctx, path)
		out.Value = string(b)
	case k < 8:
		in.Kind = "rm"
		err = c.Remove(ctx, path)
	default:
		in.Kind, in.Name = "ls", ""
		var ents []client.Stat
		ents, err = c.List(ctx, "/"+root)
		for _, e := range ents {
			out.Names = append(out.Names, e.Name)
		}
		sort.Strings(out.Names)
	}
	switch {
	case err == nil:
	case errors.Is(err, client.ErrNotFound) && (in.Kind == "get" || in.Kind == "rm"):
		out.NotFound = true
	default:
		out = fsResult{Unknown: true}
		rec.failed(in, path, time.Duration(rec.now()-call), err)
	}
	rec.add(id, in, call, out, rec.now())
}

// runSchedule drives clients against d for dur, injecting f in the middle,
// then reads every key once more, and returns the whole history.
func runSchedule(t *testing.T, d *deployment, f fault, seed uint64, dur time.Duration) []porcupine.Operation {
	return runScheduleRoots(t, d, f, seed, dur, 4)
}

// runScheduleRoots is runSchedule over nroots root directories (more roots:
// smaller porcupine partitions for long histories).
func runScheduleRoots(t *testing.T, d *deployment, f fault, seed uint64, dur time.Duration, nroots int) []porcupine.Operation {
	return runScheduleOpts(t, d, f, seed, dur, nroots, 0)
}

// scheduleRoot is the name of root directory i of schedule name.
func scheduleRoot(name string, seed uint64, i int) string {
	return fmt.Sprintf("lin-%s-%d-%d", name, seed%1000, i)
}

// runScheduleOpts is runScheduleRoots; in the first appendRoots roots the
// clients also append to files (doOp).
func runScheduleOpts(t *testing.T, d *deployment, f fault, seed uint64, dur time.Duration, nroots, appendRoots int) []porcupine.Operation {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	t.Logf("schedule %s, seed %d (rerun with CLEAVE_SEED=%d)", f.name, seed, seed)
	ctx := context.Background()
	c0 := d.dial(t)
	roots := make([]string, nroots)
	for i := range roots {
		roots[i] = scheduleRoot(f.name, seed, i)
	}
	mkdirRoots(t, c0, roots)
	appends := map[string]bool{}
	for _, r := range roots[:appendRoots] {
		appends[r] = true
	}
	rec := &recorder{start: time.Now()}
	const clients = 6
	stop := make(chan struct{})
	var wg sync.WaitGroup
	counts := make([]int, clients)
	for id := range clients {
		c := d.dial(t, directIfOdd(id)...)
		crng := rand.New(rand.NewPCG(seed+uint64(id)+1, 7))
		wg.Go(func() {
			seq := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				doOp(ctx, c, rec, id, crng, roots, &seq, appends)
				counts[id]++
			}
		})
	}
	// The schedule's three phases are spans of load (before the fault,
	// during it, after it heals), not waits for anything.
	time.Sleep(dur / 4)
	var heal func()
	if f.inject != nil {
		heal = f.inject(t, d, rng)
	}
	time.Sleep(dur / 2)
	if heal != nil {
		heal()
	}
	time.Sleep(dur / 4)
	close(stop)
	wg.Wait()

	// A final read of every key and listing, after the faults healed: every
	// acknowledged write must be there (as the model's last value).
	d.waitLeaders(t, 30*time.Second)
	rec.readBack(t, c0, clients, roots, " after healing")
	unknown := 0
	for _, op := range rec.ops {
		if op.Output.(fsResult).Unknown {
			unknown++
		}
	}
	t.Logf("%d operations (%d unknown), per client %v", len(rec.ops), unknown, counts)
	if len(rec.ops) < 100 {
		t.Errorf("only %d operations ran; the deployment made no progress", len(rec.ops))
	}
	return rec.ops
}

// checkHistory runs porcupine and returns its verdict; when the history is
// not linearizable it saves the visualization under testdata/out and
// returns its path.
func checkHistory(t *testing.T, name string, seed uint64, ops []porcupine.Operation) (porcupine.CheckResult, string) {
	t.Helper()
	model := fsModel.ToModel()
	// The plain check stops at the first illegal partition; the verbose one
	// (for the visualization) works through every partition, so it runs
	// only on failure and with a shorter budget.
	res := porcupine.CheckOperationsTimeout(model, ops, 60*time.Second)
	if res != porcupine.Illegal {
		return res, ""
	}
	_, info := porcupine.CheckOperationsVerbose(model, ops, 10*time.Second)
	dir := filepath.Join("testdata", "out", t.Name())
	os.MkdirAll(dir, 0o755)
	file := filepath.Join(dir, fmt.Sprintf("%s-seed-%d.html", name, seed))
	if err := porcupine.VisualizePath(model, info, file); err != nil {
		t.Logf("saving visualization: %v", err)
	}
	return res, file
}

// requireLinearizable fails the test unless porcupine accepts ops.
func requireLinearizable(t *testing.T, name string, seed uint64, ops []porcupine.Operation) {
	t.Helper()
	switch res, file := checkHistory(t, name, seed, ops); res {
	case porcupine.Ok:
		t.Logf("history of %d operations is linearizable", len(ops))
	case porcupine.Unknown:
		t.Logf("porcupine timed out on %d operations: linearizability not decided", len(ops))
	default:
		t.Fatalf("history NOT linearizable (seed %d); visualization in %s", seed, file)
	}
}

// TestRobustness runs each fault schedule against one deployment of its
// own (the faults kill and pause its processes), recording histories and
// checking them with porcupine.
func TestRobustness(t *testing.T) {
	skipInShortMode(t, "robustness schedules")
	d := ownDeployment(t)
	seed := scheduleSeed(t)
	dur := scheduleDuration(12 * time.Second)
	for i, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			ops := runSchedule(t, d, f, seed+uint64(i), dur)
			requireLinearizable(t, f.name, seed+uint64(i), ops)
			if f.name == "kill-router" {
				// One router of three dies: clients (given every router)
				// must see latency at most, never an error.
				for _, op := range ops {
					if op.Output.(fsResult).Unknown {
						t.Fatalf("a client saw an error while one of three routers was down: %+v", op.Input)
					}
				}
			}
		})
	}
}

// TestCheckerCatchesEarlyAck runs a deployment broken on purpose (leaders
// acknowledge writes before they commit, CLEAVE_UNSAFE_ACK_BEFORE_COMMIT)
// and requires the checker to reject its history: proof that the harness
// can fail.
func TestCheckerCatchesEarlyAck(t *testing.T) {
	skipInShortMode(t, "robustness schedules")
	d := ownDeploymentEnv(t, []string{"CLEAVE_UNSAFE_ACK_BEFORE_COMMIT=1"})
	seed := uint64(time.Now().UnixNano())
	var ops []porcupine.Operation
	for attempt := range 3 {
		ops = runSchedule(t, d, fault{name: "early-ack"}, seed+uint64(attempt), 3*time.Second)
		res, file := checkHistory(t, "early-ack", seed+uint64(attempt), ops)
		if res == porcupine.Illegal {
			t.Logf("the checker rejected the broken build's history of %d operations (seed %d); visualization in %s", len(ops), seed+uint64(attempt), file)
			return
		}
		t.Logf("attempt %d: history of %d operations passed (%v); trying again", attempt, len(ops), res)
	}
	t.Fatal("the checker accepted three histories of a store that acknowledges writes before committing them")
}
