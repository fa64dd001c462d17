// Package durable makes rare writes to a Pebble DB survive a crash whether
// or not the DB has a write-ahead log: it commits them and then flushes
// the DB's memtables, since whatever the DB holds is durable once a flush
// that began after it has ended. A node's state DB runs without a WAL (its
// replica's log replays what a crash loses), so what must survive a crash
// and is not in that log goes through here: a term or vote, a bootstrap, a
// split's fork and taint, a repaired chunk. A flush writes a table and
// syncs it, so only rare writes go this way.
package durable

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Timeout bounds every wait for a flush here. Pebble retries a flush that
// fails (a full disk) until it succeeds, so an unbounded wait would hang
// the writer instead of failing it.
const Timeout = 30 * time.Second

// Commit commits b and flushes db: b is durable when it returns nil.
func Commit(db *pebble.DB, b *pebble.Batch) error {
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	return Flush(db)
}

// Set sets key to value in db, durably (Commit).
func Set(db *pebble.DB, key, value []byte) error {
	b := db.NewBatch()
	defer b.Close()
	if err := b.Set(key, value, nil); err != nil {
		return err
	}
	return Commit(db, b)
}

// Flush flushes db's memtables and waits for the flush at most Timeout.
func Flush(db *pebble.DB) error {
	done := make(chan error, 1)
	go func() { done <- db.Flush() }()
	t := time.NewTimer(Timeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("flush did not finish within %v", Timeout)
	}
}
