package control

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/cleavefs/cleave/replica"
	"github.com/cleavefs/cleave/wire"
)

// A meta state that does not load after a snapshot restore stops the
// replica (Restored panics on the replica's loop) instead of leaving the
// router routing with the table it had before the snapshot.
func TestMetaRestoredFailsStop(t *testing.T) {
	good, err := msgpack.Marshal(&metaCommand{Expect: 6, Table: func() *wire.TableInfo {
		tab := BootstrapTable(twoClusters())
		tab.Version = 7
		return tab
	}()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		table, splits []byte
	}{
		{"table does not decode", []byte("not msgpack"), nil},
		{"no table", nil, nil},
		{"splits do not decode", good, []byte{0xc1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := pebble.Open(t.TempDir(), &pebble.Options{Logger: replica.PebbleLogger(slog.New(slog.DiscardHandler))})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for k, v := range map[string][]byte{string(metaTableKey): tc.table, string(metaSplitsKey): tc.splits} {
				if v != nil {
					if err := db.Set([]byte(k), v, pebble.Sync); err != nil {
						t.Fatal(err)
					}
				}
			}
			f := &metaFSM{db: db}
			old := BootstrapTable(twoClusters())
			f.cur.Store(old)
			err = f.Restored(9)
			if err == nil {
				t.Fatalf("Restored went on with table version %d after a failed load", f.cur.Load().Version)
			}
			if msg := err.Error(); !strings.Contains(msg, "snapshot 9") {
				t.Errorf("error %q does not name the snapshot", msg)
			}
		})
	}
}
