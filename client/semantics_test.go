package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/testcluster"
	"github.com/cleavefs/cleave/wire"
)

// tree creates a small tree under root: dir/f ("hello"), file ("x"),
// full/child ("c").
func tree(t *testing.T, c *client.Client, root string) {
	t.Helper()
	ctx := context.Background()
	for p, d := range map[string]string{"/dir/f": "hello", "/file": "x", "/full/child": "c"} {
		if _, err := c.Put(ctx, root+p, []byte(d), client.Parents()); err != nil {
			t.Fatalf("setup put %s: %v", p, err)
		}
	}
}

func mustGet(t *testing.T, c *client.Client, p string) string {
	t.Helper()
	b, err := c.Get(context.Background(), p)
	if err != nil {
		t.Fatalf("get %s: %v", p, err)
	}
	return string(b)
}

// TestSemantics runs every operation and every error code through a real
// 2-cluster deployment. Each case gets a fresh tree in its own root.
func TestSemantics(t *testing.T) {
	c := sharedClient(t)
	ctx := context.Background()
	type env struct {
		r, other string // a root with tree(), and an empty root in the other cluster
	}
	for _, tc := range []struct {
		name  string
		do    func(e env) error
		want  client.Code
		check func(t *testing.T, e env)
	}{
		{name: "mkdir", do: func(e env) error { return c.Mkdir(ctx, e.r+"/new") }},
		{name: "mkdir exists", do: func(e env) error { return c.Mkdir(ctx, e.r+"/dir") }, want: client.CodeExists},
		{name: "mkdir no parent", do: func(e env) error { return c.Mkdir(ctx, e.r+"/a/b") }, want: client.CodeNotFound},
		{name: "mkdir under file", do: func(e env) error { return c.Mkdir(ctx, e.r+"/file/d") }, want: client.CodeNotDir},
		{name: "put over dir", do: func(e env) error { _, err := c.Put(ctx, e.r+"/dir", []byte("x")); return err }, want: client.CodeIsDir},
		{name: "put if-absent existing", do: func(e env) error {
			_, err := c.Put(ctx, e.r+"/file", []byte("y"), client.IfAbsent())
			return err
		}, want: client.CodeConflict, check: func(t *testing.T, e env) {
			if got := mustGet(t, c, e.r+"/file"); got != "x" {
				t.Errorf("file = %q after a refused put, want x", got)
			}
		}},
		{name: "put if-absent new", do: func(e env) error {
			_, err := c.Put(ctx, e.r+"/new", []byte("y"), client.IfAbsent())
			return err
		}},
		{name: "put if-version", do: func(e env) error {
			st, err := c.Stat(ctx, e.r+"/file")
			if err != nil {
				return err
			}
			if _, err := c.Put(ctx, e.r+"/file", []byte("v2"), client.IfVersion(st.Version)); err != nil {
				return err
			}
			_, err = c.Put(ctx, e.r+"/file", []byte("v3"), client.IfVersion(st.Version)) // stale now
			return err
		}, want: client.CodeConflict, check: func(t *testing.T, e env) {
			if got := mustGet(t, c, e.r+"/file"); got != "v2" {
				t.Errorf("file = %q, want v2", got)
			}
		}},
		{name: "get missing", do: func(e env) error { _, err := c.Get(ctx, e.r+"/nope"); return err }, want: client.CodeNotFound},
		{name: "get dir", do: func(e env) error { _, err := c.Get(ctx, e.r+"/dir"); return err }, want: client.CodeIsDir},
		{name: "get below file", do: func(e env) error { _, err := c.Get(ctx, e.r+"/file/x"); return err }, want: client.CodeNotDir},
		{name: "get range", do: func(e env) error {
			b, _, err := c.GetRange(ctx, e.r+"/dir/f", 1, 3)
			if err == nil && string(b) != "ell" {
				return errors.New("range = " + string(b))
			}
			return err
		}},
		{name: "write at offset", do: func(e env) error {
			_, err := c.Write(ctx, e.r+"/dir/f", 7, []byte("XY"))
			return err
		}, check: func(t *testing.T, e env) {
			if got := mustGet(t, c, e.r+"/dir/f"); got != "hello\x00\x00XY" {
				t.Errorf("after sparse write: %q, want hello, two zero bytes, XY", got)
			}
		}},
		{name: "write over", do: func(e env) error { _, err := c.Write(ctx, e.r+"/dir/f", 1, []byte("EL")); return err },
			check: func(t *testing.T, e env) {
				if got := mustGet(t, c, e.r+"/dir/f"); got != "hELlo" {
					t.Errorf("after write: %q", got)
				}
			}},
		{name: "write dir", do: func(e env) error { _, err := c.Write(ctx, e.r+"/dir", 0, []byte("x")); return err }, want: client.CodeIsDir},
		{name: "append", do: func(e env) error {
			if _, err := c.Append(ctx, e.r+"/dir/f", []byte(" world")); err != nil {
				return err
			}
			_, err := c.Append(ctx, e.r+"/dir/new", []byte("n"))
			return err
		}, check: func(t *testing.T, e env) {
			if got := mustGet(t, c, e.r+"/dir/f"); got != "hello world" {
				t.Errorf("after append: %q", got)
			}
			if got := mustGet(t, c, e.r+"/dir/new"); got != "n" {
				t.Errorf("append to a new file: %q", got)
			}
		}},
		{name: "append dir", do: func(e env) error { _, err := c.Append(ctx, e.r+"/dir", []byte("x")); return err }, want: client.CodeIsDir},
		{name: "rename file", do: func(e env) error { return c.Rename(ctx, e.r+"/file", e.r+"/dir/moved") },
			check: func(t *testing.T, e env) {
				if got := mustGet(t, c, e.r+"/dir/moved"); got != "x" {
					t.Errorf("moved = %q", got)
				}
				if ok, _ := c.Exists(ctx, e.r+"/file"); ok {
					t.Error("source still exists")
				}
			}},
		{name: "rename dir", do: func(e env) error { return c.Rename(ctx, e.r+"/full", e.r+"/dir/full2") },
			check: func(t *testing.T, e env) {
				if got := mustGet(t, c, e.r+"/dir/full2/child"); got != "c" {
					t.Errorf("child after directory rename = %q", got)
				}
			}},
		{name: "rename missing", do: func(e env) error { return c.Rename(ctx, e.r+"/nope", e.r+"/x") }, want: client.CodeNotFound},
		{name: "rename across roots", do: func(e env) error { return c.Rename(ctx, e.r+"/file", e.other+"/file") }, want: client.CodeCrossRoot,
			check: func(t *testing.T, e env) {
				if got := mustGet(t, c, e.r+"/file"); got != "x" {
					t.Errorf("source after refused rename = %q", got)
				}
			}},
		{name: "rename if-absent existing", do: func(e env) error {
			return c.Rename(ctx, e.r+"/file", e.r+"/dir/f", client.IfAbsent())
		}, want: client.CodeConflict},
		{name: "rename to /", do: func(e env) error { return c.Rename(ctx, e.r+"/file", "/") }, want: client.CodeInvalid},
		{name: "copy", do: func(e env) error { _, err := c.Copy(ctx, e.r+"/dir/f", e.r+"/copy"); return err },
			check: func(t *testing.T, e env) {
				if got := mustGet(t, c, e.r+"/copy"); got != "hello" {
					t.Errorf("copy = %q", got)
				}
				if got := mustGet(t, c, e.r+"/dir/f"); got != "hello" {
					t.Errorf("source after copy = %q", got)
				}
			}},
		{name: "copy across roots", do: func(e env) error {
			_, err := c.Copy(ctx, e.r+"/dir/f", e.other+"/copied", client.Parents())
			return err
		}, check: func(t *testing.T, e env) {
			if got := mustGet(t, c, e.other+"/copied"); got != "hello" {
				t.Errorf("copy across roots = %q", got)
			}
		}},
		{name: "copy missing", do: func(e env) error { _, err := c.Copy(ctx, e.r+"/nope", e.r+"/x"); return err }, want: client.CodeNotFound},
		{name: "copy across roots missing", do: func(e env) error { _, err := c.Copy(ctx, e.r+"/nope", e.other+"/x"); return err }, want: client.CodeNotFound},
		{name: "rm non-empty", do: func(e env) error { return c.Remove(ctx, e.r+"/full") }, want: client.CodeNotEmpty},
		{name: "rm missing", do: func(e env) error { return c.Remove(ctx, e.r+"/nope") }, want: client.CodeNotFound},
		{name: "rm -r", do: func(e env) error { return c.RemoveAll(ctx, e.r+"/full") }},
		{name: "ls file", do: func(e env) error { _, err := c.List(ctx, e.r+"/file"); return err }, want: client.CodeNotDir},
		{name: "ls missing", do: func(e env) error { _, err := c.List(ctx, e.r+"/nope"); return err }, want: client.CodeNotFound},
		{name: "stat missing", do: func(e env) error { _, err := c.Stat(ctx, e.r+"/nope"); return err }, want: client.CodeNotFound},
		{name: "stat below file", do: func(e env) error { _, err := c.Stat(ctx, e.r+"/file/x/y"); return err }, want: client.CodeNotDir},
		{name: "ls below file", do: func(e env) error { _, err := c.List(ctx, e.r+"/file/x"); return err }, want: client.CodeNotDir},
		{name: "exists below file", do: func(e env) error {
			ok, err := c.Exists(ctx, e.r+"/file/x")
			if err == nil && ok {
				return errors.New("exists = true")
			}
			return err
		}},
		{name: "stat below missing dir", do: func(e env) error { _, err := c.Stat(ctx, e.r+"/nope/x"); return err }, want: client.CodeNotFound},
		{name: "invalid path", do: func(e env) error { _, err := c.Stat(ctx, e.r+"/a/../b"); return err }, want: client.CodeInvalid},
		{name: "invalid destination", do: func(e env) error { return c.Rename(ctx, e.r+"/file", e.r+"//x") }, want: client.CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := env{r: root(t, "c1", ""), other: root(t, "c2", "o")}
			tree(t, c, e.r)
			err := tc.do(e)
			if got := client.CodeOf(err); got != tc.want {
				t.Fatalf("got %v (%v), want %v", got, err, tc.want)
			}
			if err != nil && !errors.Is(err, client.Sentinel(tc.want)) {
				t.Errorf("errors.Is(%v, sentinel of %v) = false", err, tc.want)
			}
			if tc.check != nil {
				tc.check(t, e)
			}
		})
	}
}

// TestExactlyOnce delivers a mutation to the router, lets it apply, then
// cuts the client's connection before the response comes back (a real
// network fault, through a TCP proxy). The client redials and resends with
// the same (session, seq); the cluster must answer with the first result
// and not apply it again.
func TestExactlyOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		op    wire.Op
		do    func(c *client.Client, r string) error
		check func(t *testing.T, c *client.Client, r string)
	}{
		{"append", wire.OpAppend, func(c *client.Client, r string) error {
			_, err := c.Append(context.Background(), r+"/log", []byte("once;"))
			return err
		}, func(t *testing.T, c *client.Client, r string) {
			if got := mustGet(t, c, r+"/log"); got != "start;once;" {
				t.Errorf("log = %q, want the append applied once", got)
			}
		}},
		{"mv", wire.OpRename, func(c *client.Client, r string) error {
			return c.Rename(context.Background(), r+"/log", r+"/moved")
		}, func(t *testing.T, c *client.Client, r string) {
			if got := mustGet(t, c, r+"/moved"); got != "start;" {
				t.Errorf("moved = %q", got)
			}
		}},
		{"put if-absent", wire.OpPut, func(c *client.Client, r string) error {
			_, err := c.Put(context.Background(), r+"/new", []byte("first"), client.IfAbsent())
			return err
		}, func(t *testing.T, c *client.Client, r string) {
			if got := mustGet(t, c, r+"/new"); got != "first" {
				t.Errorf("new = %q", got)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := root(t, "c1", "")
			if _, err := sharedClient(t).Put(context.Background(), r+"/log", []byte("start;"), client.Parents()); err != nil {
				t.Fatal(err)
			}
			p := testcluster.NewProxy(t, shared.Addr)
			c := dial(t, []string{p.Addr})
			p.CutResponseOnce(func(req *wire.Request) bool { return req.Op == tc.op })
			err := tc.do(c, r)
			if err != nil {
				t.Fatalf("%s through a cut connection: %v (the retry must return the first result)", tc.name, err)
			}
			if p.Cuts() != 1 {
				t.Fatalf("the proxy cut %d responses, want 1", p.Cuts())
			}
			var seqs []uint64
			for _, req := range userRequests(p) {
				if req.Op == tc.op {
					seqs = append(seqs, req.Seq)
				}
			}
			if len(seqs) != 2 || seqs[0] != seqs[1] || seqs[0] == 0 {
				t.Errorf("sends of %v carried seqs %v, want the same nonzero seq twice", tc.op, seqs)
			}
			tc.check(t, c, r)
		})
	}
}

func TestListPages(t *testing.T) {
	c := sharedClient(t)
	ctx := context.Background()
	r := root(t, "c1", "")
	var want []string
	for i := range 25 {
		name := string(rune('a'+i%26)) + strings.Repeat("z", i/26)
		want = append(want, name)
		if _, err := c.Put(ctx, r+"/"+name, nil, client.Parents()); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	after, pages := "", 0
	for {
		page, next, err := c.ListPage(ctx, r, 10, after)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 10 {
			t.Fatalf("ListPage with limit 10 returned a page of %d entries", len(page))
		}
		pages++
		for _, e := range page {
			got = append(got, e.Name)
		}
		if pages == 1 {
			// The directory changes between pages: an entry before the token
			// must not shift the next page.
			if err := c.Remove(ctx, r+"/a"); err != nil {
				t.Fatal(err)
			}
		}
		if next == "" {
			break
		}
		after = next
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") || pages != 3 {
		t.Errorf("pages = %d, names %v; want 3 pages of %v", pages, got, want)
	}
}

func TestListTopPages(t *testing.T) {
	c := sharedClient(t)
	ctx := context.Background()
	for i := range 6 {
		cl := "c1"
		if i%2 == 1 {
			cl = "c2"
		}
		if err := c.Mkdir(ctx, root(t, cl, string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	all, err := c.List(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	after := ""
	for range 1000 {
		page, next, err := c.ListPage(ctx, "/", 4, after)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 4 {
			t.Fatalf("page of %d roots for limit 4", len(page))
		}
		for _, e := range page {
			got = append(got, e.Name)
		}
		if next == "" {
			break
		}
		after = next
	}
	var names []string
	for _, e := range all {
		names = append(names, e.Name)
	}
	if !sort.StringsAreSorted(got) || strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("paged / = %v\nwhole / = %v", got, names)
	}
}

func TestStreaming(t *testing.T) {
	// Multi-megabyte transfers through three race-instrumented nodes in
	// one process can take far longer per call than the 10 s default.
	c := sharedClient(t, client.WithTimeout(2*time.Minute))
	ctx := context.Background()
	r := root(t, "c1", "")
	for _, size := range []int{0, 100, client.ChunkSize, 5*client.ChunkSize + 12345} {
		t.Run(itoa(size), func(t *testing.T) {
			data := make([]byte, size)
			rand.Read(data)
			p := r + "/f" + itoa(size)
			st, err := c.Upload(ctx, p, bytes.NewReader(data), client.Parents())
			if err != nil {
				t.Fatal(err)
			}
			if st.Size != int64(size) {
				t.Errorf("uploaded size %d, want %d", st.Size, size)
			}
			var buf bytes.Buffer
			dst, err := c.Download(ctx, p, &buf)
			if err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(buf.Bytes()) != sha256.Sum256(data) || dst.Version != st.Version {
				t.Fatalf("download differs (%d bytes, version %d; want %d bytes, version %d)", buf.Len(), dst.Version, size, st.Version)
			}
			f, err := c.Open(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if size > 10 {
				if _, err := f.Seek(int64(size/2), io.SeekStart); err != nil {
					t.Fatal(err)
				}
				rest, err := io.ReadAll(f)
				if err != nil || !bytes.Equal(rest, data[size/2:]) {
					t.Fatalf("read after seek: %d bytes, %v", len(rest), err)
				}
			}
			f.Close()
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestDownloadSeesOneVersion(t *testing.T) {
	// Multi-megabyte transfers through three race-instrumented nodes in
	// one process can take far longer per call than the 10 s default.
	c := sharedClient(t, client.WithTimeout(2*time.Minute))
	ctx := context.Background()
	r := root(t, "c1", "")
	data := bytes.Repeat([]byte("a"), 3*client.ChunkSize)
	if _, err := c.Upload(ctx, r+"/f", bytes.NewReader(data), client.Parents()); err != nil {
		t.Fatal(err)
	}
	f, err := c.Open(ctx, r+"/f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := c.Put(ctx, r+"/f", []byte("replaced")); err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(f)
	if !errors.Is(err, client.ErrConflict) {
		t.Fatalf("reading on after the file changed: %v, want CONFLICT", err)
	}
}

// TestFS checks the io/fs view against the SDK's own listing and with
// fstest.TestFS, which exercises Open, ReadDir, Stat, Seek and ReadFile.
func TestFS(t *testing.T) {
	c := sharedClient(t)
	ctx := context.Background()
	r := root(t, "c1", "")
	tree(t, c, r)
	if err := c.MkdirAll(ctx, r+"/empty"); err != nil {
		t.Fatal(err)
	}
	fsys := c.FS(ctx)
	sub := strings.TrimPrefix(r, "/")
	var walked []string
	err := fs.WalkDir(fsys, sub, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		walked = append(walked, "/"+p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	if err := c.Walk(ctx, r, func(p string, _ *client.Stat, err error) error {
		listed = append(listed, p)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(walked, "\n") != strings.Join(listed, "\n") {
		t.Errorf("fs.WalkDir:\n%s\nWalk:\n%s", strings.Join(walked, "\n"), strings.Join(listed, "\n"))
	}
	subFS, err := fs.Sub(fsys, sub)
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(subFS, "dir/f", "file", "full/child", "empty"); err != nil {
		t.Error(err)
	}
	if _, err := fs.Stat(fsys, sub+"/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of a missing name: %v, want fs.ErrNotExist", err)
	}
	fi, err := fs.Stat(fsys, ".")
	if err != nil || !fi.IsDir() || fi.Name() != "." {
		t.Errorf("Stat(.) = %v, %v", fi, err)
	}
	if st, ok := fi.Sys().(*client.Stat); !ok || !st.IsDir() {
		t.Errorf("Sys() = %T", fi.Sys())
	}
}
