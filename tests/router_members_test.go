package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/up"
)

// routersAnswer is the JSON of `cleave router add|promote|remove -o json`
// and the routers of `cleave status -o json`.
type routersAnswer struct {
	Routers []struct {
		RaftID uint64 `json:"raft_id"`
		Addr   string `json:"addr"`
		Error  string `json:"error"`
	} `json:"routers"`
}

// A router is added to a running deployment's routers by command and taken
// out again: a fourth `cleave router` started with --join and an empty
// --data is added with `cleave router add`, promoted with `cleave router
// promote`, serves a write that the first router reads back, and leaves
// with `cleave router remove`.
func TestRouterAddedAndRemovedByCommand(t *testing.T) {
	skipInShortMode(t, "a deployment of its own")
	d := ownDeployment(t)
	topo, err := up.LoadTopology(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	addr, peer := freeAddr(t), freeAddr(t)
	var peers []string
	for _, r := range topo.Routers {
		peers = append(peers, fmt.Sprintf("%d=%s/%s", r.RaftID, r.Listen, r.Peer))
	}
	peers = append(peers, fmt.Sprintf("4=%s/%s", addr, peer))
	certs := filepath.Join(d.dir, up.CertsDir)
	if out, err := exec.Command(cleaveBin, "certs", "issue", "--dir", certs, "--name", "router-4", "--host", "127.0.0.1").CombinedOutput(); err != nil {
		t.Fatalf("issue router-4's certificate: %v\n%s", err, out)
	}
	logPath := filepath.Join(t.TempDir(), "r4.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	r4 := exec.Command(cleaveBin, "router", "--id", "r4", "--raft-id", "4", "--join",
		"--listen", addr, "--peer-listen", peer, "--peers", strings.Join(peers, ","), "--data", filepath.Join(t.TempDir(), "r4"),
		"--peer-cert", filepath.Join(certs, "router-4.crt"), "--peer-key", filepath.Join(certs, "router-4.key"), "--peer-cacert", filepath.Join(certs, "ca.crt"))
	r4.Env = append(os.Environ(), "CLEAVE_TOKEN="+d.token)
	r4.Stdout, r4.Stderr = logf, logf
	r4.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r4.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { r4.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() { r4.Process.Kill(); <-done })

	routers := func(args ...string) routersAnswer {
		t.Helper()
		out, err := d.cli(t, nil, append(args, "-o", "json")...)
		if err != nil {
			t.Fatalf("cleave %s: %v\n%s\n(router 4's log: %s)", strings.Join(args, " "), err, out, logPath)
		}
		var a routersAnswer
		if err := json.Unmarshal(out, &a); err != nil {
			t.Fatalf("cleave %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return a
	}
	if a := routers("router", "add", "--raft-id", "4", "--addr", addr, "--peer-addr", peer); len(a.Routers) != 4 {
		t.Fatalf("after router add: %+v, want 4 routers", a.Routers)
	}
	if a := routers("router", "promote", "--raft-id", "4", "--timeout", "60s"); len(a.Routers) != 4 {
		t.Fatalf("after router promote: %+v, want 4 routers", a.Routers)
	}
	eventually.Holds(t, 30*time.Second, "router 4 serves with the table", func() error {
		out, err := d.cli(t, strings.NewReader("through router 4"), "--router", addr, "put", "-p", "/routers/added")
		if err != nil {
			return fmt.Errorf("put through router 4: %v: %s", err, out)
		}
		return nil
	})
	if out, err := d.cli(t, nil, "--router", d.router, "get", "/routers/added"); err != nil || string(out) != "through router 4" {
		t.Fatalf("get through router 1: %q %v", out, err)
	}
	st := routers("--router", addr, "status")
	if len(st.Routers) != 4 {
		t.Fatalf("status through router 4 lists %+v, want 4 routers", st.Routers)
	}

	if a := routers("router", "remove", "--raft-id", "4"); len(a.Routers) != 3 {
		t.Fatalf("after router remove: %+v, want 3 routers", a.Routers)
	}
	r4.Process.Kill()
	<-done
	eventually.Holds(t, 30*time.Second, "the deployment without router 4", func() error {
		st := routers("status")
		for _, r := range st.Routers {
			if r.RaftID == 4 {
				return fmt.Errorf("status still lists router 4: %+v", st.Routers)
			}
		}
		return eventually.True(len(st.Routers) == 3, "status lists %d routers", len(st.Routers))
	})
	if out, err := d.cli(t, strings.NewReader("after"), "put", "/routers/after"); err != nil {
		t.Fatalf("put after router 4 left: %v: %s", err, out)
	}
}
