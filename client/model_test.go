package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/fsmodel"
	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/wire"
)

// TestModelThroughDeployment runs random operation sequences through the SDK
// against a real deployment (routers and 3-node Raft clusters, in process)
// and against the in-memory model, and requires identical result codes, and
// an identical namespace with identical bytes, checked every few steps.
// -model.seed replays a run.
func TestModelThroughDeployment(t *testing.T) {
	run := fsmodel.NewRun("go test ./client -run TestModelThroughDeployment", "operations")
	seed, steps := run.Seed, run.Steps
	c := sharedClient(t, client.WithTimeout(time.Minute))
	ctx := context.Background()
	// The model's roots /r and /s become roots unique to this run.
	prefix := fmt.Sprintf("model-%d-", seed%1_000_000_007)
	real := func(p string) string { return "/" + prefix + p[1:] }
	m := fsmodel.Model{}
	defer run.Report(t)
	oks := 0
	for i := range steps {
		o := fsmodel.Random(run.Rand)
		if o.Op == wire.OpCopy && fspath.Root(o.Path) != fspath.Root(o.To) {
			// The SDK copies across roots by streaming (the model refuses,
			// as one cluster does): keep copies within a root.
			o.To = "/" + fspath.Root(o.Path) + o.To[len(fspath.Root(o.To))+1:]
		}
		want := m.Step(o)
		got := client.CodeOf(apply(ctx, c, o, real))
		run.Note(fmt.Sprintf("%d: %v %s → %s offset=%d data=%q flags=%d: %v (model %v)", i, o.Op, o.Path, o.To, o.Offset, o.Data, o.Flags, got, want))
		if wire.Code(got) != want {
			t.Fatalf("step %d: %v %s %s: got %v, model says %v", i, o.Op, o.Path, o.To, got, want)
		}
		if got == client.CodeOK {
			oks++
		}
		if i%20 == 19 || i == steps-1 {
			compareNamespace(t, ctx, c, m, real)
		}
	}
	t.Logf("seed %d: %d of %d operations succeeded; namespace and bytes matched the model", seed, oks, steps)
}

// apply performs o through the SDK on the real paths.
func apply(ctx context.Context, c *client.Client, o fsmodel.Op, real func(string) string) error {
	var opts []client.PutOption
	if o.Flags&wire.FlagParents != 0 {
		opts = append(opts, client.Parents())
	}
	p := real(o.Path)
	var err error
	switch o.Op {
	case wire.OpMkdir:
		if o.Flags&wire.FlagParents != 0 {
			err = c.MkdirAll(ctx, p)
		} else {
			err = c.Mkdir(ctx, p)
		}
	case wire.OpPut:
		_, err = c.Put(ctx, p, o.Data, opts...)
	case wire.OpWrite:
		_, err = c.Write(ctx, p, o.Offset, o.Data, opts...)
	case wire.OpAppend:
		_, err = c.Append(ctx, p, o.Data, opts...)
	case wire.OpRemove:
		if o.Flags&wire.FlagRecursive != 0 {
			err = c.RemoveAll(ctx, p)
		} else {
			err = c.Remove(ctx, p)
		}
	case wire.OpRename:
		err = c.Rename(ctx, p, real(o.To))
	case wire.OpCopy:
		_, err = c.Copy(ctx, p, real(o.To))
	default:
		err = fmt.Errorf("model op %v not mapped", o.Op)
	}
	return err
}

// compareNamespace walks both real roots and compares every path, type and
// file's bytes with the model.
func compareNamespace(t *testing.T, ctx context.Context, c *client.Client, m fsmodel.Model, real func(string) string) {
	t.Helper()
	var got []string
	for _, root := range []string{"/r", "/s"} {
		rr := real(root)
		err := c.Walk(ctx, rr, func(p string, st *client.Stat, err error) error {
			if err != nil {
				return err
			}
			mp := "/" + root[1:] + p[len(rr):]
			got = append(got, mp)
			data, ok := m[mp]
			if !ok {
				return fmt.Errorf("%s exists, the model has no %s", p, mp)
			}
			if st.IsDir() != (data == nil) {
				return fmt.Errorf("%s: directory %v, model %v", p, st.IsDir(), data == nil)
			}
			if !st.IsDir() {
				b, err := c.Get(ctx, p)
				if err != nil {
					return fmt.Errorf("get %s: %w", p, err)
				}
				if !bytes.Equal(b, data) {
					return fmt.Errorf("%s = %q, model %q", p, b, data)
				}
			}
			return nil
		})
		if err != nil && !(errors.Is(err, client.ErrNotFound) && !m.Exists(root)) {
			t.Fatalf("walking %s: %v", rr, err)
		}
	}
	if want := m.Paths(); !slices.Equal(got, want) {
		t.Fatalf("namespace %q\nmodel     %q", got, want)
	}
}
