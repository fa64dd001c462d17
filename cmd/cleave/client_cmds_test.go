package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/cleavefs/cleave/internal/testcluster"
)

// cli runs the CLI in-process and returns its exit code, stdout and stderr.
func cli(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// clearEnv unsets the CLEAVE_* variables the client commands read.
func clearEnv(t *testing.T) {
	for _, k := range []string{"CLEAVE_ROUTER", "CLEAVE_TOKEN", "CLEAVE_TIMEOUT"} {
		t.Setenv(k, "")
	}
}

// useDeployment points CLEAVE_ROUTER at the shared real deployment.
func useDeployment(t *testing.T) string {
	t.Helper()
	addr := deployment(t).Addr
	t.Setenv("CLEAVE_ROUTER", addr)
	return addr
}

func TestUsageErrors(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{
		{"stat"},                           // missing PATH
		{"stat", "/a", "/b"},               // too many
		{"mkdir", "--nope", "/a"},          // unknown flag
		{"nosuchverb"},                     // unknown command
		{"--timeout", "soon", "status"},    // bad flag value
		{"-o", "yaml", "stat", "/a"},       // bad output format
		{"--timeout", "-1s", "stat", "/a"}, // non-positive timeout
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, stderr := cli(t, "", args...)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr %q", code, stderr)
			}
			if !strings.HasPrefix(stderr, "cleave: ") || !strings.Contains(stderr, "--help' for usage.") {
				t.Errorf("stderr %q", stderr)
			}
			if out != "" {
				t.Errorf("stdout %q", out)
			}
		})
	}
	t.Run("CLEAVE_TIMEOUT", func(t *testing.T) {
		t.Setenv("CLEAVE_TIMEOUT", "soon")
		if code, _, stderr := cli(t, "", "stat", "/a"); code != 2 || !strings.Contains(stderr, "CLEAVE_TIMEOUT") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

func TestHelpExitsZero(t *testing.T) {
	code, out, _ := cli(t, "", "--help")
	if code != 0 || !strings.Contains(out, "put") || !strings.Contains(out, "--router") {
		t.Errorf("exit %d, help %q", code, out)
	}
}

func TestConnectionRefused(t *testing.T) {
	clearEnv(t)
	addr := testcluster.ClosedAddr(t)
	code, out, stderr := cli(t, "", "--router", addr, "stat", "/a")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	re := regexp.MustCompile(`^cleave: UNAVAILABLE: [^\n]*` + regexp.QuoteMeta(addr) + `[^\n]*\n$`)
	if !re.MatchString(stderr) {
		t.Errorf("stderr %q does not match %s", stderr, re)
	}
	if out != "" {
		t.Errorf("stdout %q", out)
	}
}

func TestServerErrorFormat(t *testing.T) {
	clearEnv(t)
	addr := useDeployment(t)
	code, _, stderr := cli(t, "", "--router", addr, "get", "/a/b")
	if code != 1 || !regexp.MustCompile(`^cleave: NOT_FOUND: [^\n]*/a/b[^\n]*\n$`).MatchString(stderr) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = cli(t, "", "--router", addr, "stat", "/a//b")
	if code != 1 || !strings.HasPrefix(stderr, "cleave: INVALID: ") {
		t.Errorf("bad path: exit %d, stderr %q", code, stderr)
	}
}

// probe adds a command that records the resolved globals.
func probe(t *testing.T, args ...string) (globals, error) {
	t.Helper()
	root, _ := newRoot()
	var g globals
	var gerr error
	root.AddCommand(&cobra.Command{Use: "probe", RunE: func(cmd *cobra.Command, _ []string) error {
		g, gerr = resolveGlobals(cmd)
		return nil
	}})
	root.SetArgs(append([]string{"probe"}, args...))
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	return g, gerr
}

func TestGlobalPrecedence(t *testing.T) {
	clearEnv(t)
	g, err := probe(t)
	if err != nil || len(g.routers) != 1 || g.routers[0] != defaultRouter || g.token != "" || g.timeout != defaultTimeout || g.json {
		t.Errorf("defaults: %+v, %v", g, err)
	}
	t.Setenv("CLEAVE_ROUTER", "e1:1, e2:2")
	t.Setenv("CLEAVE_TOKEN", "envtok")
	t.Setenv("CLEAVE_TIMEOUT", "3s")
	g, err = probe(t)
	if err != nil || strings.Join(g.routers, ",") != "e1:1,e2:2" || g.token != "envtok" || g.timeout != 3*time.Second {
		t.Errorf("env: %+v, %v", g, err)
	}
	g, err = probe(t, "--router", "f1:1,f2:2", "--token", "flagtok", "--timeout", "5s", "-o", "json")
	if err != nil || strings.Join(g.routers, ",") != "f1:1,f2:2" || g.token != "flagtok" || g.timeout != 5*time.Second || !g.json {
		t.Errorf("flags: %+v, %v", g, err)
	}
	// An explicitly empty flag still beats the environment.
	g, err = probe(t, "--token", "")
	if err != nil || g.token != "" {
		t.Errorf("empty --token: %+v, %v", g, err)
	}
}

func TestPrecedenceEndToEnd(t *testing.T) {
	clearEnv(t)
	d := testcluster.Start(t, testcluster.Options{Nodes: 1, Token: "secret"})
	t.Setenv("CLEAVE_ROUTER", d.Addr)
	t.Setenv("CLEAVE_TOKEN", "secret")
	if code, out, stderr := cli(t, "", "exists", "/a"); code != 0 || out != "false\n" {
		t.Errorf("env only: exit %d, %q, %q", code, out, stderr)
	}
	if code, _, stderr := cli(t, "", "--token", "wrong", "exists", "/a"); code != 1 || !strings.HasPrefix(stderr, "cleave: UNAUTHORIZED: ") {
		t.Errorf("--token beats env: exit %d, %q", code, stderr)
	}
	if code, _, stderr := cli(t, "", "--router", testcluster.ClosedAddr(t), "exists", "/a"); code != 1 || !strings.HasPrefix(stderr, "cleave: UNAVAILABLE: ") {
		t.Errorf("--router beats env: exit %d, %q", code, stderr)
	}
}

func TestWriteFileAtomicFailure(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "out.bin")
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("partial data"), &errReader{boom})
	if err := writeFileAtomic(dst, r); !errors.Is(err, boom) {
		t.Fatalf("writeFileAtomic = %v, want boom", err)
	}
	assertDir(t, dir, nil)

	// An existing file is left as it was.
	os.WriteFile(dst, []byte("old"), 0o600)
	if err := writeFileAtomic(dst, io.MultiReader(strings.NewReader("new"), &errReader{boom})); err == nil {
		t.Fatal("no error")
	}
	if b, _ := os.ReadFile(dst); string(b) != "old" {
		t.Errorf("existing file now %q", b)
	}
	assertDir(t, dir, []string{"out.bin"})

	if err := writeFileAtomic(dst, strings.NewReader("new")); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(dst)
	if b, _ := os.ReadFile(dst); string(b) != "new" || fi.Mode().Perm() != 0o600 {
		t.Errorf("replaced file %q mode %v", b, fi.Mode())
	}
	assertDir(t, dir, []string{"out.bin"})
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

func assertDir(t *testing.T, dir string, want []string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("dir holds %q, want %q", got, want)
	}
}

func TestGetToFileNoPartialOnError(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	dst := filepath.Join(dir, "f")
	if code, _, _ := cli(t, "", "--router", testcluster.ClosedAddr(t), "get", "/a", dst); code != 1 {
		t.Errorf("exit %d", code)
	}
	if code, _, _ := cli(t, "", "--router", useDeployment(t), "get", "/missing", dst); code != 1 {
		t.Errorf("exit %d", code)
	}
	assertDir(t, dir, nil)
}

func TestFileCommands(t *testing.T) {
	clearEnv(t)
	useDeployment(t)
	docs, other := testRoot(t, "c1"), testRoot(t, "c2")
	ok := func(stdin string, args ...string) string {
		t.Helper()
		code, out, stderr := cli(t, stdin, args...)
		if code != 0 || stderr != "" {
			t.Fatalf("cleave %s: exit %d, stderr %q", strings.Join(args, " "), code, stderr)
		}
		return out
	}
	ok("", "mkdir", "-p", docs+"/sub")
	ok("hello", "put", docs+"/a.txt")
	ok("", "put", docs+"/sub/b.txt", "-")
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, []byte("from file"), 0o644)
	ok("", "put", "-p", other+"/x/c.txt", src)

	if out := ok("", "get", docs+"/a.txt"); out != "hello" {
		t.Errorf("get = %q", out)
	}
	dir := t.TempDir()
	ok("", "get", other+"/x/c.txt", filepath.Join(dir, "c"))
	ok("", "get", docs+"/a.txt", dir) // into a directory: uses the base name
	if b, _ := os.ReadFile(filepath.Join(dir, "c")); string(b) != "from file" {
		t.Errorf("get to file wrote %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(b) != "hello" {
		t.Errorf("get to dir wrote %q", b)
	}
	assertDir(t, dir, []string{"a.txt", "c"})

	out := ok("", "ls", docs)
	re := regexp.MustCompile(`^TYPE +SIZE +VERSION +MTIME +NAME\n` +
		`file +5 +[0-9]+ +20[0-9-]+T[0-9:]+Z +a\.txt\n` +
		`dir +0 +[0-9]+ +20[0-9-]+T[0-9:]+Z +sub\n$`)
	if !re.MatchString(out) {
		t.Errorf("ls table:\n%s\nwant to match %s", out, re)
	}
	var page struct {
		Entries []map[string]any `json:"entries"`
	}
	if err := json.Unmarshal([]byte(ok("", "ls", "-o", "json", docs)), &page); err != nil || len(page.Entries) != 2 || page.Entries[1]["type"] != "dir" {
		t.Errorf("ls json = %v, %v", page.Entries, err)
	}
	if out := ok("", "ls", "-o", "json", docs+"/sub"); !strings.HasPrefix(out, "{\n  \"entries\": [\n    {\n      \"name\": \"b.txt\"") {
		t.Errorf("ls json of sub = %q", out)
	}
	ok("", "mkdir", docs+"/empty")
	if out := ok("", "ls", "-o", "json", docs+"/empty"); out != "{\n  \"entries\": [],\n  \"next\": \"\"\n}\n" {
		t.Errorf("ls json of an empty dir = %q", out)
	}
}

func TestStatJSON(t *testing.T) {
	clearEnv(t)
	useDeployment(t)
	f := testRoot(t, "c1") + "/a.txt"
	if code, _, stderr := cli(t, "hello", "put", "-p", f); code != 0 {
		t.Fatal(stderr)
	}
	code, out, stderr := cli(t, "", "stat", "-o", "json", f)
	if code != 0 {
		t.Fatal(stderr)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	mt, err := time.Parse(time.RFC3339Nano, fmt.Sprint(st["mtime"]))
	if st["name"] != "a.txt" || st["type"] != "file" || st["size"] != 5.0 || err != nil || time.Since(mt) > time.Hour ||
		st["version"] == 0.0 || st["checksum"] != "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" || len(st) != 6 {
		t.Errorf("stat -o json:\n%s", out)
	}
	if !strings.HasPrefix(out, "{\n  \"name\": ") || !strings.HasSuffix(out, "}\n") {
		t.Errorf("stat -o json not indented: %q", out)
	}
	_, out, _ = cli(t, "", "stat", f)
	if !strings.Contains(out, "type      file\n") || !regexp.MustCompile(`mtime +20[0-9-]+T[0-9:.]+Z\n`).MatchString(out) {
		t.Errorf("stat table:\n%s", out)
	}
	_, out, _ = cli(t, "", "stat", "-o", "json", "/")
	if !strings.Contains(out, `"type": "dir"`) {
		t.Errorf("stat / = %s", out)
	}
}

func TestRmAndExists(t *testing.T) {
	clearEnv(t)
	useDeployment(t)
	r := testRoot(t, "c1")
	cli(t, "x", "put", "-p", r+"/u/f")
	if code, _, stderr := cli(t, "", "rm", r); code != 1 || !strings.HasPrefix(stderr, "cleave: NOT_EMPTY: ") {
		t.Errorf("rm non-empty: %d %q", code, stderr)
	}
	if code, _, stderr := cli(t, "", "rm", "-r", r); code != 0 {
		t.Errorf("rm -r: %d %q", code, stderr)
	}
	if _, out, _ := cli(t, "", "exists", r+"/u/f"); out != "false\n" {
		t.Errorf("exists after rm -r = %q", out)
	}
	if _, out, _ := cli(t, "", "exists", "/"); out != "true\n" {
		t.Errorf("exists / = %q", out)
	}
}

func TestStatus(t *testing.T) {
	clearEnv(t)
	d := deployment(t)
	useDeployment(t)
	code, out, stderr := cli(t, "", "status", "-o", "json")
	if code != 0 {
		t.Fatal(stderr)
	}
	var st struct {
		Router   string `json:"router"`
		Version  uint64 `json:"version"`
		Clusters []struct {
			ID    string `json:"id"`
			Range struct {
				Start json.Number `json:"start"`
				End   json.Number `json:"end"`
			} `json:"range"`
			Leader string           `json:"leader"`
			Nodes  []map[string]any `json:"nodes"`
		} `json:"clusters"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if st.Router != "r1" || st.Version != 1 || len(st.Clusters) != 2 {
		t.Fatalf("status json:\n%s", out)
	}
	c := st.Clusters[1]
	if c.ID != "c2" || c.Range.End != "18446744073709551616" || c.Leader == "" || len(c.Nodes) != 3 ||
		c.Nodes[0]["addr"] != d.Table.Clusters[1].Members[0].Addr || c.Nodes[0]["role"] == "" {
		t.Errorf("status json:\n%s", out)
	}
	if !strings.HasPrefix(out, "{\n  \"") || !strings.HasSuffix(out, "}\n") {
		t.Errorf("status json not indented or not newline-terminated: %q", out)
	}
	code, out, _ = cli(t, "", "status")
	for _, s := range []string{"router r1, routing table version 1", "c1", "c2", "2^64", "leader", d.Table.Clusters[0].Members[2].Addr} {
		if code != 0 || !strings.Contains(out, s) {
			t.Errorf("status table lacks %q:\n%s", s, out)
		}
	}
}
