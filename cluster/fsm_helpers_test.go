package cluster

// A state machine for the node's tests that need one with files in it (the
// usage figures) and the parts of the state machine's on-disk key layout
// (documented in package fsm) that tests inspecting a node's disk read.

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable/block"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/cleavefs/cleave/fsm"
	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/wire"
)

var wholeRing = wire.Range{}

// testFSM is one FSM over a fresh Pebble DB, fed one committed batch per
// entry, like the replica feeds it.
type testFSM struct {
	t     testing.TB
	db    *pebble.DB
	fsm   *fsm.FSM
	index uint64
}

func newTestFSM(t testing.TB, r wire.Range) *testFSM {
	t.Helper()
	db, err := pebble.Open(t.TempDir(), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f, err := fsm.NewFSM(db)
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	if err := f.Bootstrap(b, r); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	return &testFSM{t: t, db: db, fsm: f}
}

// must applies c as the next entry and fails the test unless it succeeds.
func (n *testFSM) must(c fsm.Command) {
	n.t.Helper()
	n.index++
	c.Time = 1_700_000_000_000_000_000 + int64(n.index)
	p, err := fsm.EncodeCommand(&c)
	if err != nil {
		n.t.Fatal(err)
	}
	b := n.db.NewIndexedBatch()
	defer b.Close()
	if res := n.fsm.Apply(b, n.index, p); res.Code != wire.OK {
		n.t.Fatalf("%v %s: %v %s", c.Op, c.Path, res.Code, res.Message)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		n.t.Fatal(err)
	}
}

// setRange overwrites the owned range, as a split entry will.
func (n *testFSM) setRange(r wire.Range) {
	n.t.Helper()
	v, err := msgpack.Marshal(&r)
	if err != nil {
		n.t.Fatal(err)
	}
	if err := n.db.Set([]byte("s/m/range"), v, pebble.NoSync); err != nil {
		n.t.Fatal(err)
	}
	if err := n.fsm.Restored(0); err != nil { // the state changed under the FSM
		n.t.Fatal(err)
	}
}

func put(p, data string, f wire.Flags) fsm.Command {
	return fsm.Command{Op: wire.OpPut, Path: p, Data: []byte(data), Flags: f}
}

// chunkKey is the key of chunk h's bytes: "s/c/" H.
func chunkKey(h fsm.ChunkID) []byte { return append([]byte("s/c/"), h[:]...) }

// entryPaths returns the paths of the entries in db: the keys "s/e/"
// P(root) parent "\x00" name.
func entryPaths(t *testing.T, db *pebble.DB) []string {
	t.Helper()
	const pfx = "s/e/"
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte(pfx), UpperBound: []byte("s/e0")})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []string
	for it.First(); it.Valid(); it.Next() {
		rest := it.Key()[len(pfx)+8:]
		i := bytes.IndexByte(rest, 0)
		out = append(out, fspath.Join(string(rest[:i]), string(rest[i+1:])))
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

// storedEntryKeys counts the file-entry keys of roots whose point lies in
// [lo, hi) that the database still stores in any form: values, and the
// tombstones of deleted ones that have not been compacted away yet.
func storedEntryKeys(t *testing.T, db *pebble.DB, lo, hi uint64) int {
	t.Helper()
	lower := binary.BigEndian.AppendUint64([]byte("s/e/"), lo)
	upper := []byte("s/e0")
	if hi != 0 {
		upper = binary.BigEndian.AppendUint64([]byte("s/e/"), hi)
	}
	n := 0
	err := db.ScanInternal(context.Background(), block.CategoryUnknown, lower, upper,
		func(*pebble.InternalKey, pebble.LazyValue, pebble.IteratorLevel) error { n++; return nil },
		func([]byte, []byte, pebble.SeqNum) error { n++; return nil }, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
