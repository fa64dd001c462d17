package cluster

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/wire"
)

var modelSeed = flag.Uint64("model.seed", 0, "seed for TestModel (0: time-based)")

// model is the namespace as a map: path → contents, or nil for a directory.
type model map[string][]byte

func (m model) isDir(p string) bool { v, ok := m[p]; return ok && v == nil || p == "/" }

func (m model) exists(p string) bool { _, ok := m[p]; return ok || p == "/" }

// parentCode returns the code for a missing or non-directory parent of p.
func (m model) parentCode(p string) wire.Code {
	parent, _ := fspath.Split(p)
	for dir := parent; ; dir, _ = fspath.Split(dir) {
		if dir == "/" || (m.exists(dir) && m.isDir(dir)) {
			if dir == parent {
				return wire.OK
			}
			return wire.NotFound
		}
		if m.exists(dir) {
			return wire.NotDir
		}
	}
}

// parents checks the parent of c.Path and with FlagParents makes the
// missing ones.
func (m model) parents(c Command) wire.Code {
	code := m.parentCode(c.Path)
	if code != wire.NotFound || c.Flags&parents == 0 {
		return code
	}
	for dir, _ := fspath.Split(c.Path); !m.exists(dir); dir, _ = fspath.Split(dir) {
		m[dir] = nil
	}
	return wire.OK
}

func (m model) subtree(p string) []string {
	var out []string
	for q := range m {
		if fspath.IsWithin(q, p) {
			out = append(out, q)
		}
	}
	return out
}

func (m model) step(c Command) wire.Code {
	switch c.Op {
	case wire.OpMkdir:
		if m.exists(c.Path) {
			if c.Flags&parents != 0 && m.isDir(c.Path) {
				return wire.OK
			}
			return wire.Exists
		}
		if code := m.parents(c); code != wire.OK {
			return code
		}
		m[c.Path] = nil
	case wire.OpPut, wire.OpWrite, wire.OpAppend:
		if m.isDir(c.Path) {
			return wire.IsDir
		}
		old, ok := m[c.Path]
		if !ok {
			if code := m.parents(c); code != wire.OK {
				return code
			}
		}
		switch c.Op {
		case wire.OpPut:
			m[c.Path] = slices.Clone(c.Data)
		case wire.OpAppend:
			m[c.Path] = append(slices.Clone(old), c.Data...)
			if m[c.Path] == nil {
				m[c.Path] = []byte{}
			}
		default:
			b := slices.Clone(old)
			if b == nil {
				b = []byte{}
			}
			if end := int(c.Offset) + len(c.Data); len(c.Data) > 0 && end > len(b) {
				b = append(b, make([]byte, end-len(b))...)
			}
			if len(c.Data) > 0 {
				copy(b[c.Offset:], c.Data)
			}
			m[c.Path] = b
		}
	case wire.OpRemove:
		if !m.exists(c.Path) {
			return wire.NotFound
		}
		sub := m.subtree(c.Path)
		if len(sub) > 1 && c.Flags&wire.FlagRecursive == 0 {
			return wire.NotEmpty
		}
		for _, q := range sub {
			delete(m, q)
		}
	case wire.OpRename, wire.OpCopy:
		if fspath.Root(c.Path) != fspath.Root(c.To) {
			return wire.CrossRoot
		}
		if !m.exists(c.Path) {
			return wire.NotFound
		}
		srcDir := m.isDir(c.Path)
		if c.Op == wire.OpCopy {
			switch {
			case srcDir:
				return wire.IsDir
			case c.Path == c.To:
				return wire.Invalid
			}
		} else if c.Path == c.To {
			return wire.OK
		}
		if c.Op == wire.OpRename && fspath.IsWithin(c.To, c.Path) {
			return wire.Invalid
		}
		if m.exists(c.To) {
			dstDir := m.isDir(c.To)
			switch {
			case !srcDir && dstDir:
				return wire.IsDir
			case srcDir && !dstDir:
				return wire.NotDir
			case dstDir && len(m.subtree(c.To)) > 1:
				return wire.NotEmpty
			}
		} else if code := m.parentCode(c.To); code != wire.OK {
			return code
		}
		if c.Op == wire.OpCopy {
			m[c.To] = slices.Clone(m[c.Path])
			return wire.OK
		}
		delete(m, c.To)
		for _, q := range m.subtree(c.Path) {
			m[c.To+q[len(c.Path):]] = m[q]
			delete(m, q)
		}
	}
	return wire.OK
}

// randomCommand picks an op over a small namespace so that every outcome
// happens often.
func randomCommand(rng *rand.Rand) Command {
	names := []string{"a", "b", "c"}
	path := func() string {
		roots := []string{"/r", "/r", "/r", "/s"}
		p := roots[rng.IntN(len(roots))]
		for range rng.IntN(3) + 1 {
			p += "/" + names[rng.IntN(len(names))]
		}
		return p
	}
	data := func() []byte {
		b := make([]byte, rng.IntN(11))
		for i := range b {
			b[i] = "xyz"[rng.IntN(3)]
		}
		return b
	}
	flags := func() wire.Flags {
		if rng.IntN(2) == 0 {
			return parents
		}
		return 0
	}
	switch rng.IntN(10) {
	case 0:
		return mkdir(path(), flags())
	case 1:
		return Command{Op: wire.OpPut, Path: path(), Data: data(), ChunkSize: tiny, Flags: flags()}
	case 2, 3:
		return Command{Op: wire.OpWrite, Path: path(), Offset: int64(rng.IntN(12)), Data: data(), ChunkSize: tiny, Flags: flags()}
	case 4:
		return Command{Op: wire.OpAppend, Path: path(), Data: data(), ChunkSize: tiny, Flags: flags()}
	case 5:
		return remove(path(), wire.Flags(rng.IntN(2))*recursive)
	case 6, 7:
		return rename(path(), path(), 0)
	case 8:
		return cp(path(), path(), 0)
	}
	return mkdir("/"+[]string{"r", "s"}[rng.IntN(2)], 0)
}

// TestModel runs random commands against the FSM and the model and checks
// every result code and, after each command, the whole namespace (listed
// recursively in small pages), every file's bytes and checksum, and the
// chunk reference counts. -model.seed replays a run.
func TestModel(t *testing.T) {
	seed := *modelSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	steps := 400
	if testing.Short() {
		steps = 100
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	n := newNode(t, wholeRing)
	m := model{}
	var history []string
	oks := 0
	defer func() { t.Logf("%d of %d commands succeeded", oks, steps) }()
	defer func() {
		if t.Failed() {
			t.Logf("seed %d (replay: go test ./cluster -run TestModel -model.seed=%d); last commands:\n%s",
				seed, seed, strings.Join(history[max(0, len(history)-15):], "\n"))
		}
	}()
	for i := range steps {
		c := randomCommand(rng)
		want := m.step(c)
		res := n.do(c)
		history = append(history, fmt.Sprintf("%d: %v %s → %s offset=%d data=%q: %v %s", i, c.Op, c.Path, c.To, c.Offset, c.Data, res.Code, res.Message))
		if res.Code != want {
			t.Fatalf("step %d: %v %s %s: got %v (%s), model says %v", i, c.Op, c.Path, c.To, res.Code, res.Message, want)
		}
		if res.Code == wire.OK {
			oks++
		}
		checkModel(t, n, m)
		if t.Failed() {
			return
		}
	}
}

func checkModel(t *testing.T, n *node, m model) {
	t.Helper()
	var want []string
	for p := range m {
		want = append(want, p)
	}
	sort.Slice(want, func(i, j int) bool {
		return slices.Compare(strings.Split(want[i], "/"), strings.Split(want[j], "/")) < 0
	})
	var got []string
	after := ""
	for {
		list, next, err := n.fsm.ListPage("/", after, 3, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range list {
			p := "/" + st.Name
			got = append(got, p)
			data, isFile := m[p]
			if (st.Type == wire.TypeFile) != (isFile && data != nil) {
				t.Fatalf("%s: type %v, model %v", p, st.Type, data != nil)
			}
			if st.Type == wire.TypeFile {
				if content := n.content(p); content != string(data) {
					t.Fatalf("%s = %q, model %q", p, content, data)
				}
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("namespace %q\nmodel     %q", got, want)
	}
	n.leaks()
}
