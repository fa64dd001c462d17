package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/wire"
)

func TestNewVerbs(t *testing.T) {
	clearEnv(t)
	useDeployment(t)
	r, o := testRoot(t, "c1"), testRoot(t, "c2")
	run := func(stdin string, args ...string) (int, string, string) { return cli(t, stdin, args...) }
	ok := func(stdin string, args ...string) string {
		t.Helper()
		code, out, stderr := run(stdin, args...)
		if code != 0 {
			t.Fatalf("cleave %s: exit %d, stderr %q", strings.Join(args, " "), code, stderr)
		}
		return out
	}
	ok("hello", "put", "-p", r+"/f")
	ok(" world", "append", r+"/f")
	ok("", "append", r+"/f", "-")
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, []byte("!"), 0o644)
	ok("", "append", r+"/f", src)
	if got := ok("", "get", r+"/f"); got != "hello world!" {
		t.Fatalf("after appends: %q", got)
	}
	ok("W", "write", "--offset", "6", r+"/f")
	ok("Z", "write", "--offset", "14", r+"/f")
	if got := ok("", "get", r+"/f"); got != "hello World!\x00\x00Z" {
		t.Errorf("after writes: %q", got)
	}
	if got := ok("", "get", "--offset", "6", "--length", "5", r+"/f"); got != "World" {
		t.Errorf("get range: %q", got)
	}
	if got := ok("", "get", "--offset", "12", r+"/f"); got != "\x00\x00Z" {
		t.Errorf("get from offset: %q", got)
	}
	ok("", "mv", r+"/f", r+"/g")
	ok("", "cp", r+"/g", r+"/h")
	ok("", "cp", "-p", r+"/g", o+"/d/copied")
	for _, p := range []string{r + "/h", o + "/d/copied"} {
		if got := ok("", "get", p); got != "hello World!\x00\x00Z" {
			t.Errorf("%s = %q", p, got)
		}
	}
	if got := ok("", "exists", r+"/f"); got != "false\n" {
		t.Errorf("exists after mv = %q", got)
	}
	if code, _, _ := run("", "write", r+"/g"); code != 2 {
		t.Errorf("write without --offset: exit %d, want 2", code)
	}
}

// TestErrorMessages checks that each code reaches the CLI's stderr as
// "cleave: CODE: message" with exit status 1.
func TestErrorMessages(t *testing.T) {
	clearEnv(t)
	useDeployment(t)
	r, o := testRoot(t, "c1"), testRoot(t, "c2")
	if code, _, stderr := cli(t, "x", "put", "-p", r+"/full/f"); code != 0 {
		t.Fatal(stderr)
	}
	for _, tc := range []struct {
		code wire.Code
		args []string
	}{
		{wire.NotFound, []string{"get", r + "/nope"}},
		{wire.Exists, []string{"mkdir", r + "/full"}},
		{wire.NotDir, []string{"ls", r + "/full/f"}},
		{wire.IsDir, []string{"get", r + "/full"}},
		{wire.NotEmpty, []string{"rm", r + "/full"}},
		{wire.CrossRoot, []string{"mv", r + "/full/f", o + "/f"}},
		{wire.Conflict, []string{"put", "--if-absent", r + "/full/f"}},
		{wire.Conflict, []string{"put", "--if-version", "1", r + "/full/f"}},
		{wire.Invalid, []string{"stat", r + "/a/../b"}},
	} {
		t.Run(tc.code.String()+"_"+tc.args[0], func(t *testing.T) {
			code, out, stderr := cli(t, "y", tc.args...)
			re := regexp.MustCompile(`^cleave: ` + tc.code.String() + `: \S[^\n]*\n$`)
			if code != 1 || !re.MatchString(stderr) || out != "" {
				t.Errorf("cleave %s: exit %d, stdout %q, stderr %q; want exit 1 and %s", strings.Join(tc.args, " "), code, out, stderr, re)
			}
		})
	}
}

func TestLsPagesAndRecursive(t *testing.T) {
	clearEnv(t)
	useDeployment(t)
	r := testRoot(t, "c1")
	for _, p := range []string{"/a", "/b/c", "/b/d/e", "/f", "/g", "/h"} {
		if code, _, stderr := cli(t, "x", "put", "-p", r+p); code != 0 {
			t.Fatal(stderr)
		}
	}
	// Pages of 2 of r's 5 children, following the token printed on stderr.
	var names []string
	after := ""
	for i := 0; ; i++ {
		args := []string{"ls", "--limit", "2", r}
		if after != "" {
			args = append(args, "--after", after)
		}
		code, out, stderr := cli(t, "", args...)
		if code != 0 {
			t.Fatal(stderr)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")[1:]
		if len(lines) > 2 {
			t.Fatalf("ls --limit 2 printed %d entries:\n%s", len(lines), out)
		}
		for _, l := range lines {
			f := strings.Fields(l)
			names = append(names, f[len(f)-1])
		}
		m := regexp.MustCompile(`^next: (\S+)\n$`).FindStringSubmatch(stderr)
		if m == nil {
			if stderr != "" {
				t.Fatalf("stderr %q", stderr)
			}
			break
		}
		after = m[1]
		if i > 5 {
			t.Fatal("pages do not end")
		}
	}
	if strings.Join(names, ",") != "a,b,f,g,h" {
		t.Errorf("paged names %v", names)
	}
	// JSON form carries the token as a field.
	code, out, _ := cli(t, "", "-o", "json", "ls", "--limit", "2", r)
	var page struct {
		Entries []client.Stat `json:"entries"`
		Next    string        `json:"next"`
	}
	if err := json.Unmarshal([]byte(out), &page); code != 0 || err != nil || len(page.Entries) != 2 || page.Next == "" {
		t.Errorf("ls --limit -o json = %s (%v)", out, err)
	}

	// ls -R lists exactly what fs.WalkDir over the SDK's io/fs sees.
	code, out, stderr := cli(t, "", "-o", "json", "ls", "-R", r)
	if code != 0 {
		t.Fatal(stderr)
	}
	var rec struct {
		Entries []struct {
			Path string `json:"path"`
			Type string `json:"type"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatal(err)
	}
	var fromLs []string
	for _, e := range rec.Entries {
		fromLs = append(fromLs, e.Path+" "+e.Type)
	}
	c, err := client.Dial(context.Background(), []string{deployment(t).Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var fromWalk []string
	err = fs.WalkDir(c.FS(context.Background()), strings.TrimPrefix(r, "/"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || "/"+p == r {
			return err
		}
		typ := "file"
		if d.IsDir() {
			typ = "dir"
		}
		fromWalk = append(fromWalk, "/"+p+" "+typ)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(fromLs, "\n") != strings.Join(fromWalk, "\n") || len(fromLs) != 8 {
		t.Errorf("ls -R:\n%s\nfs.WalkDir:\n%s", strings.Join(fromLs, "\n"), strings.Join(fromWalk, "\n"))
	}
	code, out, _ = cli(t, "", "ls", "-R", r)
	if code != 0 || !strings.Contains(out, r+"/b/d/e\n") || !strings.HasPrefix(out, "TYPE") {
		t.Errorf("ls -R table:\n%s", out)
	}
}

// The transfers get a long --timeout: the default 10 s bounds the whole
// command, and on a loaded machine (race detector, parallel packages) a
// tree of several chunks can take longer; speed is not what this tests.
func TestPutGetTree(t *testing.T) {
	clearEnv(t)
	useDeployment(t)
	r := testRoot(t, "c2")
	src := t.TempDir()
	files := map[string][]byte{"a.txt": []byte("a"), "sub/b.bin": make([]byte, 3*client.ChunkSize+7), "sub/deeper/c": nil}
	rand.Read(files["sub/b.bin"])
	os.MkdirAll(filepath.Join(src, "emptydir"), 0o755)
	for p, d := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755)
		os.WriteFile(filepath.Join(src, p), d, 0o644)
	}
	code, _, stderr := cli(t, "", "--timeout", "2m", "put", "-r", src, r+"/tree")
	if code != 0 {
		t.Fatalf("cleave put -r: exit %d, stderr %q", code, stderr)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if code, _, stderr := cli(t, "", "--timeout", "2m", "get", "-r", r+"/tree", dst); code != 0 {
		t.Fatal(stderr)
	}
	for p, d := range files {
		got, err := os.ReadFile(filepath.Join(dst, p))
		if err != nil || !bytes.Equal(got, d) {
			t.Errorf("%s: %d bytes, %v; want %d bytes", p, len(got), err, len(d))
		}
	}
	if fi, err := os.Stat(filepath.Join(dst, "emptydir")); err != nil || !fi.IsDir() {
		t.Errorf("empty directory not copied: %v", err)
	}
	// A big single file streams through put/get and keeps its bytes.
	big := filepath.Join(src, "sub/b.bin")
	if code, _, stderr := cli(t, "", "--timeout", "2m", "put", r+"/big", big); code != 0 {
		t.Fatal(stderr)
	}
	out := filepath.Join(t.TempDir(), "big")
	if code, _, stderr := cli(t, "", "--timeout", "2m", "get", r+"/big", out); code != 0 {
		t.Fatal(stderr)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, files["sub/b.bin"]) {
		t.Error("big file differs after put/get")
	}
}
