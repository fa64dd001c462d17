package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
)

// `cleave version` and `cleave --version` print the version, commit and
// build date, stamped or from the build info.
func TestVersion(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, stderr := cli(t, "", args...)
		if code != 0 || !strings.HasPrefix(out, "cleave ") || !strings.Contains(out, "commit ") || !strings.Contains(out, "built ") {
			t.Errorf("cleave %v: exit %d, stdout %q, stderr %q; want 'cleave VERSION (commit C, built D)'", args, code, out, stderr)
		}
	}
}

// Shell completion scripts are generated for bash, zsh and fish.
func TestCompletion(t *testing.T) {
	clearEnv(t)
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, stderr := cli(t, "", "completion", sh)
		if code != 0 || !strings.Contains(out, "cleave") || len(out) < 200 {
			t.Errorf("cleave completion %s: exit %d, %d bytes, stderr %q", sh, code, len(out), stderr)
		}
	}
}

// Every flag, global or a command's own, is settable by CLEAVE_<FLAG>, and
// a flag on the command line beats it.
func TestEnvSetsEveryFlag(t *testing.T) {
	clearEnv(t)
	useDeployment(t)
	dir := testRoot(t, "c1")
	ok := func(args ...string) string {
		t.Helper()
		code, out, stderr := cli(t, "", args...)
		if code != 0 {
			t.Fatalf("cleave %v: exit %d, stderr %q", args, code, stderr)
		}
		return out
	}
	ok("mkdir", "-p", dir)
	ok("put", dir+"/a", "-")
	ok("put", dir+"/b", "-")

	t.Setenv("CLEAVE_OUTPUT", "json")
	var st map[string]any
	if out := ok("stat", dir+"/a"); json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("CLEAVE_OUTPUT=json stat printed %q, want JSON", out)
	}
	if out := ok("stat", "-o", "table", dir+"/a"); strings.HasPrefix(out, "{") {
		t.Errorf("-o table under CLEAVE_OUTPUT=json printed JSON: %q", out)
	}
	t.Setenv("CLEAVE_LIMIT", "1")
	var page struct {
		Entries []map[string]any `json:"entries"`
	}
	if out := ok("ls", dir); json.Unmarshal([]byte(out), &page) != nil || len(page.Entries) != 1 {
		t.Errorf("CLEAVE_LIMIT=1 ls: %q, want one entry", out)
	}
	t.Setenv("CLEAVE_LIMIT", "many")
	if code, _, stderr := cli(t, "", "ls", dir); code != 2 || !strings.Contains(stderr, "CLEAVE_LIMIT") {
		t.Errorf("CLEAVE_LIMIT=many: exit %d, stderr %q; want a usage error naming CLEAVE_LIMIT", code, stderr)
	}
}

// split's help shows the default --timeout the command really uses.
func TestSplitHelpTimeoutDefault(t *testing.T) {
	clearEnv(t)
	_, out, _ := cli(t, "", "split", "--help")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "--timeout") {
			if !strings.Contains(line, "(default 30m0s)") {
				t.Errorf("split --help: %q, want default 30m0s", line)
			}
			return
		}
	}
	t.Errorf("split --help lists no --timeout:\n%s", out)
}

// ls -o json prints one shape, {"entries": [...], "next": TOKEN}, paged or
// not, and a bad --after token is answered in the CLI's words.
func TestLsJSONShapeAndAfter(t *testing.T) {
	clearEnv(t)
	useDeployment(t)
	dir := testRoot(t, "c1")
	for _, args := range [][]string{{"mkdir", "-p", dir + "/s"}, {"put", dir + "/a", "-"}} {
		if code, _, stderr := cli(t, "", args...); code != 0 {
			t.Fatalf("cleave %v: %s", args, stderr)
		}
	}
	type page struct {
		Entries []map[string]any `json:"entries"`
		Next    *string          `json:"next"`
	}
	for _, args := range [][]string{
		{"ls", "-o", "json", dir},
		{"ls", "-o", "json", "--limit", "5", dir},
		{"ls", "-o", "json", "--limit", "1", dir},
		{"ls", "-o", "json", "-R", dir},
	} {
		code, out, stderr := cli(t, "", args...)
		var p page
		if err := json.Unmarshal([]byte(out), &p); code != 0 || err != nil || p.Next == nil || len(p.Entries) == 0 {
			t.Errorf("cleave %v: exit %d, stdout %q (%v), stderr %q; want {\"entries\": [...], \"next\": ...}", args, code, out, err, stderr)
		}
	}
	code, _, stderr := cli(t, "", "ls", "--after", "not-a-token", dir)
	if code != 2 || !strings.Contains(stderr, "--after") || strings.Contains(stderr, "INVALID") {
		t.Errorf("ls --after not-a-token: exit %d, stderr %q; want a usage error naming --after", code, stderr)
	}
}

// Server commands list (and take) only their own flags, not the client
// commands' --router, --output, ...; client commands still list them.
func TestHelpListsOnlyTakenFlags(t *testing.T) {
	clearEnv(t)
	clientOnly := []string{"--router", "--output", "--stale", "--timeout", "--cacert"}
	for _, c := range [][]string{{"node"}, {"router"}, {"up"}, {"certs", "init"}, {"version"}} {
		_, out, _ := cli(t, "", append(c, "--help")...)
		for _, f := range clientOnly {
			if strings.Contains(out, f+" ") {
				t.Errorf("cleave %v --help lists the client flag %s", c, f)
			}
		}
	}
	if code, _, stderr := cli(t, "", "up", "--data", t.TempDir(), "--router", "x:1"); code != 2 || !strings.Contains(stderr, "--router") {
		t.Errorf("cleave up --router: exit %d, stderr %q; want a usage error naming --router", code, stderr)
	}
	_, out, _ := cli(t, "", "node", "add", "--help")
	for _, f := range clientOnly {
		if !strings.Contains(out, f+" ") {
			t.Errorf("cleave node add --help does not list %s", f)
		}
	}
	if _, out, _ := cli(t, "", "up", "--help"); !strings.Contains(out, "--token ") {
		t.Errorf("cleave up --help does not list --token")
	}
}

// A streamed put checks the parent directory and --if-absent before it
// sends the data: it fails at once, having read at most one chunk.
func TestPutChecksBeforeStreaming(t *testing.T) {
	clearEnv(t)
	useDeployment(t)
	dir := testRoot(t, "c1")
	if code, _, stderr := cli(t, "", "put", "-p", dir+"/there", "-"); code != 0 {
		t.Fatal(stderr)
	}
	for _, tt := range []struct {
		args []string
		code string
	}{
		{[]string{"put", dir + "/missing/f", "-"}, "NOT_FOUND"},
		{[]string{"put", "--if-absent", dir + "/there", "-"}, "CONFLICT"},
		{[]string{"put", "--if-version", "999", dir + "/there", "-"}, "CONFLICT"},
	} {
		in := &zeroReader{n: 8 * client.ChunkSize}
		var out, errb bytes.Buffer
		code := run(tt.args, in, &out, &errb)
		if code != 1 || !strings.HasPrefix(errb.String(), "cleave: "+tt.code+": ") || in.read > client.ChunkSize {
			t.Errorf("cleave %v: exit %d, stderr %q, read %d bytes of stdin; want %s after at most %d bytes", tt.args, code, errb.String(), in.read, tt.code, client.ChunkSize)
		}
	}
}

// zeroReader yields n zero bytes in pieces of at most a chunk, pausing
// before each, and counts what was read.
type zeroReader struct {
	n, read int64
	pause   time.Duration
}

func (r *zeroReader) Read(p []byte) (int, error) {
	if r.read >= r.n {
		return 0, io.EOF
	}
	time.Sleep(r.pause)
	k := int(min(int64(len(p)), r.n-r.read, client.ChunkSize))
	clear(p[:k])
	r.read += int64(k)
	return k, nil
}

// --timeout bounds each request of a transfer, not the whole transfer: a
// put that takes longer than --timeout but keeps moving succeeds, and a
// TIMEOUT names the flag to raise.
func TestTransferOutlivesTimeout(t *testing.T) {
	clearEnv(t)
	useDeployment(t)
	dir := testRoot(t, "c1")
	in := &zeroReader{n: 6 * client.ChunkSize, pause: 700 * time.Millisecond}
	var out, errb bytes.Buffer
	if code := run([]string{"put", "--timeout", "2s", "-p", dir + "/slow", "-"}, in, &out, &errb); code != 0 {
		t.Fatalf("put of a 6 MiB stream over ~4s with --timeout 2s: exit %d, stderr %q", code, errb.String())
	}
	// A router that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	if code, _, stderr := cli(t, "", "--router", ln.Addr().String(), "--timeout", "300ms", "stat", "/x"); code != 1 || !strings.Contains(stderr, "TIMEOUT") || !strings.Contains(stderr, "--timeout") {
		t.Errorf("a TIMEOUT: exit %d, stderr %q; want it to name --timeout", code, stderr)
	}
}

// Byte offsets and lengths take the one byte-size syntax of every size flag.
func TestSizeFlagsTakeUnits(t *testing.T) {
	clearEnv(t)
	useDeployment(t)
	dir := testRoot(t, "c1")
	if code, _, stderr := cli(t, strings.Repeat("x", 4096), "put", "-p", dir+"/f", "-"); code != 0 {
		t.Fatal(stderr)
	}
	if code, out, stderr := cli(t, "", "get", "--offset", "1KiB", "--length", "2KiB", dir+"/f", "-"); code != 0 || len(out) != 2048 {
		t.Errorf("get --offset 1KiB --length 2KiB: exit %d, %d bytes, stderr %q; want 2048 bytes", code, len(out), stderr)
	}
	if code, _, stderr := cli(t, "y", "write", "--offset", "1KiB", dir+"/f", "-"); code != 0 {
		t.Errorf("write --offset 1KiB: exit %d, stderr %q", code, stderr)
	}
}
