package replica

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// flushTimeout bounds how long the replica waits for a flush of its DB.
// Pebble retries a flush that fails (a full disk) until it succeeds, so an
// unbounded wait would hang the replica instead of failing it.
const flushTimeout = 30 * time.Second

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
	return flushWithin(db, flushTimeout)
}

// flushWithin flushes db's memtables and waits for the flush at most d.
func flushWithin(db *pebble.DB, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- db.Flush() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("flush did not finish within %v", d)
	}
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
