package cluster

// The leader's entry clock: the Clock it stamps on every command it
// proposes (the state machine expires sessions and unreferenced chunks by
// it; see package fsm). A leader's wall clock may be wrong, so Clock is:
//
//   - Monotonic: a stamp is never below the largest Clock applied on this
//     node (fsm.FSM.Clock) or the last stamp it issued.
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

import (
	"sync"
	"time"
)

// entryClock stamps fsm.Command.Clock of the entries a leader proposes (see the
// top of this file). Safe for concurrent use.
type entryClock struct {
	applied func() int64 // the largest entry time applied here (fsm.FSM.Clock)
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
