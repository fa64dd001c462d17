package fsm

import (
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// committedHash hashes the state machine keys of db as the check does.
func committedHash(t *testing.T, db *pebble.DB) string {
	t.Helper()
	sum, err := hashState(db, true)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestHashOverlayIsTheStateAfterTheBatch: the hash of a snapshot with a
// batch's mutations laid over it equals the hash of the state once the
// batch commits, whatever the mix of sets, deletes and range deletes, in
// and out of the state machine's keys.
func TestHashOverlayIsTheStateAfterTheBatch(t *testing.T) {
	type op struct {
		kind    string // set, del, single, range
		k, v, e string
	}
	cases := []struct {
		name string
		ops  []op
	}{
		{"empty batch", nil},
		{"set new and existing", []op{{kind: "set", k: "s/e/b", v: "B2"}, {kind: "set", k: "s/e/bb", v: "new"}}},
		{"delete", []op{{kind: "del", k: "s/e/a"}, {kind: "single", k: "s/e/c"}, {kind: "del", k: "s/e/zz"}}},
		{"set then delete then set", []op{{kind: "set", k: "s/e/x", v: "1"}, {kind: "del", k: "s/e/x"}, {kind: "set", k: "s/e/x", v: "2"}}},
		{"range delete covers old and new", []op{{kind: "set", k: "s/e/bz", v: "gone"}, {kind: "range", k: "s/e/b", e: "s/e/d"}}},
		{"set after range delete", []op{{kind: "range", k: "s/e/", e: "s/f"}, {kind: "set", k: "s/e/c", v: "back"}}},
		{"raft keys ignored", []op{{kind: "set", k: "r/log/1", v: "entry"}, {kind: "range", k: "r/", e: "r0"}, {kind: "set", k: "t/x", v: "y"}}},
		{"chunk bytes by length", []op{{kind: "set", k: "s/c/h2", v: "0123456789"}, {kind: "set", k: "s/c/h1", v: "abcd"}}},
		{"range delete across the state's bounds", []op{{kind: "range", k: "r/", e: "s/e/b"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for _, kv := range [][2]string{{"r/applied", "x"}, {"s/c/h1", "abc"}, {"s/e/a", "A"}, {"s/e/b", "B"}, {"s/e/c", "C"}, {"s/m/range", "R"}, {"t/other", "O"}} {
				if err := db.Set([]byte(kv[0]), []byte(kv[1]), pebble.Sync); err != nil {
					t.Fatal(err)
				}
			}
			b := db.NewIndexedBatch()
			defer b.Close()
			for _, o := range tc.ops {
				var err error
				switch o.kind {
				case "set":
					err = b.Set([]byte(o.k), []byte(o.v), nil)
				case "del":
					err = b.Delete([]byte(o.k), nil)
				case "single":
					err = b.SingleDelete([]byte(o.k), nil)
				case "range":
					err = b.DeleteRange([]byte(o.k), []byte(o.e), nil)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			snap := db.NewSnapshot()
			defer snap.Close()
			got, err := HashOverlay(snap, slices.Clone(b.Repr()))
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if want := committedHash(t, db); got != want {
				t.Fatalf("overlay hash %s, committed state %s", got, want)
			}
		})
	}
}

// TestStateHasherChecksumDefinition: without chunk names the check's
// hasher is Checksum's definition; with them, a chunk's bytes count by
// their length only.
func TestStateHasherChunkNames(t *testing.T) {
	sum := func(chunkNames bool, v string) string {
		h := newStateHasher(chunkNames)
		h.add([]byte("s/c/h"), []byte(v))
		return h.sum()
	}
	if sum(true, "aaaa") != sum(true, "bbbb") {
		t.Error("with chunk names, two chunk values of one length hash differently")
	}
	if sum(false, "aaaa") == sum(false, "bbbb") {
		t.Error("without chunk names, two chunk values hash the same")
	}
}
