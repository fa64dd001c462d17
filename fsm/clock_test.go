package fsm

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// The FSM's clock is the largest entry time applied, stored once per
// second of entry time, and reloaded at start.
func TestFSMClockPersists(t *testing.T) {
	db, err := pebble.Open(t.TempDir(), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f := mustFSM(db)
	b := db.NewIndexedBatch()
	for _, tm := range []int64{5e9 + 1, 5e9 + 2, 4e9, 6e9 + 7} {
		if err := f.noteTime(b, tm); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if got := f.Clock(); got != 6e9+7 {
		t.Fatalf("clock %d, want the largest time applied", got)
	}
	if got := mustFSM(db).Clock(); got != 6e9+7 {
		t.Fatalf("reloaded clock %d, want 6e9+7 (stored when it entered a new second)", got)
	}
}
