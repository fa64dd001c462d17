package rpc

import (
	"container/heap"
	"time"
)

// dueItem is what a dueHeap holds: something with a deadline that keeps
// its position in the heap (-1 when not in it).
type dueItem interface {
	dueAt() time.Time
	slot() *int
}

// dueHeap orders items by deadline, earliest first (container/heap),
// keeping each one's position in its slot so it can be removed.
type dueHeap[T dueItem] []T

func (h dueHeap[T]) Len() int           { return len(h) }
func (h dueHeap[T]) Less(i, j int) bool { return h[i].dueAt().Before(h[j].dueAt()) }
func (h dueHeap[T]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	*h[i].slot(), *h[j].slot() = i, j
}

func (h *dueHeap[T]) Push(x any) {
	v := x.(T)
	*v.slot() = len(*h)
	*h = append(*h, v)
}

func (h *dueHeap[T]) Pop() any {
	old := *h
	n := len(old)
	v := old[n-1]
	var zero T
	old[n-1] = zero
	*v.slot() = -1
	*h = old[:n-1]
	return v
}

// dueQueue is a dueHeap with one timer for its earliest item. Its owner's
// lock guards it; fire (add's) runs on the timer's goroutine without it.
type dueQueue[T dueItem] struct {
	items dueHeap[T]
	timer *time.Timer
	due   time.Time // when timer fires; zero when it is not set
}

// add puts v in the queue and sets the timer earlier, to run fire, if v
// is due first.
func (q *dueQueue[T]) add(v T, fire func()) {
	heap.Push(&q.items, v)
	if !q.due.IsZero() && !v.dueAt().Before(q.due) {
		return
	}
	q.due = v.dueAt()
	if q.timer == nil {
		q.timer = time.AfterFunc(time.Until(q.due), fire)
	} else {
		q.timer.Reset(time.Until(q.due))
	}
}

// remove takes v out of the queue if it is in it. The timer is left: it
// may fire with nothing due.
func (q *dueQueue[T]) remove(v T) {
	if i := *v.slot(); i >= 0 {
		heap.Remove(&q.items, i)
	}
}

// popDue removes and returns the earliest item if it is due at now.
func (q *dueQueue[T]) popDue(now time.Time) (T, bool) {
	if len(q.items) == 0 || now.Before(q.items[0].dueAt()) {
		var zero T
		return zero, false
	}
	return heap.Pop(&q.items).(T), true
}

// rearm sets the timer for the earliest item left, once it has fired.
func (q *dueQueue[T]) rearm(now time.Time) {
	q.due = time.Time{}
	if len(q.items) > 0 {
		q.due = q.items[0].dueAt()
		q.timer.Reset(q.due.Sub(now))
	}
}

// stop stops the timer; the items stay.
func (q *dueQueue[T]) stop() {
	if q.timer != nil {
		q.timer.Stop()
	}
	q.due = time.Time{}
}
