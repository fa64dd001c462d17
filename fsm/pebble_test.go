package fsm

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/cleavefs/cleave/internal/eventually"
)

// A flush that cannot write its table (the disk is full) is recorded as
// the latest storage error, with its time, and logged once for the whole
// run of retries rather than once per retry.
func TestStorageHealthRecordsBackgroundErrors(t *testing.T) {
	var logs bytes.Buffer
	h := NewStorageHealth(slog.New(slog.NewTextHandler(&logs, nil)))
	full := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpCreate && strings.HasSuffix(op.Path, ".sst") {
			return syscall.ENOSPC
		}
		return nil
	})}
	o := PebbleOptions(nil)
	o.FS = errorfs.Wrap(vfs.NewMem(), full)
	h.Listen(o)
	db, err := pebble.Open(filepath.Join("db"), o)
	if err != nil {
		t.Fatal(err)
	}
	if r := h.Report(); r.LastError != "" || r.BackgroundErrors != 0 {
		t.Fatalf("report of a healthy DB: %+v", r)
	}
	full.On()
	start := time.Now()
	if err := db.Set([]byte("k"), []byte("v"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AsyncFlush(); err != nil {
		t.Fatal(err)
	}
	eventually.Holds(t, 20*time.Second, "a background error recorded", func() error {
		r := h.Report()
		return eventually.True(r.BackgroundErrors > 0 && strings.Contains(r.LastError, "no space left on device") &&
			time.Since(r.LastErrorAt) < time.Minute, "report %+v", r)
	})
	full.Off()
	if err := db.Close(); err != nil {
		t.Fatalf("close once the disk has room again: %v", err)
	}
	r := h.Report()
	lines := strings.Count(logs.String(), "storage background error")
	t.Logf("%d background errors, %d log lines", r.BackgroundErrors, lines)
	if most := 1 + int(time.Since(start)/storageLogEvery); lines < 1 || lines > most {
		t.Errorf("%d log lines for %d background errors; want one, then at most one per %v\n%s", lines, r.BackgroundErrors, storageLogEvery, logs.String())
	}
}

// TestPointMissSkipsTables: apply looks up keys that are usually absent
// (the metadata of a chunk not stored yet, a new file's entry). With the
// node's options such a lookup is answered by each table's filter
// without reading its data blocks.
func TestPointMissSkipsTables(t *testing.T) {
	db, err := pebble.Open(t.TempDir(), PebbleOptions(quietLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 1000 {
		if err := db.Set(metaKey(ChunkOf([]byte{byte(i), byte(i >> 8)})), []byte{0x81, 0xa1, 's', 0x01}, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	before := db.Metrics().Filter
	const misses = 100
	for i := range misses {
		if _, _, err := db.Get(metaKey(ChunkOf([]byte{byte(i), 'x'}))); err != pebble.ErrNotFound {
			t.Fatalf("get of an absent key: %v", err)
		}
	}
	after := db.Metrics().Filter
	if hits := after.Hits - before.Hits; hits < misses*9/10 {
		t.Fatalf("%d of %d lookups of absent keys were answered by a table filter (misses %d)", hits, misses, after.Misses-before.Misses)
	}
}
