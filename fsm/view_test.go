package fsm

import (
	"testing"

	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

// A view serves every read from the state committed when it was opened:
// neither later writes nor a later change of the owned range show in it,
// and a view opened afterwards sees both.
func TestViewSeesStateAtOpening(t *testing.T) {
	n := newNode(t, wholeRing)
	n.must(put("/mine/f", "old", parents))
	mine := wire.Range{Start: ring.Point("mine"), End: ring.Point("mine") + 1}
	other := "/" + rootOutside(mine)
	n.must(put(other+"/g", "there", parents))

	v := n.fsm.NewView()
	defer v.Close()
	n.must(put("/mine/f", "new", 0))
	n.must(put("/mine/h", "later", 0))
	n.setRange(mine) // a split gives the other root away

	for range 2 { // the range is read once, then remembered
		if data, _, err := v.Read("/mine/f", 0, 0, -1); err != nil || string(data) != "old" {
			t.Fatalf("view read /mine/f: %q, %v; want the data at opening", data, err)
		}
		if _, err := v.Stat("/mine/h"); codeOf(err) != wire.NotFound {
			t.Fatalf("view stat of a file created after opening: %v, want NOT_FOUND", err)
		}
		if data, _, err := v.Read(other+"/g", 0, 0, -1); err != nil || string(data) != "there" {
			t.Fatalf("view read %s/g: %q, %v; want it served under the range at opening", other, data, err)
		}
	}
	if ok, err := v.Exists("/mine/h"); ok || err != nil {
		t.Fatalf("view exists /mine/h: %v, %v; want false", ok, err)
	}
	if ents, _, err := v.ListPage("/mine", "", 0, false); err != nil || len(ents) != 1 || ents[0].Name != "f" {
		t.Fatalf("view list /mine: %v, %v; want f alone", ents, err)
	}

	w := n.fsm.NewView()
	defer w.Close()
	if data, _, err := w.Read("/mine/f", 0, 0, -1); err != nil || string(data) != "new" {
		t.Fatalf("new view read /mine/f: %q, %v; want the latest data", data, err)
	}
	if ok, err := w.Exists("/mine/h"); !ok || err != nil {
		t.Fatalf("new view exists /mine/h: %v, %v; want true", ok, err)
	}
	if _, _, err := w.Read(other+"/g", 0, 0, -1); codeOf(err) != wire.WrongRange {
		t.Fatalf("new view read outside the new range: %v, want WRONG_RANGE", err)
	}
	if _, err := w.Stat("bad//path"); codeOf(err) != wire.Invalid {
		t.Fatalf("stat of a malformed path: %v, want INVALID", err)
	}
}
