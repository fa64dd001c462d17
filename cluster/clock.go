package cluster

// The entry clock. Every command carries two times the leader stamps when
// it proposes: Time, its wall clock, which becomes mtimes, and Clock, by
// which apply expires sessions and unreferenced chunks — never the
// applying node's clock. A leader's wall clock may be wrong: one far ahead
// would expire every session at once (a client's retry would then apply
// twice). So Clock is not the wall clock as it is:
//
//   - Monotonic: a stamp is never below the largest Clock applied on this
//     node (FSM.Clock) or the last stamp it issued.
//   - Bounded: it follows the local monotonic clock from an anchor (the
//     largest applied Clock, and the local monotonic reading when the
//     anchor was taken), moving toward the wall clock by at most MaxJump.
//     The anchor is taken again every Period, so a lagging Clock (a
//     cluster that was down for a while) catches up with the wall clock at
//     MaxJump per Period, and a leader whose wall clock is far ahead
//     advances Clock by at most the elapsed time plus MaxJump per Period.
//
// With MaxJump = SessionTTL/4 and Period = SessionTTL/2, Clock runs at most
// 1.5 times as fast as real time, so a session idle for less than two
// thirds of its TTL is never expired by a bad clock. (Mtimes, from Time,
// are only as good as the leader's wall clock, as in any file system.)
//
// The largest applied Clock is replicated state ("s/m/clock", written
// whenever it enters a new second), so a restarted leader knows it without
// replaying the log. Entries written before Clock existed expire by Time.

import (
	"encoding/binary"
	"errors"
	"sync"
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
func (f *FSM) Restored(uint64) error { return f.loadClock() }

// entryClock stamps Command.Clock of the entries a leader proposes (see the
// top of this file). Safe for concurrent use.
type entryClock struct {
	applied func() int64 // the largest entry time applied here (FSM.Clock)
	maxJump time.Duration
	period  time.Duration

	mu      sync.Mutex
	anchorT int64     // entry time at the anchor
	anchorM time.Time // local monotonic reading at the anchor; zero: none
	issued  int64     // the last stamp
}

func newEntryClock(applied func() int64, sessionTTL time.Duration) *entryClock {
	return &entryClock{applied: applied, maxJump: sessionTTL / 4, period: sessionTTL / 2}
}

// stamp returns the time for an entry proposed now (time.Now(): its wall
// clock and its monotonic reading).
func (c *entryClock) stamp(now time.Time) int64 { return c.stampAt(now.UnixNano(), now) }

// stampAt is stamp with the wall clock (Unix nanoseconds) and the monotonic
// reading (used only for durations) apart.
func (c *entryClock) stampAt(wall int64, now time.Time) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	lo := max(c.applied(), c.issued)
	if c.anchorM.IsZero() || now.Sub(c.anchorM) >= c.period || lo > c.anchorT+int64(now.Sub(c.anchorM))+int64(c.maxJump) {
		// A new anchor: at start, every period, or when another leader's
		// entries moved the clock past what this one would allow.
		c.anchorT, c.anchorM = lo, now
		if lo == 0 { // nothing applied yet: the wall clock is all there is
			c.anchorT = wall
		}
	}
	mono := c.anchorT + int64(now.Sub(c.anchorM))
	t := min(max(wall, mono-int64(c.maxJump)), mono+int64(c.maxJump))
	t = max(t, lo)
	c.issued = t
	return t
}
