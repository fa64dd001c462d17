package fsm

// The entry clock. Every command carries two times the leader stamps when
// it proposes: Time, its wall clock, which becomes mtimes, and Clock, by
// which apply expires sessions and unreferenced chunks — never the
// applying node's clock. A leader's wall clock may be wrong: one far ahead
// would expire every session at once (a client's retry would then apply
// twice). So Clock is not the wall clock as it is.
//
// The leader's stamping rule — monotonic and bounded, so that a wrong
// wall clock cannot expire sessions early — is the storage node's (package
// cluster); the state machine keeps the largest Clock applied (FSM.Clock),
// which that rule never stamps below.
//
// The largest applied Clock is replicated state ("s/m/clock", written
// whenever it enters a new second), so a restarted leader knows it without
// replaying the log. Entries written before Clock existed expire by Time.

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

const (
	clockKey = prefix + "m/clock"
	// clockGrain is how far the entry clock moves between writes of
	// clockKey: at most one write per second of entry time.
	clockGrain = int64(time.Second)
)

// noteTime raises the FSM's clock (the largest Clock applied) to t, writing clockKey through b when t
// enters a new clockGrain. It is part of Apply: deterministic, since the
// clock is a function of the entries applied (and of clockKey, which holds
// the clock rounded down to clockGrain).
func (f *FSM) noteTime(b *pebble.Batch, t int64) error {
	cur := f.clock.Load()
	if t <= cur {
		return nil
	}
	f.clock.Store(t)
	if t/clockGrain == cur/clockGrain {
		return nil
	}
	if err := b.Set([]byte(clockKey), binary.BigEndian.AppendUint64(nil, uint64(t)), nil); err != nil {
		return storageErr("write the entry clock", err)
	}
	return nil
}

// Clock returns the largest entry clock (Command.Clock, Unix nanoseconds)
// applied on this node, 0 if none. Safe for concurrent use.
func (f *FSM) Clock() int64 { return f.clock.Load() }

// loadClock reads the stored entry clock into memory: at start, and after
// a snapshot replaced the state.
func (f *FSM) loadClock() error {
	v, err := getValue(f.db, []byte(clockKey))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		f.clock.Store(0)
		return nil
	case err != nil:
		return storageErr("read the entry clock", err)
	case len(v) != 8:
		return storageErr("read the entry clock", errors.New("bad length"))
	}
	f.clock.Store(int64(binary.BigEndian.Uint64(v)))
	return nil
}

// Restored implements replica.Restorer: the snapshot brought its own clock.
// The in-memory copies of other state are forgotten, to be read again.
func (f *FSM) Restored(uint64) error {
	f.cache.reset()
	return f.loadClock()
}
