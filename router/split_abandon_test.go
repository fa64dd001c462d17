package router_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/router"
	"github.com/cleavefs/cleave/wire"
)

// signal is a channel closed once.
type signal struct {
	once sync.Once
	ch   chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }
func (s *signal) fire()  { s.once.Do(func() { close(s.ch) }) }
func (s *signal) fired() bool {
	select {
	case <-s.ch:
		return true
	default:
		return false
	}
}

// wait waits for s or the end of ctx; it reports whether s fired.
func (s *signal) wait(ctx context.Context) bool {
	select {
	case <-s.ch:
		return true
	case <-ctx.Done():
		return false
	}
}

// An abandon that the driver overtakes: the abandon is asked while the
// driver is about to check the learners (learners-added), and the driver
// then records caught-up and commits SPLIT on the source while the abandon
// is still under way. Whatever the interleaving, an abandon that succeeds
// must leave the source owning its whole range (the table still routes
// [At, End) to it), and the learners must be gone from it.
//
// The hooks make the interleaving exact: the driver is held before its
// learners-added step until the abandon has sent its first request to the
// source; a REMOVE_MEMBER sent before any fence is held until SPLIT has
// applied on the source; and the reply of a SPLIT that applied while such a
// removal was pending is held until the abandon has answered, so the
// abandon records its phase first.
func TestSplitAbandonRacingDriver(t *testing.T) {
	d, nodes, ctx := startSplit(t)

	var (
		held         = newSignal() // the driver is held before learners-added
		release      = newSignal() // lets the driver go on
		abandonSent  = newSignal() // the abandon's first request reached the hook
		splitApplied = newSignal() // SPLIT applied on the source
		abandonDone  = newSignal() // the abandon has answered
		fenced       atomic.Bool   // an abandon fence was sent to the source
		removing     atomic.Bool   // a REMOVE_MEMBER was sent before any fence
		holdOnce     sync.Once
	)
	router.SetSplitTestHooks(d.Router, func(rec wire.SplitStatus) {
		if rec.Phase != wire.SplitLearnersAdded {
			return
		}
		holdOnce.Do(func() {
			held.fire()
			release.wait(ctx)
		})
	}, func(hctx context.Context, cluster string, req *wire.Request, send func() *wire.Response) *wire.Response {
		switch {
		case req.Op == wire.OpSplitFork && req.Split != nil && req.Split.Abandon:
			fenced.Store(true)
			abandonSent.fire()
		case req.Op == wire.OpRemoveMember && !fenced.Load():
			// Only an abandon removes members before SPLIT commits.
			removing.Store(true)
			abandonSent.fire()
			splitApplied.wait(hctx)
		case req.Op == wire.OpSplitFork:
			resp := send()
			if resp.Code == wire.OK {
				splitApplied.fire()
				if removing.Load() {
					abandonDone.wait(hctx)
				}
			}
			return resp
		}
		return send()
	})

	c := d.Client(t)
	if _, err := c.Split(ctx, client.SplitSpec{Cluster: "c1", NewCluster: "c2", Nodes: nodes}); err != nil {
		t.Fatal(err)
	}
	if !held.wait(ctx) {
		t.Fatal("the driver never reached learners-added")
	}
	var abandonErr error
	go func() {
		_, abandonErr = c.Split(ctx, client.SplitSpec{Cluster: "c1", NewCluster: "c2", Abandon: true})
		abandonDone.fire()
	}()
	if !abandonSent.wait(ctx) {
		t.Fatal("the abandon sent nothing to the source")
	}
	release.fire()
	if !abandonDone.wait(ctx) {
		t.Fatal("the abandon did not answer")
	}
	if abandonErr != nil {
		t.Fatalf("abandon asked before SPLIT was sent: %v", abandonErr)
	}

	// The abandon was recorded; the driver must have stopped and the
	// source must still own everything the table gives it.
	s := waitSplit(t, d, ctx)
	if s.Phase != client.SplitAbandoned {
		t.Fatalf("split ended %s after an accepted abandon", s.Phase)
	}
	tab, err := c.Table(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := control.ClusterRange(wireTable(tab), "c1")
	if want != (wire.Range{}) {
		t.Fatalf("table gives c1 %v after an abandoned split of the whole ring", want)
	}
	for _, n := range d.Nodes["c1"] {
		st := n.Status()
		if st.Range != want {
			t.Errorf("c1 node %d owns %v; the table gives c1 %v (the source applied SPLIT although the abandon was accepted; SPLIT applied: %v)", st.ID, st.Range, want, splitApplied.fired())
		}
		if st.Role != "leader" {
			continue
		}
		for _, m := range nodes {
			if slices.ContainsFunc(st.Members, func(x wire.MemberStatus) bool { return x.ID == m.ID }) {
				t.Errorf("node %d is still a member of c1 after the abandon", m.ID)
			}
		}
	}
	// A file in the upper half is still served by c1.
	upper := ""
	for i := 0; upper == ""; i++ {
		if name := fmt.Sprintf("up%d", i); ring.Point(name) >= s.At {
			upper = "/" + name + "/f"
		}
	}
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	if _, err := c.Put(pctx, upper, []byte("x"), client.Parents()); err != nil {
		t.Errorf("put %s in the upper half after the abandon: %v", upper, err)
	}
}

// An abandon asked after the source applied SPLIT, while the record still
// says caught-up (the driver lost SPLIT_FORK's reply and has not recorded
// split-committed yet): the source refuses the fence, the abandon is
// refused with CONFLICT saying so, and the split goes on to cleaned.
func TestSplitAbandonAfterSplitCommitted(t *testing.T) {
	d, nodes, ctx := startSplit(t)

	var (
		lost        = newSignal() // SPLIT applied on the source, its reply dropped
		abandonDone = newSignal()
		holdOnce    sync.Once
	)
	router.SetSplitTestHooks(d.Router, func(rec wire.SplitStatus) {
		if rec.Phase == wire.SplitCaughtUp && lost.fired() {
			holdOnce.Do(func() { abandonDone.wait(ctx) })
		}
	}, func(hctx context.Context, cluster string, req *wire.Request, send func() *wire.Response) *wire.Response {
		if req.Op != wire.OpSplitFork || req.Split == nil || req.Split.Abandon || lost.fired() {
			return send()
		}
		resp := send()
		if resp.Code != wire.OK {
			return resp
		}
		lost.fire()
		return &wire.Response{Code: wire.Unavailable, Message: "test: the reply to SPLIT_FORK was lost"}
	})

	c := d.Client(t)
	if _, err := c.Split(ctx, client.SplitSpec{Cluster: "c1", NewCluster: "c2", Nodes: nodes}); err != nil {
		t.Fatal(err)
	}
	if !lost.wait(ctx) {
		t.Fatal("SPLIT never applied on the source")
	}
	_, err := c.Split(ctx, client.SplitSpec{Cluster: "c1", NewCluster: "c2", Abandon: true})
	abandonDone.fire()
	if !errors.Is(err, client.ErrConflict) || !strings.Contains(err.Error(), "already committed SPLIT") {
		t.Fatalf("abandon after SPLIT applied: %v, want CONFLICT saying SPLIT has committed", err)
	}
	s := waitSplit(t, d, ctx)
	if s.Phase != client.SplitCleaned {
		t.Fatalf("split ended %s after a refused abandon", s.Phase)
	}
	tab, err := c.Table(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := control.ClusterRange(wireTable(tab), "c2"); !ok || r != (wire.Range{Start: s.At}) {
		t.Fatalf("c2 range %v in table %+v", r, tab)
	}
	for i := range 10 {
		p := fmt.Sprintf("/after%d/f", i)
		if _, err := c.Put(ctx, p, []byte(p), client.Parents()); err != nil {
			t.Fatalf("put %s after the split: %v", p, err)
		}
	}
}
