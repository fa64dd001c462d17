package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/syncbuf"
	"github.com/cleavefs/cleave/internal/testcluster"
	"github.com/cleavefs/cleave/up"
	"github.com/cleavefs/cleave/wire"
)

// cleaveBin is the binary built once by TestMain.
var cleaveBin string

func TestMain(m *testing.M) {
	if runAttacker() {
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "cleave-tests-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cleaveBin = filepath.Join(dir, "cleave")
	build := exec.Command("go", "build", "-o", cleaveBin, "../cmd/cleave")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building cleave:", err)
		os.Exit(1)
	}
	code := m.Run()
	stopShared()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := testcluster.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// skipInShortMode skips a test that starts processes of its own (what
// names it in the message) when go test runs with -short.
func skipInShortMode(t *testing.T, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip(what + " skipped in -short mode")
	}
}

// deployment is one `cleave up` process tree.
type deployment struct {
	dir     string
	router  string   // the first router, the one --listen names
	routers []string // every router, the first first
	cmd     *exec.Cmd
	stdout  *syncbuf.Buffer
	done    chan error
	token   string // root token; "" for a deployment without one
}

// startUp runs `cleave up` on dir (reusing router if set) and waits until it
// prints that it is up.
func startUp(t testing.TB, dir, router string, args ...string) *deployment {
	t.Helper()
	return startUpEnv(t, dir, router, nil, args...)
}

// startUpEnv is startUp with extra environment variables for every process.
func startUpEnv(t testing.TB, dir, router string, env []string, args ...string) *deployment {
	t.Helper()
	if router == "" {
		router = freeAddr(t)
	}
	d := &deployment{dir: dir, router: router, stdout: &syncbuf.Buffer{}, done: make(chan error, 1)}
	logf, err := os.OpenFile(filepath.Join(dir+".up.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(cleaveBin, append([]string{"up", "--data", dir, "--listen", router}, args...)...)
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stdout = d.stdout
	d.cmd.Stderr = logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait(); logf.Close() }()
	defer func() {
		if topo, err := up.LoadTopology(dir); err == nil {
			d.routers = topo.RouterAddrs()
		}
		// `cleave up` keeps a root token: the harness's clients may do
		// everything.
		d.token, _ = up.ReadToken(dir)
	}()
	err = eventually.Within(90*time.Second, "cleave up", func() error {
		select {
		case err := <-d.done:
			t.Fatalf("cleave up exited before it was up: %v\nstdout:\n%s\nlog: %s", err, d.stdout, dir+".up.log")
		default:
		}
		return eventually.True(bannerDone(d.stdout.String()), "has not printed all of its banner")
	})
	if err != nil {
		d.stop(t)
		t.Fatalf("%v\nstdout:\n%s\nlog: %s", err, d.stdout, dir+".up.log")
	}
	return d
}

// bannerEnd is the banner's last line: its last example command.
var bannerEnd = regexp.MustCompile(`(?m)^try:\n(?:  .*\n)*  .* status\b.*\n`)

// bannerDone reports whether out holds the whole of the banner `cleave
// up` prints when it is up: it is written line by line, and a test that
// read it after the first line missed the rest (the status page).
func bannerDone(out string) bool {
	return strings.Contains(out, "cleave is up") && bannerEnd.MatchString(out)
}

// ownDeployment starts a `cleave up` of its own, and stops it when the
// test ends, for a test that kills, pauses or partitions its processes,
// splits its clusters or measures them. Such a test never uses
// sharedDeployment: the tests there check the deployment's shape and
// would see the damage.
func ownDeployment(t *testing.T, args ...string) *deployment {
	t.Helper()
	return ownDeploymentEnv(t, nil, args...)
}

// ownDeploymentEnv is ownDeployment with extra environment variables for
// every process (test-only switches such as CLEAVE_TEST_SPLIT_HOLD).
func ownDeploymentEnv(t *testing.T, env []string, args ...string) *deployment {
	t.Helper()
	d := startUpEnv(t, filepath.Join(t.TempDir(), "data"), "", env, args...)
	t.Cleanup(func() { d.stop(t) })
	return d
}

// stop sends SIGTERM and waits for `cleave up` to stop its children and exit.
func (d *deployment) stop(t testing.TB) {
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		t.Errorf("cleave up did not stop within 30s of SIGTERM")
	}
}

// dial connects a client with the deployment's root token and opts.
func (d *deployment) dial(t testing.TB, opts ...client.Option) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, d.routerList(), append([]client.Option{client.WithToken(d.token)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// directIfOdd returns the options of client id in a load of several:
// every other client sends its file operations straight to the owning
// cluster (client.WithDirect), so the histories checked mix both paths.
func directIfOdd(id int) []client.Option {
	if id%2 == 1 {
		return []client.Option{client.WithDirect()}
	}
	return nil
}

// anonymousCLI runs the cleave binary against this deployment without a
// token.
func (d *deployment) anonymousCLI(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(cleaveBin, args...)
	cmd.Env = append(os.Environ(), "CLEAVE_ROUTER="+strings.Join(d.routerList(), ","), "CLEAVE_TOKEN=")
	return cmd.CombinedOutput()
}

// routerList returns every router's address (just the first until the
// deployment has been read).
func (d *deployment) routerList() []string {
	if len(d.routers) > 0 {
		return d.routers
	}
	return []string{d.router}
}

// status returns the deployment's status as `cleave status -o json` prints it.
func (d *deployment) status(t testing.TB) *wire.Status {
	t.Helper()
	out, err := d.cli(t, nil, "status", "-o", "json")
	if err != nil {
		t.Fatalf("cleave status: %v\n%s", err, out)
	}
	var st wire.Status
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	return &st
}

// cli runs the cleave binary as a client against this deployment.
func (d *deployment) cli(t testing.TB, stdin io.Reader, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(cleaveBin, args...)
	cmd.Env = append(os.Environ(), "CLEAVE_ROUTER="+strings.Join(d.routerList(), ","), "CLEAVE_TOKEN="+d.token)
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return append(out, stderr.Bytes()...), err
	}
	return out, nil
}

// putFile writes v at p through c (creating its parents, within 20 s),
// fails t if that fails, and records v as p's contents in want.
func putFile(t testing.TB, c *client.Client, want map[string][]byte, p string, v []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, p, v, client.Parents()); err != nil {
		t.Fatalf("put %s: %v", p, err)
	}
	want[p] = v
}

// requireFiles reads every file of want back through c (each within
// 20 s) and fails t unless it holds what want says; when tells after
// what.
func requireFiles(t testing.TB, c *client.Client, want map[string][]byte, when string) {
	t.Helper()
	for p, v := range want {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		got, err := c.Get(ctx, p)
		cancel()
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("%s %s: %q, %v; want %q", p, when, got, err, v)
		}
	}
}

// waitLeaders waits until every cluster has a live leader.
func (d *deployment) waitLeaders(t testing.TB, timeout time.Duration) *wire.Status {
	t.Helper()
	var st *wire.Status
	eventually.Holds(t, timeout, "a live leader in every cluster", func() error {
		st = d.status(t)
		ok := len(st.Clusters) > 0
		for _, c := range st.Clusters {
			ok = ok && hasLiveLeader(c)
		}
		return eventually.True(ok, "status %+v", st)
	})
	return st
}

// hasLiveLeader reports whether the node at c.Leader answers as leader
// itself (followers keep naming a dead leader until they elect another).
func hasLiveLeader(c wire.ClusterStatus) bool {
	for _, n := range c.Nodes {
		if n.Addr == c.Leader && n.Role == "leader" {
			return true
		}
	}
	return false
}

// exampleCommands returns the command lines `cleave up` printed under "try:".
func exampleCommands(out string) []string {
	var cmds []string
	sc := bufio.NewScanner(strings.NewReader(out))
	in := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "try:") {
			in = true
			continue
		}
		if in {
			l := strings.TrimSpace(line)
			if l == "" {
				break
			}
			cmds = append(cmds, l)
		}
	}
	return cmds
}

var (
	sharedOnce sync.Once
	shared     *deployment
	sharedErr  string
	sharedDir  string
)

// sharedDeployment is one `cleave up` reused by tests that neither restart
// it nor kill, pause or partition any of its processes (those use
// ownDeployment): tests here may assert on its shape.
func sharedDeployment(t *testing.T) *deployment {
	t.Helper()
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cleave-shared")
		if err != nil {
			sharedErr = err.Error()
			return
		}
		sharedDir = dir
		ft := &fatalCatcher{TB: t}
		func() {
			defer func() { recover() }()
			shared = startUp(ft, filepath.Join(dir, "data"), "")
		}()
		if ft.msg != "" {
			sharedErr = ft.msg
			shared = nil
		}
	})
	if shared == nil {
		t.Fatalf("shared deployment failed to start: %s", sharedErr)
	}
	return shared
}

func stopShared() {
	if shared != nil {
		shared.stop(&fatalCatcher{})
	}
	if sharedDir != "" && os.Getenv("CLEAVE_KEEP") == "" {
		os.RemoveAll(sharedDir)
	}
}

// fatalCatcher turns Fatalf into a recorded message and a panic, so a
// helper shared across tests can fail without killing the test that
// happened to start it.
type fatalCatcher struct {
	testing.TB
	msg string
}

func (f *fatalCatcher) Helper() {}
func (f *fatalCatcher) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f.msg)
}
func (f *fatalCatcher) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }
func (f *fatalCatcher) Errorf(format string, args ...any) {
	if f.TB != nil {
		f.TB.Logf(format, args...)
	}
}
func (f *fatalCatcher) Logf(format string, args ...any) {
	if f.TB != nil {
		f.TB.Logf(format, args...)
	}
}
