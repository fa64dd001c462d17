package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
	"github.com/cockroachdb/pebble/v2"
)

var wholeRing = wire.Range{}

// node is one FSM over a fresh Pebble DB, fed like the replica feeds it:
// one indexed batch per entry, committed after Apply.
type node struct {
	t     testing.TB
	db    *pebble.DB
	fsm   *FSM
	index uint64
}

func newNode(t testing.TB, r wire.Range) *node {
	t.Helper()
	db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	n := &node{t: t, db: db, fsm: mustFSM(db)}
	b := db.NewBatch()
	if err := n.fsm.Bootstrap(b, r); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	return n
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// raw applies cmd as the next log entry and commits it.
func (n *node) raw(cmd []byte) *Result {
	n.t.Helper()
	n.index++
	b := n.db.NewIndexedBatch()
	defer b.Close()
	res := n.fsm.Apply(b, n.index, cmd)
	if res == nil {
		n.t.Fatalf("Apply returned %T, want *Result", res)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		n.t.Fatal(err)
	}
	return res
}

// do applies c, with Time derived from the index so runs are reproducible.
// A WRITE or APPEND is prepared first, as the leader does (PrepareWrite).
func (n *node) do(c Command) *Result {
	n.t.Helper()
	if c.Time == 0 {
		c.Time = 1_700_000_000_000_000_000 + int64(n.index+1)
	}
	if (c.Op == wire.OpWrite || c.Op == wire.OpAppend) && c.Base == nil {
		if err := n.fsm.PrepareWrite(&c); err != nil {
			n.t.Fatalf("prepare %v %s: %v", c.Op, c.Path, err)
		}
	}
	p, err := EncodeCommand(&c)
	if err != nil {
		n.t.Fatal(err)
	}
	return n.raw(p)
}

// must applies c and fails the test unless it succeeds.
func (n *node) must(c Command) *Result {
	n.t.Helper()
	res := n.do(c)
	if res.Code != wire.OK {
		n.t.Fatalf("%v %s: %v %s", c.Op, c.Path, res.Code, res.Message)
	}
	return res
}

// setRange overwrites the owned range, as a split entry will.
func (n *node) setRange(r wire.Range) {
	n.t.Helper()
	b := n.db.NewIndexedBatch()
	defer b.Close()
	if err := n.fsm.setRange(b, &r); err != nil {
		n.t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		n.t.Fatal(err)
	}
}

// dump returns every key and value in the DB, in key order.
func (n *node) dump() [][2][]byte {
	n.t.Helper()
	it, err := n.db.NewIter(nil)
	if err != nil {
		n.t.Fatal(err)
	}
	defer it.Close()
	var kvs [][2][]byte
	for valid := it.First(); valid; valid = it.Next() {
		kvs = append(kvs, [2][]byte{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
	}
	return kvs
}

// applyCase applies base and then cmd on a fresh node and checks cmd's
// result: code want (else the test stops) and a message containing msg; a
// failure must say why and leave the state as it was.
func applyCase(t *testing.T, base []Command, cmd Command, want wire.Code, msg string) (*node, *Result) {
	t.Helper()
	n := newNode(t, wholeRing)
	for _, c := range base {
		n.must(c)
	}
	before := n.dump()
	res := n.do(cmd)
	if res.Code != want {
		t.Fatalf("code %v (%s), want %v", res.Code, res.Message, want)
	}
	if !strings.Contains(res.Message, msg) {
		t.Errorf("message %q does not contain %q", res.Message, msg)
	}
	if want != wire.OK {
		if res.Message == "" {
			t.Error("failure without a message")
		}
		if after := n.dump(); !slices.EqualFunc(before, after, func(a, b [2][]byte) bool {
			return bytes.Equal(a[0], b[0]) && bytes.Equal(a[1], b[1])
		}) {
			t.Error("a failed command changed the state")
		}
	}
	return n, res
}

func mkdir(p string, f wire.Flags) Command { return Command{Op: wire.OpMkdir, Path: p, Flags: f} }
func put(p, data string, f wire.Flags) Command {
	return Command{Op: wire.OpPut, Path: p, Data: []byte(data), Flags: f}
}
func remove(p string, f wire.Flags) Command { return Command{Op: wire.OpRemove, Path: p, Flags: f} }

const (
	parents   = wire.FlagParents
	recursive = wire.FlagRecursive
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

func codeOf(err error) wire.Code {
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Code
	}
	if err == nil {
		return wire.OK
	}
	return 255
}

func TestApply(t *testing.T) {
	base := []Command{
		mkdir("/d", 0),
		mkdir("/d/sub", 0),
		put("/d/sub/f", "x", 0),
		mkdir("/empty", 0),
		put("/file", "contents", 0),
	}
	tests := []struct {
		name  string
		cmd   Command
		want  wire.Code
		msg   string     // substring of the message, for failures
		stat  *wire.Stat // expected Stat for OK results (Version/Mtime of 0 mean "this entry")
		after []string   // paths that must exist afterwards
		gone  []string   // paths that must not exist afterwards
	}{
		// mkdir
		{name: "mkdir", cmd: mkdir("/new", 0), stat: &wire.Stat{Name: "new", Type: wire.TypeDir}, after: []string{"/new"}},
		{name: "mkdir in dir", cmd: mkdir("/d/new", 0), stat: &wire.Stat{Name: "new", Type: wire.TypeDir}},
		{name: "mkdir exists", cmd: mkdir("/d", 0), want: wire.Exists, msg: `"/d"`},
		{name: "mkdir exists as file", cmd: mkdir("/file", 0), want: wire.Exists},
		{name: "mkdir -p exists as file", cmd: mkdir("/file", parents), want: wire.Exists},
		{name: "mkdir -p existing dir", cmd: mkdir("/d/sub", parents), stat: &wire.Stat{Name: "sub", Type: wire.TypeDir, Version: 2, Mtime: 1_700_000_000_000_000_002}},
		{name: "mkdir missing parent", cmd: mkdir("/nope/x", 0), want: wire.NotFound, msg: `"/nope"`, gone: []string{"/nope"}},
		{name: "mkdir missing grandparent", cmd: mkdir("/d/nope/x", 0), want: wire.NotFound},
		{name: "mkdir parent is file", cmd: mkdir("/file/x", 0), want: wire.NotDir, msg: `"/file" is a file`},
		{name: "mkdir ancestor is file", cmd: mkdir("/d/sub/f/x/y", 0), want: wire.NotDir},
		{name: "mkdir -p ancestor is file", cmd: mkdir("/d/sub/f/x/y", parents), want: wire.NotDir, gone: []string{"/d/sub/f/x"}},
		{name: "mkdir -p", cmd: mkdir("/p/q/r", parents), stat: &wire.Stat{Name: "r", Type: wire.TypeDir}, after: []string{"/p", "/p/q", "/p/q/r"}},
		{name: "mkdir -p under existing", cmd: mkdir("/d/sub/a/b", parents), after: []string{"/d/sub/a", "/d/sub/a/b"}},
		{name: "mkdir /", cmd: mkdir("/", 0), want: wire.Exists},
		{name: "mkdir -p /", cmd: mkdir("/", parents), stat: &wire.Stat{Type: wire.TypeDir}},
		// put
		{name: "put", cmd: put("/d/g", "hello", 0), stat: &wire.Stat{Name: "g", Type: wire.TypeFile, Size: 5, Checksum: sum("hello")}},
		{name: "put root file", cmd: put("/top", "", 0), stat: &wire.Stat{Name: "top", Type: wire.TypeFile, Checksum: sum("")}},
		{name: "put replaces", cmd: put("/file", "new!", 0), stat: &wire.Stat{Name: "file", Type: wire.TypeFile, Size: 4, Checksum: sum("new!")}},
		{name: "put on dir", cmd: put("/d", "x", 0), want: wire.IsDir},
		{name: "put on dir -p", cmd: put("/d/sub", "x", parents), want: wire.IsDir},
		{name: "put /", cmd: put("/", "x", 0), want: wire.IsDir},
		{name: "put missing parent", cmd: put("/nope/f", "x", 0), want: wire.NotFound, gone: []string{"/nope"}},
		{name: "put parent is file", cmd: put("/file/f", "x", 0), want: wire.NotDir},
		{name: "put -p parent is file", cmd: put("/file/a/f", "x", parents), want: wire.NotDir},
		{name: "put -p", cmd: put("/n1/n2/f", "abc", parents), stat: &wire.Stat{Name: "f", Type: wire.TypeFile, Size: 3, Checksum: sum("abc")}, after: []string{"/n1", "/n1/n2"}},
		// remove
		{name: "remove file", cmd: remove("/d/sub/f", 0), gone: []string{"/d/sub/f"}, after: []string{"/d/sub"}},
		{name: "remove root file", cmd: remove("/file", 0), gone: []string{"/file"}},
		{name: "remove empty dir", cmd: remove("/empty", 0), gone: []string{"/empty"}},
		{name: "remove non-empty dir", cmd: remove("/d", 0), want: wire.NotEmpty, after: []string{"/d", "/d/sub/f"}},
		{name: "remove -r", cmd: remove("/d", recursive), gone: []string{"/d", "/d/sub", "/d/sub/f"}},
		{name: "remove -r file", cmd: remove("/file", recursive), gone: []string{"/file"}},
		{name: "remove missing", cmd: remove("/nope", 0), want: wire.NotFound},
		{name: "remove under file", cmd: remove("/file/x", 0), want: wire.NotFound},
		{name: "remove /", cmd: remove("/", 0), want: wire.Invalid},
		{name: "remove -r /", cmd: remove("/", recursive), want: wire.Invalid, after: []string{"/d", "/file"}},
		// invalid input
		{name: "relative path", cmd: mkdir("a", 0), want: wire.Invalid, msg: "not absolute"},
		{name: "empty path", cmd: put("", "x", 0), want: wire.Invalid, msg: "empty path"},
		{name: "empty component", cmd: put("/d//f", "x", 0), want: wire.Invalid, msg: "empty component"},
		{name: "trailing slash", cmd: remove("/d/", 0), want: wire.Invalid, msg: "ends with /"},
		{name: "dot dot", cmd: mkdir("/d/../x", 0), want: wire.Invalid, msg: `".."`},
		{name: "nul", cmd: put("/d/a\x00b", "x", 0), want: wire.Invalid, msg: "NUL"},
		{name: "read op", cmd: Command{Op: wire.OpGet, Path: "/d"}, want: wire.Invalid},
		{name: "unknown op", cmd: Command{Op: 200, Path: "/d"}, want: wire.Invalid},
		{name: "zero op", cmd: Command{Path: "/d"}, want: wire.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, res := applyCase(t, base, tt.cmd, tt.want, tt.msg)
			if tt.want != wire.OK {
				if res.Err() == nil || codeOf(res.Err()) != tt.want {
					t.Errorf("Err() = %v", res.Err())
				}
			}
			if tt.stat != nil {
				want := *tt.stat
				if want.Version == 0 && want.Name != "" {
					want.Version = n.index
				}
				if want.Mtime == 0 && want.Name != "" {
					want.Mtime = 1_700_000_000_000_000_000 + int64(n.index)
				}
				if res.Stat == nil || *res.Stat != want {
					t.Fatalf("stat %+v, want %+v", res.Stat, want)
				}
				if want.Name != "" {
					got, err := n.fsm.Stat(tt.cmd.Path)
					if err != nil || *got != want {
						t.Fatalf("Stat after: %+v, %v; want %+v", got, err, want)
					}
				}
			}
			for _, p := range tt.after {
				if ok, err := n.fsm.Exists(p); !ok || err != nil {
					t.Errorf("Exists(%q) = %v, %v; want true", p, ok, err)
				}
			}
			for _, p := range tt.gone {
				if ok, err := n.fsm.Exists(p); ok || err != nil {
					t.Errorf("Exists(%q) = %v, %v; want false", p, ok, err)
				}
			}
		})
	}
}

func TestPutReplace(t *testing.T) {
	n := newNode(t, wholeRing)
	n.must(mkdir("/a", 0))
	first := n.must(put("/a/f", "one", 0)).Stat
	n.must(put("/a/other", "zzz", 0))
	second := n.must(put("/a/f", "second version", 0)).Stat
	if second.Version != n.index || second.Version <= first.Version {
		t.Fatalf("version %d after %d, want the log index %d", second.Version, first.Version, n.index)
	}
	if second.Size != int64(len("second version")) || second.Checksum != sum("second version") {
		t.Fatalf("stat %+v", second)
	}
	if second.Mtime <= first.Mtime {
		t.Fatalf("mtime %d not after %d", second.Mtime, first.Mtime)
	}
	data, st, err := n.fsm.get("/a/f")
	if err != nil || string(data) != "second version" || *st != *second {
		t.Fatalf("Get = %q, %+v, %v", data, st, err)
	}
	// The parent directory's entry is not touched by changes to children.
	if d, _ := n.fsm.Stat("/a"); d.Version != 1 {
		t.Fatalf("parent version %d, want 1", d.Version)
	}
}

func TestMkdirParentsVersions(t *testing.T) {
	n := newNode(t, wholeRing)
	n.must(mkdir("/a", 0))
	res := n.must(mkdir("/a/b/c", parents))
	for p, v := range map[string]uint64{"/a": 1, "/a/b": 2, "/a/b/c": 2} {
		st, err := n.fsm.Stat(p)
		if err != nil || st.Version != v || st.Type != wire.TypeDir {
			t.Errorf("Stat(%q) = %+v, %v; want dir at version %d", p, st, err, v)
		}
	}
	if res.Stat.Version != 2 {
		t.Errorf("result %+v", res.Stat)
	}
	again := n.must(mkdir("/a/b/c", parents))
	if again.Stat.Version != 2 {
		t.Errorf("mkdir -p of an existing dir changed its version: %+v", again.Stat)
	}
}

func TestMalformedCommand(t *testing.T) {
	valid, _ := EncodeCommand(&Command{Op: wire.OpMkdir, Path: "/a"})
	tests := []struct {
		name string
		in   []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"bad version", []byte{0x7f, 0x80}},
		{"garbage", []byte{commandVersion, 0xc1, 0xc1}},
		{"truncated", valid[:len(valid)-2]},
		{"trailing", append(bytes.Clone(valid), 1, 2, 3)},
		{"huge claimed length", []byte{commandVersion, 0x81, 0xa4, 'd', 'a', 't', 'a', 0xc6, 0xff, 0xff, 0xff, 0xf0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t, wholeRing)
			before := n.dump()
			res := n.raw(tt.in)
			if res.Code != wire.Invalid || !strings.Contains(res.Message, "malformed command") {
				t.Fatalf("got %v %q, want INVALID", res.Code, res.Message)
			}
			if after := n.dump(); len(after) != len(before) {
				t.Fatal("a malformed command changed the state")
			}
		})
	}
}

// rootOutside returns a root name whose point is not in r.
func rootOutside(r wire.Range) string {
	for i := 0; ; i++ {
		name := fmt.Sprintf("other%d", i)
		if !r.Contains(ring.Point(name)) {
			return name
		}
	}
}

func TestWrongRange(t *testing.T) {
	n := newNode(t, wholeRing)
	n.must(put("/mine/f", "m", parents))
	mine := wire.Range{Start: ring.Point("mine"), End: ring.Point("mine") + 1}
	other := rootOutside(mine)
	n.must(put("/"+other+"/f", "o", parents))
	// As after a split: the range shrinks, the other root's data is still on
	// disk until it is deleted in the background.
	n.setRange(mine)

	t.Run("apply", func(t *testing.T) {
		for _, c := range []Command{
			mkdir("/"+other+"/x", 0),
			mkdir("/"+other, parents),
			put("/"+other+"/f", "x", 0),
			put("/"+other+"2", "x", 0),
			remove("/"+other, recursive),
		} {
			before := n.dump()
			res := n.do(c)
			if res.Code != wire.WrongRange {
				t.Fatalf("%v %s: %v %q, want WRONG_RANGE", c.Op, c.Path, res.Code, res.Message)
			}
			if !strings.Contains(res.Message, mine.String()) {
				t.Errorf("message %q does not name the range %v", res.Message, mine)
			}
			if len(n.dump()) != len(before) {
				t.Errorf("%v %s changed the state", c.Op, c.Path)
			}
		}
		n.must(put("/mine/g", "still mine", 0))
	})
	t.Run("read", func(t *testing.T) {
		p := "/" + other + "/f"
		_, err := n.fsm.Stat(p)
		if codeOf(err) != wire.WrongRange {
			t.Errorf("Stat: %v", err)
		}
		_, _, err = n.fsm.get(p)
		if codeOf(err) != wire.WrongRange {
			t.Errorf("Get: %v", err)
		}
		_, err = n.fsm.list("/" + other)
		if codeOf(err) != wire.WrongRange {
			t.Errorf("List: %v", err)
		}
		_, err = n.fsm.Exists(p)
		if codeOf(err) != wire.WrongRange {
			t.Errorf("Exists: %v", err)
		}
		roots, err := n.fsm.list("/")
		if err != nil || len(roots) != 1 || roots[0].Name != "mine" {
			t.Errorf("List(/) = %+v, %v; want only mine", roots, err)
		}
		if r, err := n.fsm.Range(); err != nil || r != mine {
			t.Errorf("Range() = %v, %v", r, err)
		}
	})
}

func TestBootstrap(t *testing.T) {
	n := newNode(t, wire.Range{Start: 10, End: 20})
	if r, err := n.fsm.Range(); err != nil || r != (wire.Range{Start: 10, End: 20}) {
		t.Fatalf("Range() = %v, %v", r, err)
	}
	b := n.db.NewBatch()
	defer b.Close()
	if err := n.fsm.Bootstrap(b, wholeRing); err == nil {
		t.Error("second Bootstrap succeeded")
	}
	if err := mustFSM(n.db).Bootstrap(b, wire.Range{Start: 5, End: 5}); err == nil {
		t.Error("Bootstrap of an empty range succeeded")
	}

	db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fresh := mustFSM(db)
	if _, err := fresh.Range(); codeOf(err) != wire.Unavailable {
		t.Errorf("Range() before bootstrap: %v", err)
	}
	ib := db.NewIndexedBatch()
	defer ib.Close()
	c, _ := EncodeCommand(&Command{Op: wire.OpMkdir, Path: "/a"})
	if res := fresh.Apply(ib, 1, c); res.Code != wire.WrongRange {
		t.Errorf("Apply before bootstrap: %v %q", res.Code, res.Message)
	}
	if roots, err := fresh.list("/"); err != nil || len(roots) != 0 {
		t.Errorf("List(/) before bootstrap: %v, %v", roots, err)
	}
}

func TestReads(t *testing.T) {
	n := newNode(t, wholeRing)
	n.must(mkdir("/d", 0))
	n.must(put("/d/f", "data", 0))
	n.must(put("/d/empty", "", 0))
	n.must(put("/rootfile", "r", 0))
	tests := []struct {
		name  string
		op    string
		path  string
		want  wire.Code
		check func(t *testing.T, data []byte, st *wire.Stat, list []wire.Stat, ok bool)
	}{
		{"stat /", "stat", "/", wire.OK, func(t *testing.T, _ []byte, st *wire.Stat, _ []wire.Stat, _ bool) {
			if st.Type != wire.TypeDir || st.Name != "" {
				t.Errorf("%+v", st)
			}
		}},
		{"stat file", "stat", "/d/f", wire.OK, func(t *testing.T, _ []byte, st *wire.Stat, _ []wire.Stat, _ bool) {
			if *st != (wire.Stat{Name: "f", Type: wire.TypeFile, Size: 4, Mtime: 1_700_000_000_000_000_002, Version: 2, Checksum: sum("data")}) {
				t.Errorf("%+v", st)
			}
		}},
		{"stat dir", "stat", "/d", wire.OK, nil},
		{"stat missing", "stat", "/d/nope", wire.NotFound, nil},
		{"stat under file", "stat", "/d/f/x", wire.NotDir, nil},
		{"stat deep under file", "stat", "/d/f/x/y", wire.NotDir, nil},
		{"stat under missing dir", "stat", "/d/nope/x", wire.NotFound, nil},
		{"get under file", "get", "/d/f/x", wire.NotDir, nil},
		{"list under file", "list", "/d/f/x", wire.NotDir, nil},
		{"stat invalid", "stat", "d", wire.Invalid, nil},
		{"get", "get", "/d/f", wire.OK, func(t *testing.T, data []byte, st *wire.Stat, _ []wire.Stat, _ bool) {
			if string(data) != "data" || st.Version != 2 {
				t.Errorf("%q %+v", data, st)
			}
		}},
		{"get empty file", "get", "/d/empty", wire.OK, func(t *testing.T, data []byte, st *wire.Stat, _ []wire.Stat, _ bool) {
			if len(data) != 0 || st.Size != 0 {
				t.Errorf("%q %+v", data, st)
			}
		}},
		{"get root file", "get", "/rootfile", wire.OK, nil},
		{"get dir", "get", "/d", wire.IsDir, nil},
		{"get /", "get", "/", wire.IsDir, nil},
		{"get missing", "get", "/nope", wire.NotFound, nil},
		{"get invalid", "get", "/d/", wire.Invalid, nil},
		{"list file", "list", "/d/f", wire.NotDir, nil},
		{"list missing", "list", "/nope", wire.NotFound, nil},
		{"list invalid", "list", "//", wire.Invalid, nil},
		{"list /", "list", "/", wire.OK, func(t *testing.T, _ []byte, _ *wire.Stat, list []wire.Stat, _ bool) {
			if len(list) != 2 || list[0].Name != "d" || list[0].Type != wire.TypeDir || list[1].Name != "rootfile" || list[1].Type != wire.TypeFile {
				t.Errorf("%+v", list)
			}
		}},
		{"exists file", "exists", "/d/f", wire.OK, func(t *testing.T, _ []byte, _ *wire.Stat, _ []wire.Stat, ok bool) {
			if !ok {
				t.Error("false")
			}
		}},
		{"exists /", "exists", "/", wire.OK, func(t *testing.T, _ []byte, _ *wire.Stat, _ []wire.Stat, ok bool) {
			if !ok {
				t.Error("false")
			}
		}},
		{"exists missing", "exists", "/d/nope", wire.OK, func(t *testing.T, _ []byte, _ *wire.Stat, _ []wire.Stat, ok bool) {
			if ok {
				t.Error("true")
			}
		}},
		{"exists under file", "exists", "/d/f/x", wire.OK, func(t *testing.T, _ []byte, _ *wire.Stat, _ []wire.Stat, ok bool) {
			if ok {
				t.Error("a path below a file exists")
			}
		}},
		{"exists invalid", "exists", "/a/./b", wire.Invalid, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				data []byte
				st   *wire.Stat
				list []wire.Stat
				ok   bool
				err  error
			)
			switch tt.op {
			case "stat":
				st, err = n.fsm.Stat(tt.path)
			case "get":
				data, st, err = n.fsm.get(tt.path)
			case "list":
				list, err = n.fsm.list(tt.path)
			case "exists":
				ok, err = n.fsm.Exists(tt.path)
			}
			if codeOf(err) != tt.want {
				t.Fatalf("error %v, want code %v", err, tt.want)
			}
			if tt.check != nil {
				tt.check(t, data, st, list, ok)
			}
		})
	}
}

func TestReadErrorsNamePath(t *testing.T) {
	n := newNode(t, wholeRing)
	_, err := n.fsm.Stat("/missing/thing")
	if err == nil || !strings.Contains(err.Error(), `"/missing/thing"`) {
		t.Fatalf("error %v does not name the path", err)
	}
}

func TestListOrder(t *testing.T) {
	names := []string{"b", "a", "a b", "a.txt", "aa", "B", "é", "z", "a-", "0", "~"}
	n := newNode(t, wholeRing)
	n.must(mkdir("/d", 0))
	n.must(mkdir("/dd", 0)) // a sibling whose name extends "d"
	n.must(put("/dd/intruder", "x", 0))
	for i, name := range names {
		if i%2 == 0 {
			n.must(put("/d/"+name, name, 0))
		} else {
			n.must(mkdir("/d/"+name, 0))
			n.must(put("/d/"+name+"/grandchild", "g", 0))
		}
	}
	list, err := n.fsm.list("/d")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range list {
		got = append(got, st.Name)
		wantType := wire.TypeDir
		if i := slices.Index(names, st.Name); i%2 == 0 {
			wantType = wire.TypeFile
			if st.Size != int64(len(st.Name)) || st.Checksum != sum(st.Name) {
				t.Errorf("%+v", st)
			}
		}
		if st.Type != wantType {
			t.Errorf("%s: type %v, want %v", st.Name, st.Type, wantType)
		}
	}
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("List = %q, want %q", got, want)
	}

	// Roots, in name order.
	roots := []string{"zeta", "alpha", "mid", "alpha2", "Alpha"}
	for _, r := range roots {
		n.must(mkdir("/"+r, 0))
	}
	list, err = n.fsm.list("/")
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, st := range list {
		got = append(got, st.Name)
	}
	want = append(slices.Clone(roots), "d", "dd")
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("List(/) = %q, want %q", got, want)
	}

	if empty, err := n.fsm.list("/zeta"); err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("List of an empty dir = %#v, %v", empty, err)
	}
}

// keyPath returns the path a state key belongs to, or "" for keys that
// belong to no path (the range, chunks, sessions).
func keyPath(t *testing.T, k []byte) string {
	switch {
	case bytes.HasPrefix(k, []byte(entryPrefix)):
		p, ok := pathOfEntryKey(k)
		if !ok {
			t.Fatalf("bad entry key %q", k)
		}
		return p
	case bytes.HasPrefix(k, []byte(dataPrefix)):
		rest := k[len(dataPrefix)+8:]
		i := bytes.IndexByte(rest, 0)
		if i < 0 || len(rest) != i+blockKeySuffix {
			t.Fatalf("bad block key %q", k)
		}
		return string(rest[:i])
	case bytes.HasPrefix(k, []byte(rootPrefix)):
		return "/" + string(k[len(rootPrefix):])
	case string(k) == rangeKey, string(k) == clockKey:
		return ""
	case bytes.HasPrefix(k, []byte(chunkPrefix)), bytes.HasPrefix(k, []byte(metaPrefix)),
		bytes.HasPrefix(k, []byte(pendingPrefix)), bytes.HasPrefix(k, []byte(sessionPrefix)),
		bytes.HasPrefix(k, []byte(sessionTimePrefix)):
		return ""
	}
	t.Fatalf("unexpected key %q", k)
	return ""
}

func TestRemoveRecursive(t *testing.T) {
	setup := []Command{
		put("/r/a/b/c/deep", "1", parents),
		put("/r/a/f", "2", 0),
		put("/r/x", "3", 0),
		mkdir("/r/empty", 0),
		put("/r/a b/f", "4", parents), // sorts between "/r/a" children and "/r/a/"
		put("/r2/keep", "5", parents),
		put("/rr/keep", "6", parents),
		put("/r.txt", "7", 0),
		put("/s/r/a/keep", "8", parents),
	}
	tests := []struct {
		dir  string
		keep []string
	}{
		{"/r", []string{"/r2/keep", "/rr/keep", "/r.txt", "/s/r/a/keep"}},
		{"/r/a", []string{"/r", "/r/x", "/r/empty", "/r/a b/f", "/r2/keep", "/s/r/a/keep"}},
		{"/r/a/b", []string{"/r/a", "/r/a/f", "/r/a b/f"}},
		{"/s", []string{"/r/a/b/c/deep", "/r2/keep"}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			n := newNode(t, wholeRing)
			for _, c := range setup {
				n.must(c)
			}
			n.must(remove(tt.dir, recursive))
			for _, kv := range n.dump() {
				if p := keyPath(t, kv[0]); p != "" && fspath.IsWithin(p, tt.dir) {
					t.Errorf("leftover key %q of %s", kv[0], p)
				}
			}
			for _, p := range tt.keep {
				if ok, err := n.fsm.Exists(p); !ok || err != nil {
					t.Errorf("%s is gone (%v)", p, err)
				}
			}
			if ok, _ := n.fsm.Exists(tt.dir); ok {
				t.Errorf("%s still exists", tt.dir)
			}
			// Its parent is listable and no longer names it.
			parent, name := fspath.Split(tt.dir)
			list, err := n.fsm.list(parent)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range list {
				if st.Name == name {
					t.Errorf("List(%s) still names %s", parent, name)
				}
			}
			// The path can be created again, from scratch.
			n.must(mkdir(tt.dir, parents))
			if list, err := n.fsm.list(tt.dir); err != nil || len(list) != 0 {
				t.Errorf("recreated %s lists %+v, %v", tt.dir, list, err)
			}
		})
	}
}

// script is a mixed run of commands, including failures.
func script() []Command {
	var cs []Command
	cs = append(cs,
		mkdir("/photos/2024", parents),
		put("/photos/2024/a.jpg", "jpeg-a", 0),
		put("/photos/2024/b.jpg", "jpeg-b", 0),
		put("/photos/2024/a.jpg", "jpeg-a2", 0),
		mkdir("/photos", 0),          // EXISTS
		put("/docs/readme", "hi", 0), // NOT_FOUND
		put("/docs/readme", "hi", parents),
		remove("/photos", 0), // NOT_EMPTY
		mkdir("/tmp", 0),
		remove("/tmp", 0),
		put("/top", "file at the top", 0),
		put("/top/x", "x", parents), // NOT_DIR
	)
	for i := 0; i < 50; i++ {
		cs = append(cs, put(fmt.Sprintf("/bulk/%02d/f", i%7), strings.Repeat("x", i), parents))
	}
	cs = append(cs, remove("/bulk/03", recursive), remove("/photos/2024", recursive), remove("/", recursive))
	return cs
}

// sameResult reports whether two Results say the same to a client.
func sameResult(a, b *Result) bool {
	return a.Code == b.Code && a.Message == b.Message && (a.Stat == nil) == (b.Stat == nil) && (a.Stat == nil || *a.Stat == *b.Stat)
}

// sameKeys fails unless a and b hold the same keys and values, and
// returns them.
func sameKeys(t *testing.T, a, b *node) [][2][]byte {
	t.Helper()
	da, db := a.dump(), b.dump()
	if len(da) != len(db) {
		t.Fatalf("%d keys vs %d keys", len(da), len(db))
	}
	for i := range da {
		if !bytes.Equal(da[i][0], db[i][0]) || !bytes.Equal(da[i][1], db[i][1]) {
			t.Fatalf("key %d differs: %q=%x vs %q=%x", i, da[i][0], da[i][1], db[i][0], db[i][1])
		}
	}
	return da
}

func TestDeterminism(t *testing.T) {
	a, b := newNode(t, wholeRing), newNode(t, wholeRing)
	for i, c := range script() {
		c.Time = int64(1_000 + i) // the leader's clock, carried in the entry
		if ra, rb := a.do(c), b.do(c); !sameResult(ra, rb) {
			t.Fatalf("entry %d: results differ: %+v vs %+v", i+1, ra, rb)
		}
	}
	da := sameKeys(t, a, b)
	if len(da) < 10 {
		t.Fatalf("only %d keys: the script did little", len(da))
	}
	for _, kv := range da {
		if !bytes.HasPrefix(kv[0], []byte(prefix)) {
			t.Errorf("key %q outside the FSM prefix %q", kv[0], prefix)
		}
	}
}

// TestBatchOfEntries applies several entries in one batch, as the replica
// does after a run of Apply calls: later entries see earlier ones.
func TestBatchOfEntries(t *testing.T) {
	n := newNode(t, wholeRing)
	b := n.db.NewIndexedBatch()
	defer b.Close()
	cmds := []Command{mkdir("/a", 0), put("/a/f", "1", 0), remove("/a", 0), remove("/a/f", 0), remove("/a", 0), put("/a", "now a file", 0)}
	want := []wire.Code{wire.OK, wire.OK, wire.NotEmpty, wire.OK, wire.OK, wire.OK}
	for i, c := range cmds {
		p, _ := EncodeCommand(&c)
		if res := n.fsm.Apply(b, uint64(i+1), p); res.Code != want[i] {
			t.Fatalf("entry %d %v %s: %v %q, want %v", i+1, c.Op, c.Path, res.Code, res.Message, want[i])
		}
	}
	if ok, _ := n.fsm.Exists("/a"); ok {
		t.Fatal("reads saw the uncommitted batch")
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	st, err := n.fsm.Stat("/a")
	if err != nil || st.Type != wire.TypeFile || st.Version != 6 {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
}

func TestGetDetectsCorruption(t *testing.T) {
	n := newNode(t, wholeRing)
	n.must(put("/f", "good", 0))
	h := ChunkOf([]byte("good"))
	if err := n.db.Set(chunkKey(h), []byte("evil"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.fsm.get("/f"); codeOf(err) != wire.Internal || !strings.Contains(err.Error(), h.String()+" of /f failed verification") {
		t.Fatalf("Get of corrupted contents: %v", err)
	}
}

func FuzzApply(f *testing.F) {
	for _, c := range script() {
		p, _ := EncodeCommand(&c)
		f.Add(p)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 40 {
		c := randomCommand(rng)
		p, _ := EncodeCommand(&c)
		f.Add(p)
	}
	for _, c := range []Command{
		{Op: wire.OpChunk, Path: "/r/u", Data: []byte("abcd"), ChunkSize: tiny},
		{Op: wire.OpCommit, Path: "/r/u", Size: 4, Chunks: []string{ChunkOf([]byte("abcd")).String()}},
		withSession(appendTo("/r/u", "!"), 3, 1),
		{Op: wire.OpWrite, Path: "/r/u", Offset: maxFileSize - 1, Data: []byte("xy")},
	} {
		p, _ := EncodeCommand(&c)
		f.Add(p)
	}
	f.Add([]byte{})
	f.Add([]byte{commandVersion, 0x80})
	n := newNode(f, wholeRing)
	n.must(putTiny("/r/f", "0123456789"))
	f.Fuzz(func(t *testing.T, p []byte) {
		b := n.db.NewIndexedBatch()
		defer b.Close()
		res := n.fsm.Apply(b, 1, p)
		if res == nil {
			t.Fatalf("Apply returned %T", res)
		}
		if res.Code == wire.Internal {
			t.Fatalf("INTERNAL for input %x: %s", p, res.Message)
		}
	})
}

// BenchmarkApplyPut applies 1 KiB puts proposed without InlineSize, so
// the contents go to a block (as entries from before inline files did).
func BenchmarkApplyPut(b *testing.B) { benchmarkApplyPut(b, 0) }

// BenchmarkApplyPutInline applies 1 KiB puts as a node proposes them
// (DefaultInlineSize): the contents live in the file's entry.
func BenchmarkApplyPutInline(b *testing.B) { benchmarkApplyPut(b, DefaultInlineSize) }

func benchmarkApplyPut(b *testing.B, inlineSize int64) {
	n := newNode(b, wholeRing)
	n.must(mkdir("/bench", 0))
	data := bytes.Repeat([]byte("x"), 1024)
	cmds := make([][]byte, 1000)
	for i := range cmds {
		cmds[i], _ = EncodeCommand(&Command{Op: wire.OpPut, Path: fmt.Sprintf("/bench/f%04d", i), Data: data, Time: 1, InlineSize: inlineSize})
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	cpu := startCPU(b)
	for i := 0; b.Loop(); i++ {
		n.index++
		batch := n.db.NewIndexedBatch()
		res := n.fsm.Apply(batch, n.index, cmds[i%len(cmds)])
		if res.Code != wire.OK {
			b.Fatal(res.Message)
		}
		if err := batch.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
		batch.Close()
	}
	cpu.report(b.N, "op")
}

// mustFSM is NewFSM for a test's DB.
func mustFSM(db *pebble.DB) *FSM {
	f, err := NewFSM(db)
	if err != nil {
		panic(err)
	}
	return f
}
