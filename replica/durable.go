package replica

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// CommitDurable commits b and then makes it durable with a flush of the
// DB's memtables: whatever the DB holds is durable once a flush that began
// after it ends, with or without a write-ahead log. The replica writes
// what must survive a crash this way (HardState term and vote, member
// marks, records of truncation, bootstrap and log generation), so it never
// relies on the DB's WAL and the DB may run with pebble.Options.DisableWAL:
// the replica's log replays every entry the state lost. A flush costs a
// table write and its sync, so only rare writes go this way.
func CommitDurable(db *pebble.DB, b *pebble.Batch) error {
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	if err := db.Flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// setDurable sets key to value in db, durably (CommitDurable).
func setDurable(db *pebble.DB, key, value []byte) error {
	b := db.NewBatch()
	defer b.Close()
	if err := b.Set(key, value, nil); err != nil {
		return err
	}
	return CommitDurable(db, b)
}
