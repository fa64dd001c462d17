package rpc

import (
	"context"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// A call made with CallUntil ends at its deadline without a timer or a
// context of its own: the connection keeps the deadlines of its pending
// calls in one queue under one timer (Conn.deadlines, a dueQueue guarded
// by its mu, as a server connection keeps its requests'), and at a
// deadline hands the call the expired sentinel, which Wait turns into
// context.DeadlineExceeded. A context.WithTimeout per call costs a timer,
// its registration with the parent context and their cancellation: about
// a quarter of a client's CPU per call at tens of thousands of calls a
// second.

// expired is what a call whose deadline passed receives instead of an
// answer.
var expired = &wire.Response{Code: wire.Timeout, Message: "deadline exceeded"}

// addDeadlineLocked puts p in the connection's deadlines. c.mu is held.
func (c *Conn) addDeadlineLocked(p *Pending) { c.deadlines.add(p, c.expire) }

// removeDeadlineLocked takes p out of the connection's deadlines if it is
// there. c.mu is held.
func (c *Conn) removeDeadlineLocked(p *Pending) { c.deadlines.remove(p) }

// expire ends the calls whose deadline has come, and sets the timer for
// the next.
func (c *Conn) expire() {
	var ended []*Pending
	c.mu.Lock()
	now := time.Now()
	for p, ok := c.deadlines.popDue(now); ok; p, ok = c.deadlines.popDue(now) {
		delete(c.pending, p.id)
		ended = append(ended, p)
	}
	c.deadlines.rearm(now)
	c.mu.Unlock()
	for _, p := range ended {
		p.ch <- expired
		p.notified()
	}
}

// stopDeadlinesLocked forgets every deadline: the connection died and
// its calls were ended. c.mu is held.
func (c *Conn) stopDeadlinesLocked() {
	for _, p := range c.deadlines.items {
		p.idx = -1
	}
	c.deadlines.items = nil
	c.deadlines.stop()
}

func (p *Pending) dueAt() time.Time { return p.deadline }
func (p *Pending) slot() *int       { return &p.idx }

// untilMs is the TimeoutMs of a request that must be answered by
// deadline (zero: none) and within ctx: 0 when neither has a deadline, an
// error when it has passed.
func untilMs(ctx context.Context, deadline time.Time) (uint32, error) {
	if dl, ok := ctx.Deadline(); ok && (deadline.IsZero() || dl.Before(deadline)) {
		deadline = dl
	}
	if deadline.IsZero() {
		return 0, nil
	}
	ms := time.Until(deadline).Milliseconds()
	if ms <= 0 {
		return 0, context.DeadlineExceeded
	}
	return uint32(min(ms, 1<<31)), nil
}
