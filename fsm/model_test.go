package fsm

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cleavefs/cleave/internal/fsmodel"
	"github.com/cleavefs/cleave/wire"
)

// TestModel runs random commands against the FSM and the model and checks
// every result code and, after each command, the whole namespace (listed
// recursively in small pages), every file's bytes and checksum, and the
// chunk reference counts. -model.seed replays a run.
func TestModel(t *testing.T) {
	run := fsmodel.NewRun("go test ./fsm -run TestModel", "commands")
	steps := run.Steps
	n := newNode(t, wholeRing)
	m := fsmodel.Model{}
	oks := 0
	defer func() { t.Logf("%d of %d commands succeeded", oks, steps) }()
	defer run.Report(t)
	for i := range steps {
		o := fsmodel.Random(run.Rand)
		c := commandOf(o)
		if run.Rand.IntN(2) == 0 {
			c.InlineSize = tiny // small PUTs inline: files change form
		}
		want := m.Step(o)
		res := n.do(c)
		run.Note(fmt.Sprintf("%d: %v %s → %s offset=%d data=%q: %v %s", i, c.Op, c.Path, c.To, c.Offset, c.Data, res.Code, res.Message))
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

func checkModel(t *testing.T, n *node, m fsmodel.Model) {
	t.Helper()
	want := m.Paths()
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

// commandOf is the command for a model op, with tiny chunks so files span
// several blocks.
func commandOf(o fsmodel.Op) Command {
	return Command{Op: o.Op, Path: o.Path, To: o.To, Data: o.Data, Offset: o.Offset, Flags: o.Flags, ChunkSize: tiny}
}

// randomCommand is a random model op as a command.
func randomCommand(rng *rand.Rand) Command { return commandOf(fsmodel.Random(rng)) }
