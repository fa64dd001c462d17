package loadgen

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/testcluster"
)

// startEtcd starts a real one-member etcd on loopback with its data in a
// temporary directory (fsync on, etcd's default) and returns its client
// endpoint and process. It skips the test when there is no etcd binary
// (scripts/install-etcd.sh installs it).
func startEtcd(t *testing.T) (string, *exec.Cmd) {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("no etcd binary on PATH (scripts/install-etcd.sh installs Debian's etcd-server):", err)
	}
	dir := t.TempDir()
	client, peer := testcluster.ClosedAddr(t), testcluster.ClosedAddr(t)
	log, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(bin, "--name", "t1", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "t1=http://"+peer, "--initial-cluster-state", "new",
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "etcd.log"))
			t.Logf("etcd log:\n%s", b)
		}
	})
	return client, cmd
}

// dialEtcd connects to the etcd at endpoint, retrying while it starts.
func openEtcd(t *testing.T, endpoint string, conns int, stale bool) *EtcdStore {
	t.Helper()
	var s *EtcdStore
	eventually.Holds(t, 30*time.Second, "etcd answers", func() error {
		var err error
		s, err = NewEtcdStore(context.Background(), []string{endpoint}, conns, 2*time.Second, stale)
		return err
	})
	t.Cleanup(func() { s.Close() })
	return s
}

// TestEtcdStoreRuns drives a real etcd with the put and get workloads and
// checks what it holds afterwards and what its CPU was.
func TestEtcdStoreRuns(t *testing.T) {
	ep, cmd := startEtcd(t)
	s := openEtcd(t, ep, 3, false)
	if len(s.conns) != 3 {
		t.Fatalf("%d connections, want 3", len(s.conns))
	}
	ctx := context.Background()

	cfg := testConfig()
	cfg.Workload, cfg.Ops, cfg.Clients, cfg.Files = Put, 1000, 8, 50
	cfg.Prefix, cfg.Target = "e", "etcd"
	cfg.CPUPIDs = []int{cmd.Process.Pid}
	res, err := Run(ctx, cfg, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 1000 || res.Errors != 0 || res.Target != "etcd" || res.System() != "etcd" {
		t.Fatalf("put: %d ops, %d errors (%v), target %q: want 1000, 0, etcd", res.Ops, res.Errors, res.ErrorSamples, res.Target)
	}
	if c := res.ServerCPU; c == nil || c.Seconds <= 0 || !strings.HasPrefix(c.Procs[0].Label, "etcd name=t1") {
		t.Fatalf("server CPU %+v: want etcd's time, labelled by its name", c)
	}
	// Every file written is a 1 KiB key under its path, and nothing else is.
	all, err := s.C.Get(ctx, "/e-", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if all.Count == 0 || all.Count > 50 {
		t.Fatalf("%d keys under /e-: want 1..50", all.Count)
	}
	names := Namer{Prefix: "e", Roots: cfg.Roots}
	files := map[string]bool{}
	for i := range cfg.Files {
		files[names.File(i)] = true
	}
	for _, kv := range all.Kvs {
		if len(kv.Value) != 1024 || !files[string(kv.Key)] {
			t.Fatalf("key %q: %d bytes, want one of the workload's files with 1024", kv.Key, len(kv.Value))
		}
	}

	for _, w := range []Workload{Get, Mixed, Stat, List} {
		cfg := cfg
		cfg.Workload, cfg.Ops, cfg.CPUPIDs = w, 300, nil
		res, err := Run(ctx, cfg, s, nil)
		if err != nil {
			t.Fatalf("%s: %v", w, err)
		}
		if res.Ops != 300 || res.Errors != 0 {
			t.Fatalf("%s: %d ops, %d errors (%v): want 300, 0", w, res.Ops, res.Errors, res.ErrorSamples)
		}
	}
	// After the get workload's preload, file 0 holds 1 KiB that Get returns.
	got, err := s.Get(ctx, names.File(0))
	if err != nil || len(got) != 1024 {
		t.Fatalf("get %s: %d bytes, %v", names.File(0), len(got), err)
	}
	if n, err := s.List(ctx, names.Root(0)); err != nil || n == 0 {
		t.Fatalf("list %s: %d, %v: want the files of root 0", names.Root(0), n, err)
	}

	for _, w := range []Workload{Append, Stream} {
		cfg := cfg
		cfg.Workload = w
		if _, err := Run(ctx, cfg, s, nil); !errors.Is(err, ErrNotSupported) {
			t.Errorf("%s against etcd: err %v, want ErrNotSupported", w, err)
		}
	}
}

// TestEtcdStoreReadsAndErrors: a missing key is NotFound (by Get and by
// Stat), a stale store still reads what was written, and a cluster that is
// gone fails the dial with a message naming it.
func TestEtcdStoreReadsAndErrors(t *testing.T) {
	ep, cmd := startEtcd(t)
	s := openEtcd(t, ep, 1, false)
	stale := openEtcd(t, ep, 0, true)
	ctx := context.Background()

	if err := s.Put(ctx, "/r/a", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	for _, st := range []*EtcdStore{s, stale} {
		if got, err := st.Get(ctx, "/r/a"); err != nil || !bytes.Equal(got, []byte("hello")) {
			t.Fatalf("get (stale %v): %q, %v", st.stale, got, err)
		}
	}
	_, err := s.Get(ctx, "/r/missing")
	if !errors.Is(err, ErrNotFound) || s.ErrorCode(err) != "NotFound" || !strings.Contains(err.Error(), "/r/missing") {
		t.Fatalf("get of a missing key: %v (code %s), want NotFound naming it", err, s.ErrorCode(err))
	}
	if err := s.Stat(ctx, "/r/missing"); s.ErrorCode(err) != "NotFound" {
		t.Fatalf("stat of a missing key: %v, want NotFound", err)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	<-dctx.Done()
	if err := s.Put(dctx, "/r/b", nil); s.ErrorCode(err) != "Timeout" && s.ErrorCode(err) != "DeadlineExceeded" {
		t.Fatalf("put past its deadline: %v (code %s), want a timeout", err, s.ErrorCode(err))
	}

	cmd.Process.Kill()
	cmd.Wait()
	_, err = NewEtcdStore(ctx, []string{ep}, 1, time.Second, false)
	if err == nil || !strings.Contains(err.Error(), ep) {
		t.Fatalf("dial of a stopped etcd: %v, want an error naming %s", err, ep)
	}
	if _, err := NewEtcdStore(ctx, nil, 1, time.Second, false); err == nil {
		t.Fatal("dial with no endpoints: no error")
	}
}

// TestEtcdStoreYCSBScan: ycsb-e runs against etcd, its scans reading up to
// the limit of keys under a root and never more than the root holds.
func TestEtcdStoreYCSBScan(t *testing.T) {
	ep, _ := startEtcd(t)
	s := openEtcd(t, ep, 1, false)
	ctx := context.Background()
	cfg := testConfig()
	cfg.Workload, cfg.Ops, cfg.Clients, cfg.Files, cfg.Roots = YCSBE, 300, 4, 400, 2
	cfg.Prefix, cfg.Target = "y", "etcd"
	res, err := Run(ctx, cfg, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 300 || res.Errors != 0 || res.PerOp["scan"] == nil {
		t.Fatalf("ycsb-e: %d ops, %d errors (%v), ops %v", res.Ops, res.Errors, res.ErrorSamples, res.PerOp)
	}
	n, err := s.Scan(ctx, "/y-000", 7)
	if err != nil || n != 7 {
		t.Fatalf("scan of 7: %d, %v", n, err)
	}
	if n, err := s.Scan(ctx, "/y-999", 7); err != nil || n != 0 {
		t.Fatalf("scan of an empty root: %d, %v", n, err)
	}
}
