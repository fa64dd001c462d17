package up

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/internal/syncbuf"
	"github.com/cleavefs/cleave/wire"
)

// The test binary doubles as a fake cleave: with UP_TEST_FAKE set it acts as
// the `node` or `router` subcommand named in its arguments, so the
// supervisor can be tested without the real cluster and router packages.
func TestMain(m *testing.M) {
	if mode := os.Getenv("UP_TEST_FAKE"); mode != "" && len(os.Args) > 1 {
		os.Exit(fakeCleave(mode, os.Args[1], os.Args[2:]))
	}
	os.Exit(m.Run())
}

// fakeCleave runs a fake child. Modes: "ok" serves until SIGTERM; "exit"
// exits at once with status 3; "stubborn" ignores SIGTERM.
func fakeCleave(mode, sub string, args []string) int {
	// Signals are set up before the line the tests wait for, so a SIGTERM
	// sent once they see it meets the handling the mode promises.
	term := make(chan os.Signal, 1)
	if mode == "stubborn" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	}
	fmt.Printf("fake %s pid %d gomaxprocs %d args %q\n", sub, os.Getpid(), runtime.GOMAXPROCS(0), args)
	switch mode {
	case "exit":
		return 3
	case "stubborn":
		select {}
	}
	if sub == "router" {
		var listen string
		var clusters []string
		for i := 0; i+1 < len(args); i++ {
			switch args[i] {
			case "--listen":
				listen = args[i+1]
			case "--cluster":
				clusters = append(clusters, args[i+1])
			}
		}
		// Each --cluster is "ID=NODE@HOST:PORT,..." (FormatCluster); the
		// fake reports the first member as the leader.
		var infos []wire.ClusterInfo
		for _, c := range clusters {
			id, members, _ := strings.Cut(c, "=")
			first, _, _ := strings.Cut(members, ",")
			_, addr, ok := strings.Cut(first, "@")
			if id == "" || !ok {
				fmt.Printf("bad --cluster %q\n", c)
				return 2
			}
			infos = append(infos, wire.ClusterInfo{ID: id, Members: []wire.Member{{Addr: addr}}})
		}
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		srv := rpc.NewServer(rpc.ServerConfig{Name: "router", ID: "fake"}, rpc.HandlerFunc(func(ctx context.Context, req *wire.Request) *wire.Response {
			st := &wire.Status{Router: "fake", Version: 1, Routers: []wire.RouterStatus{{ID: "fake", Leader: true}}}
			for _, ci := range infos {
				st.Clusters = append(st.Clusters, wire.ClusterStatus{ID: ci.ID, Leader: ci.Members[0].Addr})
			}
			return &wire.Response{Status: st}
		}))
		go srv.Serve(ln)
		defer srv.Close()
	}
	<-term
	fmt.Println("fake got SIGTERM")
	return 0
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	eventually.Holds(t, timeout, what, func() error { return eventually.True(cond(), "not yet") })
}

func fileContains(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), s)
}

func testBinary(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func TestRunStartsStopsAndRestarts(t *testing.T) {
	t.Setenv("UP_TEST_FAKE", "ok")
	unsetEnv(t, "GOMAXPROCS")
	dir := t.TempDir()
	listen, err := FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	var out, logs syncbuf.Buffer
	cfg := Config{
		DataDir: dir, Listen: listen[0], Clusters: 2, Replicas: 2,
		Binary: testBinary(t), Command: "cleave",
		Stdout: &out, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		ReadyTimeout: 20 * time.Second, StopTimeout: 5 * time.Second,
	}

	run := func() (*Topology, string) {
		out.Reset()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Run(ctx, cfg) }()
		// On failure, what the supervisor and the router said.
		said := func() string {
			r1, _ := os.ReadFile(filepath.Join(dir, "logs", "router-r1.log"))
			return "the supervisor's log:\n" + logs.String() + "\nrouter-r1.log:\n" + string(r1)
		}
		if err := eventually.Within(30*time.Second, "the banner", func() error {
			select {
			case err := <-done:
				t.Fatalf("Run returned before the banner: %v\n%s", err, said())
			default:
			}
			return eventually.True(strings.Contains(out.String(), "cleave is up"), "not yet")
		}); err != nil {
			cancel()
			t.Fatalf("%v\n%s", err, said())
		}
		topo, err := LoadTopology(dir)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		// Every child runs as its own process with its own log.
		for _, name := range []string{"router-r1", "router-r2", "router-r3", "c1-n1", "c1-n2", "c2-n3", "c2-n4"} {
			waitFor(t, name+" to run", 10*time.Second, func() bool {
				return fileContains(filepath.Join(dir, "logs", name+".log"), "fake ")
			})
		}
		if !fileContains(filepath.Join(dir, "logs", "c2-n4.log"), `"--data" "`+filepath.Join(dir, "c2", "n4")+`"`) {
			t.Error("node n4 of c2 was not given DIR/c2/n4")
		}
		for _, name := range []string{"c1-n1", "router-r2"} {
			if !fileContains(filepath.Join(dir, "logs", name+".log"), `"--gossip-key-file" "`+filepath.Join(dir, GossipKeyFile)+`"`) {
				t.Errorf("%s was not given the deployment's gossip key", name)
			}
		}
		// 3 routers and 4 nodes share this machine's CPUs.
		procs := fmt.Sprintf("gomaxprocs %d ", childProcs(runtime.GOMAXPROCS(0), 7))
		for _, name := range []string{"c1-n1", "router-r3"} {
			if !fileContains(filepath.Join(dir, "logs", name+".log"), procs) {
				t.Errorf("%s did not run with %q", name, procs)
			}
		}
		if !fileContains(filepath.Join(dir, "logs", "c1-n1.log"), `"--report-pid"`) {
			t.Error("nodes were not given --report-pid")
		}
		if !fileContains(filepath.Join(dir, "logs", "router-r2.log"), `"--raft-id" "2"`) || !fileContains(filepath.Join(dir, "logs", "router-r2.log"), `"--peers"`) {
			t.Error("routers were not given their meta group membership")
		}
		// A second supervisor on the same directory is refused.
		if err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "in use by another cleave up") {
			t.Errorf("second Run on the same dir: %v", err)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run returned %v after cancel", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		for _, name := range []string{"router-r1", "router-r3", "c1-n1", "c2-n4"} {
			if !fileContains(filepath.Join(dir, "logs", name+".log"), "fake got SIGTERM") {
				t.Errorf("%s was not stopped with SIGTERM", name)
			}
		}
		return topo, out.String()
	}

	first, banner := run()
	key, err := os.ReadFile(filepath.Join(dir, GossipKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, GossipKeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("gossip key file mode %v, want 0600", fi.Mode().Perm())
	}
	if len(first.Clusters) != 2 || first.Replicas() != 2 {
		t.Fatalf("topology %d x %d", len(first.Clusters), first.Replicas())
	}
	for _, want := range []string{
		"cleave is up: router " + listen[0] + ", 2 clusters x 2 nodes, data in " + dir,
		filepath.Join(dir, "logs"),
		"cleave mkdir --router " + listen[0] + " -p /photos/2024",
		"echo hello | cleave put --router " + listen[0] + " /photos/2024/hello.txt",
		"cleave status --router " + listen[0],
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}

	// Started again with another shape, it finds the same deployment.
	cfg.Clusters, cfg.Replicas = 3, 3
	second, _ := run()
	if again, _ := os.ReadFile(filepath.Join(dir, GossipKeyFile)); string(again) != string(key) {
		t.Error("a restart replaced the gossip key")
	}
	// A side port another process took meanwhile moves (a side port is
	// nobody's identity); everything else must stay.
	if !reflect.DeepEqual(withoutSidePorts(first), withoutSidePorts(second)) {
		t.Fatalf("restart changed the topology:\n%+v\n%+v", first, second)
	}
	if !strings.Contains(logs.String(), "already holds 2 clusters x 2 nodes") {
		t.Errorf("mismatch not logged:\n%s", logs.String())
	}
}

// unsetEnv unsets the environment variable k for the test, restoring it
// after.
func unsetEnv(t *testing.T, k string) {
	t.Setenv(k, "")
	if err := os.Unsetenv(k); err != nil {
		t.Fatal(err)
	}
}

func TestChildProcs(t *testing.T) {
	for _, c := range []struct{ cpus, n, want int }{
		{2, 9, 1},  // cleave up's default on a 2-core machine
		{8, 9, 1},  // eight Ps for nine processes
		{16, 9, 2}, // rounded up: no CPU left without a P
		{64, 9, 8}, // 72 Ps for 64 CPUs
		{4, 1, 4},  // a lone process keeps every CPU
		{1, 24, 1}, // never below one
		{4, 0, 4},  // no topology yet: Go's default
	} {
		if got := childProcs(c.cpus, c.n); got != c.want {
			t.Errorf("childProcs(%d CPUs, %d processes) = %d, want %d", c.cpus, c.n, got, c.want)
		}
	}
}

func TestChildEnvKeepsGOMAXPROCSOfTheEnvironment(t *testing.T) {
	topo := &Topology{Routers: make([]RouterSpec, 3), Clusters: []ClusterSpec{{Nodes: make([]NodeSpec, 3)}}}
	t.Setenv("GOMAXPROCS", "3")
	env := childEnv(Config{Token: "tok"}, topo)
	if n := countPrefix(env, "GOMAXPROCS="); n != 1 || !slices.Contains(env, "GOMAXPROCS=3") {
		t.Errorf("with GOMAXPROCS=3 set, children get %d GOMAXPROCS entries: %q", n, env)
	}
	if !slices.Contains(env, "CLEAVE_TOKEN=tok") {
		t.Error("children lost the token")
	}
	unsetEnv(t, "GOMAXPROCS")
	env = childEnv(Config{}, topo)
	want := fmt.Sprintf("GOMAXPROCS=%d", childProcs(runtime.GOMAXPROCS(0), 6))
	if n := countPrefix(env, "GOMAXPROCS="); n != 1 || !slices.Contains(env, want) {
		t.Errorf("unset, children get %q, want %s", env, want)
	}
}

func countPrefix(env []string, p string) int {
	n := 0
	for _, e := range env {
		if strings.HasPrefix(e, p) {
			n++
		}
	}
	return n
}

// exitingDeployment is the Config of a one-node deployment whose children
// all exit at once, logging to logs.
func exitingDeployment(t *testing.T, readyTimeout time.Duration, logs *syncbuf.Buffer) Config {
	t.Setenv("UP_TEST_FAKE", "exit")
	listen, _ := FreePorts(1)
	return Config{
		DataDir: t.TempDir(), Listen: listen[0], Clusters: 1, Replicas: 1, Binary: testBinary(t),
		Stdout: &bytes.Buffer{}, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		ReadyTimeout: readyTimeout,
	}
}

func TestRunNotReady(t *testing.T) {
	var logs syncbuf.Buffer
	err := Run(context.Background(), exitingDeployment(t, 1500*time.Millisecond, &logs))
	if err == nil || !strings.Contains(err.Error(), "not ready after") || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("Run = %v, want a not-ready error", err)
	}
}

// A child that exits is restarted, and the supervisor says so.
func TestRunRestartsExitedChildren(t *testing.T) {
	var logs syncbuf.Buffer
	cfg := exitingDeployment(t, time.Minute, &logs)
	dir := cfg.DataDir
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	waitFor(t, "the router's second start", 30*time.Second, func() bool {
		return fileContains(filepath.Join(dir, "logs", "router-r1.log"), "start #2")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run cancelled while starting: %v, want nil", err)
	}
	if !strings.Contains(logs.String(), "exited unexpectedly") || !strings.Contains(logs.String(), "restarting") {
		t.Errorf("restarts not logged:\n%s", logs.String())
	}
}

func TestRunRouterPortBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := Config{DataDir: t.TempDir(), Listen: ln.Addr().String(), Binary: testBinary(t), Stdout: &bytes.Buffer{}}
	err = Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "address "+ln.Addr().String()+" is not available") {
		t.Fatalf("Run = %v, want an error naming %s", err, ln.Addr())
	}
}

func TestSuperviseKillsStubbornChild(t *testing.T) {
	t.Setenv("UP_TEST_FAKE", "stubborn")
	dir := t.TempDir()
	ch := child{name: "c1-n1", bin: testBinary(t), args: []string{"node"}, log: filepath.Join(dir, "c1-n1.log")}
	var logs syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		supervise(ctx, ch, 300*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)), nil)
		close(done)
	}()
	waitFor(t, "the child to run", 10*time.Second, func() bool { return fileContains(ch.log, "fake node") })
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("supervise did not return")
	}
	if !fileContains(ch.log, "signal: killed") || !strings.Contains(logs.String(), "did not stop after SIGTERM") {
		t.Fatalf("child not killed; log:\n%s", logs.String())
	}
}

func TestNextBackoff(t *testing.T) {
	tests := []struct {
		prev, uptime, want time.Duration
	}{
		{0, 0, 500 * time.Millisecond},
		{500 * time.Millisecond, time.Second, time.Second},
		{time.Second, time.Second, 2 * time.Second},
		{8 * time.Second, time.Second, 10 * time.Second},
		{10 * time.Second, time.Second, 10 * time.Second},
		{10 * time.Second, 30 * time.Second, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := nextBackoff(tt.prev, tt.uptime); got != tt.want {
			t.Errorf("nextBackoff(%v, %v) = %v, want %v", tt.prev, tt.uptime, got, tt.want)
		}
	}
}

func TestBannerDefaultRouter(t *testing.T) {
	topo, err := NewTopology(2, 3, 1, DefaultListen)
	if err != nil {
		t.Fatal(err)
	}
	topo.Routers[0].HTTP = "127.0.0.1:7500"
	for i := range topo.Clusters {
		for j := range topo.Clusters[i].Nodes {
			topo.Clusters[i].Nodes[j].HTTP = fmt.Sprintf("127.0.0.1:75%d%d", i+1, j+1)
		}
	}
	var b bytes.Buffer
	printBanner(&b, Config{DataDir: "./data", Command: "cleave", Anonymous: "write"}, topo, "data/logs")
	want := `cleave is up: router 127.0.0.1:7400, 2 clusters x 3 nodes, data in ./data
logs in data/logs; stop with Ctrl-C
status page: http://127.0.0.1:7500/
side ports (/metrics, /healthz, /readyz; "http" in data/up.json):
  r1 127.0.0.1:7500
  c1-n1 127.0.0.1:7511, c1-n2 127.0.0.1:7512, c1-n3 127.0.0.1:7513
  c2-n4 127.0.0.1:7521, c2-n5 127.0.0.1:7522, c2-n6 127.0.0.1:7523
root token in data/token (clients without one may write; split, node and user commands need it):
  export CLEAVE_TOKEN=$(cat data/token)
try:
  cleave mkdir -p /photos/2024
  echo hello | cleave put /photos/2024/hello.txt
  cleave get /photos/2024/hello.txt
  cleave ls /photos
  cleave status
`
	if b.String() != want {
		t.Fatalf("banner:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"cleave":           "cleave",
		"./bin/cleave":     "./bin/cleave",
		"/tmp/my dir/cl":   "'/tmp/my dir/cl'",
		"/tmp/it's/cleave": `'/tmp/it'\''s/cleave'`,
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	if err := good.Validate(); err != nil {
		t.Fatalf("DefaultConfig invalid: %v", err)
	}
	for _, tt := range []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"no dir", func(c *Config) { c.DataDir = "" }, "data directory is empty"},
		{"listen", func(c *Config) { c.Listen = "7400" }, `--listen: address "7400"`},
		{"clusters", func(c *Config) { c.Clusters = -1 }, "--clusters -1"},
		{"replicas", func(c *Config) { c.Replicas = 10 }, "--replicas 10"},
		{"level", func(c *Config) { c.LogLevel = "loud" }, `log level "loud"`},
		{"format", func(c *Config) { c.LogFormat = "xml" }, `log format "xml"`},
		{"binary", func(c *Config) { c.Binary = "/nonexistent/cleave" }, "binary"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// withoutSidePorts returns a copy of t without its HTTP side ports.
func withoutSidePorts(t *Topology) *Topology {
	c := *t
	c.Routers = slices.Clone(t.Routers)
	for i := range c.Routers {
		c.Routers[i].HTTP = ""
	}
	c.Clusters = slices.Clone(t.Clusters)
	for i := range c.Clusters {
		c.Clusters[i].Nodes = slices.Clone(c.Clusters[i].Nodes)
		for j := range c.Clusters[i].Nodes {
			c.Clusters[i].Nodes[j].HTTP = ""
		}
	}
	return &c
}
