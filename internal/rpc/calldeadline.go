package rpc

import (
	"container/heap"
	"context"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// A call made with CallUntil ends at its deadline without a timer or a
// context of its own: the connection keeps the deadlines of its pending
// calls in one heap under one timer (callDeadlines), and at a deadline
// hands the call the expired sentinel, which Wait turns into
// context.DeadlineExceeded. A context.WithTimeout per call costs a timer,
// its registration with the parent context and their cancellation: about
// a quarter of a client's CPU per call at tens of thousands of calls a
// second.

// expired is what a call whose deadline passed receives instead of an
// answer.
var expired = &wire.Response{Code: wire.Timeout, Message: "deadline exceeded"}

// callDeadlines are a connection's pending calls that have a deadline,
// earliest first, with one timer for the earliest. Guarded by the Conn's
// mu.
type callDeadlines struct {
	heap  pendingHeap
	timer *time.Timer
	due   time.Time // when timer fires; zero when it is not set
}

// addDeadlineLocked puts p in the heap and sets the timer earlier if p is due
// first. c.mu is held.
func (c *Conn) addDeadlineLocked(p *Pending) {
	d := &c.deadlines
	heap.Push(&d.heap, p)
	if !d.due.IsZero() && !p.deadline.Before(d.due) {
		return
	}
	d.due = p.deadline
	if d.timer == nil {
		d.timer = time.AfterFunc(time.Until(p.deadline), c.expire)
	} else {
		d.timer.Reset(time.Until(p.deadline))
	}
}

// removeDeadlineLocked takes p out of the heap if it is there. The timer
// is left: it may fire with nothing due. c.mu is held.
func (c *Conn) removeDeadlineLocked(p *Pending) {
	if p.idx >= 0 {
		heap.Remove(&c.deadlines.heap, p.idx)
	}
}

// expire ends the calls whose deadline has come, and sets the timer for
// the next.
func (c *Conn) expire() {
	var ended []*Pending
	c.mu.Lock()
	d := &c.deadlines
	d.due = time.Time{}
	now := time.Now()
	for len(d.heap) > 0 {
		p := d.heap[0]
		if p.deadline.After(now) {
			d.due = p.deadline
			d.timer.Reset(p.deadline.Sub(now))
			break
		}
		heap.Pop(&d.heap)
		delete(c.pending, p.id)
		ended = append(ended, p)
	}
	c.mu.Unlock()
	for _, p := range ended {
		p.ch <- expired
		p.notified()
	}
}

// stopDeadlinesLocked forgets every deadline: the connection died and
// its calls were ended. c.mu is held.
func (c *Conn) stopDeadlinesLocked() {
	d := &c.deadlines
	for _, p := range d.heap {
		p.idx = -1
	}
	d.heap = nil
	if d.timer != nil {
		d.timer.Stop()
	}
	d.due = time.Time{}
}

// pendingHeap orders calls by deadline (container/heap).
type pendingHeap []*Pending

func (h pendingHeap) Len() int           { return len(h) }
func (h pendingHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h pendingHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *pendingHeap) Push(x any) {
	p := x.(*Pending)
	p.idx = len(*h)
	*h = append(*h, p)
}
func (h *pendingHeap) Pop() any {
	old := *h
	n := len(old)
	p := old[n-1]
	old[n-1] = nil
	p.idx = -1
	*h = old[:n-1]
	return p
}

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
