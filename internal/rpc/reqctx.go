package rpc

import (
	"context"
	"sync"
	"time"
)

// requestCtx is the context a request is handled with. It ends with
// context.DeadlineExceeded at the request's deadline, and with
// context.Canceled once its answer is queued or its connection closes,
// whichever comes first.
//
// Unlike context.WithTimeout it starts no timer of its own and joins no
// parent's set of children: its connection keeps, in one heap under one
// timer (deadlines), the deadlines of only the requests something waits
// on (Done, AfterFunc). A request answered before anyone waits on it
// costs one allocation. Contexts derived from it (WithCancel,
// WithDeadline, context.AfterFunc) register through AfterFunc, without
// a goroutine.
type requestCtx struct {
	d        *deadlines
	values   context.Context // the connection's values, without its cancellation
	deadline time.Time

	// Guarded by d.mu.
	err   error
	done  chan struct{} // made by the first Done
	funcs []*afterFunc  // to run when the context ends
	idx   int           // position in d.heap; -1 when not in it
}

// afterFunc is one function registered with requestCtx.AfterFunc.
type afterFunc struct{ f func() }

func (r *requestCtx) Deadline() (time.Time, bool) { return r.deadline, true }

func (r *requestCtx) Value(key any) any { return r.values.Value(key) }

// Done returns a channel closed when the context ends; from the first
// call on, the connection's timer keeps the deadline.
func (r *requestCtx) Done() <-chan struct{} {
	d := r.d
	d.mu.Lock()
	defer d.mu.Unlock()
	r.lapseLocked(time.Now())
	if r.done == nil {
		r.done = make(chan struct{})
		if r.err != nil {
			close(r.done)
		}
	}
	if r.err == nil {
		d.armLocked(r)
	}
	return r.done
}

func (r *requestCtx) Err() error {
	d := r.d
	d.mu.Lock()
	defer d.mu.Unlock()
	r.lapseLocked(time.Now())
	return r.err
}

// AfterFunc arranges for f to run once the context ends, on the goroutine
// that ends it (the connection's timer, its closing, or the request's
// answer), so f must not block; if the context has ended already, f runs
// at once on a goroutine of its own. stop unregisters f; it reports
// whether it did so before f started. It is the method through which
// context.AfterFunc and the contexts derived from r follow r.
func (r *requestCtx) AfterFunc(f func()) (stop func() bool) {
	d := r.d
	a := &afterFunc{f: f}
	d.mu.Lock()
	r.lapseLocked(time.Now())
	if r.err != nil {
		d.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	r.funcs = append(r.funcs, a)
	d.armLocked(r)
	d.mu.Unlock()
	return func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		for i, g := range r.funcs {
			if g == a {
				r.funcs = append(r.funcs[:i], r.funcs[i+1:]...)
				return true
			}
		}
		return false
	}
}

// AfterFunc is context.AfterFunc, but on the context a Server handles a
// request with it registers f directly, sparing context.AfterFunc's
// goroutine and allocations: f then runs on the goroutine that ends ctx
// and must not block.
func AfterFunc(ctx context.Context, f func()) (stop func() bool) {
	if r, ok := ctx.(*requestCtx); ok {
		return r.AfterFunc(f)
	}
	return context.AfterFunc(ctx, f)
}

// cancel ends the context: its request was answered.
func (r *requestCtx) cancel() {
	d := r.d
	d.mu.Lock()
	fs := r.endLocked(context.Canceled)
	d.mu.Unlock()
	run(fs)
}

// lapseLocked ends r if nothing waits on it (the connection's timer
// does not keep its deadline, so no function is registered) and its
// connection closed or its deadline is not after now. A context something
// waits on is ended by the timer or the closing, as a context.WithTimeout
// is by its own timer: never by the goroutine that asks.
func (r *requestCtx) lapseLocked(now time.Time) {
	if r.err != nil || r.idx >= 0 {
		return
	}
	switch {
	case r.d.closed:
		r.endLocked(context.Canceled)
	case !now.Before(r.deadline):
		r.endLocked(context.DeadlineExceeded)
	}
}

// endLocked ends r with err unless it has ended, and returns the
// functions registered to run then; the caller runs them after releasing
// d.mu.
func (r *requestCtx) endLocked(err error) []*afterFunc {
	if r.err != nil {
		return nil
	}
	r.err = err
	if r.done != nil {
		close(r.done)
	}
	r.d.q.remove(r)
	fs := r.funcs
	r.funcs = nil
	return fs
}

func run(fs []*afterFunc) {
	for _, a := range fs {
		a.f()
	}
}

// deadlines are one connection's request contexts that something waits
// on, earliest deadline first, with one timer for the earliest.
type deadlines struct {
	mu     sync.Mutex
	closed bool // the connection closed: every context has ended or ends when asked
	q      dueQueue[*requestCtx]
}

// newCtx returns the context of a request with deadline; values supplies
// Value.
func (d *deadlines) newCtx(values context.Context, deadline time.Time) *requestCtx {
	return &requestCtx{d: d, values: values, deadline: deadline, idx: -1}
}

// armLocked puts r in the heap unless it is there, and sets the timer
// earlier if r is due first.
func (d *deadlines) armLocked(r *requestCtx) {
	if r.idx < 0 {
		d.q.add(r, d.expire)
	}
}

// expire ends the contexts whose deadline has come and sets the timer for
// the next. A context answered meanwhile left the heap without moving the
// timer, so it may fire with nothing due.
func (d *deadlines) expire() {
	d.mu.Lock()
	now := time.Now()
	var fs []*afterFunc
	for r, ok := d.q.popDue(now); ok; r, ok = d.q.popDue(now) {
		fs = append(fs, r.endLocked(context.DeadlineExceeded)...)
	}
	if d.closed {
		d.q.stop()
	} else {
		d.q.rearm(now)
	}
	d.mu.Unlock()
	run(fs)
}

// close ends every context something waits on, and makes the others end
// when next asked.
func (d *deadlines) close() {
	d.mu.Lock()
	d.closed = true
	var fs []*afterFunc
	for len(d.q.items) > 0 {
		fs = append(fs, d.q.items[0].endLocked(context.Canceled)...)
	}
	d.q.stop()
	d.mu.Unlock()
	run(fs)
}

func (r *requestCtx) dueAt() time.Time { return r.deadline }
func (r *requestCtx) slot() *int       { return &r.idx }
