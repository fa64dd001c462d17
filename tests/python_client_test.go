package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// python3 is the interpreter the Python client is run with: Debian's,
// where python3-msgpack installs its module.
const python3 = "/usr/bin/python3"

// TestPythonClient runs the Python client in examples/python, written from
// docs/protocol.md alone, against a deployment of its own: its checks
// (framing, HELLO, pipelining, chunked upload, checksums, paging,
// exactly-once retries, error codes, connection-level errors) keep the
// document honest. Any failed check fails the test.
func TestPythonClient(t *testing.T) {
	skipInShortMode(t, "the Python client test (its own deployment)")
	requirePythonMsgpack(t)
	d := ownDeployment(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python3, "check_protocol.py", "--router="+d.router, "--token="+d.token)
	cmd.Dir = "../examples/python"
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	t.Logf("check_protocol.py against %s:\n%s", d.router, out)
	if err != nil {
		t.Fatalf("the Python client's checks failed: %v", err)
	}
	m := regexp.MustCompile(`(?m)^(\d+) checks, 0 failed$`).FindSubmatch(out)
	if m == nil {
		t.Fatal("no \"N checks, 0 failed\" line in the output")
	}
	if n, _ := strconv.Atoi(string(m[1])); n < 30 {
		t.Fatalf("only %d checks ran, want the whole list (at least 30)", n)
	}
}

// requirePythonMsgpack makes sure python3 can import msgpack, installing
// Debian's python3-msgpack when it is missing; it skips, saying why, only
// when there is no python3 or the package cannot be installed.
func requirePythonMsgpack(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(python3); err != nil {
		t.Skipf("%s is not installed (%v): the Python client cannot run", python3, err)
	}
	if exec.Command(python3, "-c", "import msgpack").Run() == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := func() ([]byte, error) {
		return exec.CommandContext(ctx, "apt-get", "-o", "DPkg::Lock::Timeout=120", "install", "-y", "python3-msgpack").CombinedOutput()
	}
	out, err := install()
	if err != nil { // the package lists may be missing: update once and retry
		upd, uerr := exec.CommandContext(ctx, "apt-get", "-o", "DPkg::Lock::Timeout=120", "update").CombinedOutput()
		out = append(append(out, upd...), fmt.Sprintf("(update: %v)\n", uerr)...)
		var more []byte
		more, err = install()
		out = append(out, more...)
	}
	if err != nil {
		t.Skipf("python3-msgpack is missing and could not be installed (%v):\n%s", err, out)
	}
	if err := exec.Command(python3, "-c", "import msgpack").Run(); err != nil {
		t.Fatalf("python3-msgpack installed, but %s cannot import msgpack: %v", python3, err)
	}
}
