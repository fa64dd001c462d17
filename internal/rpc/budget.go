package rpc

import (
	"slices"
	"sync"
	"time"
)

// byteBudget bounds bytes held for a connection or a server: requests
// being handled and, per connection, responses waiting to be written.
// acquire waits for room instead of failing; a request larger than the
// whole budget waits for the budget to be empty. Safe for concurrent use.
type byteBudget struct {
	max int64

	mu    sync.Mutex
	used  int64
	freed chan struct{} // closed and replaced by release; nil while nobody waits
}

func newByteBudget(max int) *byteBudget { return &byteBudget{max: int64(max)} }

// acquire takes n bytes, waiting until they fit or done is closed (then it
// returns false and takes nothing).
func (b *byteBudget) acquire(n int, done <-chan struct{}) bool {
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+int64(n) <= b.max {
			b.used += int64(n)
			b.mu.Unlock()
			return true
		}
		if b.freed == nil {
			b.freed = make(chan struct{})
		}
		freed := b.freed
		b.mu.Unlock()
		select {
		case <-freed:
		case <-done:
			return false
		}
	}
}

// add takes n bytes without waiting, even beyond max: bytes that already
// exist (a response to queue), which later acquires then wait behind.
func (b *byteBudget) add(n int) {
	b.mu.Lock()
	b.used += int64(n)
	b.mu.Unlock()
}

// release returns n bytes taken by acquire or add and wakes every waiter.
func (b *byteBudget) release(n int) {
	b.mu.Lock()
	b.used -= int64(n)
	if b.freed != nil {
		close(b.freed)
		b.freed = nil
	}
	b.mu.Unlock()
}

// inUse returns the bytes taken now.
func (b *byteBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// window bounds a connection's answers owed: requests admitted whose
// answers have not been written yet. A peer earns room by reading: the
// bound starts at initialWindow and grows by one for every answer
// written, up to max. A peer that pipelines requests and reads nothing
// gets initialWindow answers produced (plus what the socket buffers
// took), not thousands.
//
// An answer owed while the connection owes at least as many as it has had
// written is unearned: it also takes one from shared, the allowance of
// every connection from the peer's address, and gives it back when an
// answer is written or dropped, or the connection ends (releaseHeld). So
// connections that reconnect and never read share one allowance, however
// many they are, while a connection that reads is not held by it. Safe
// for concurrent use.
type window struct {
	max    int
	shared *allowance // unearned answers of the peer's address; nil: no such bound
	// alive, if set, reports whether the peer may still read what it asked
	// for; asked every second while waiting for shared.
	alive func() bool

	mu      sync.Mutex
	owed    int
	written int
	held    int           // of shared; never more than owed
	freed   chan struct{} // closed and replaced by done; nil while nobody waits
}

// initialWindow is the answers a connection may owe before it has read any.
const initialWindow = 8

// acquire takes room for one answer, waiting until there is some (and,
// for an unearned answer, room in shared) or done is closed (then it
// returns false and takes nothing).
func (w *window) acquire(done <-chan struct{}) bool {
	for {
		w.mu.Lock()
		if w.owed < min(w.max, initialWindow+w.written) {
			if w.shared == nil || w.owed < w.written {
				w.owed++
				w.mu.Unlock()
				return true
			}
			w.mu.Unlock()
			if !w.awaitShared(done) {
				return false
			}
			w.mu.Lock()
			w.owed++
			w.held++
			w.mu.Unlock()
			return true
		}
		if w.freed == nil {
			w.freed = make(chan struct{})
		}
		freed := w.freed
		w.mu.Unlock()
		select {
		case <-freed:
		case <-done:
			return false
		}
	}
}

// awaitShared takes one of shared, waiting its turn; false if done closed
// or alive reported the peer gone meanwhile.
func (w *window) awaitShared(done <-chan struct{}) bool {
	var tick <-chan time.Time
	if w.alive != nil {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	if !w.shared.acquire(done, tick, w.alive) {
		return false
	}
	if w.alive != nil && !w.alive() { // gone while others were served
		w.shared.release(1)
		return false
	}
	return true
}

// force takes room for an answer without waiting (one the server owes
// whatever the window says: an error about the request it just read).
func (w *window) force() {
	w.mu.Lock()
	w.owed++
	w.mu.Unlock()
}

// done records one answer written (or dropped) and wakes the waiters.
func (w *window) done() {
	w.mu.Lock()
	w.owed--
	w.written++
	give := w.held > 0
	if give {
		w.held--
	}
	if w.freed != nil {
		close(w.freed)
		w.freed = nil
	}
	w.mu.Unlock()
	if give {
		w.shared.release(1)
	}
}

// releaseHeld gives back what the connection still holds of shared; called
// once it has ended.
func (w *window) releaseHeld() {
	w.mu.Lock()
	n := w.held
	w.held = 0
	w.mu.Unlock()
	if n > 0 {
		w.shared.release(n)
	}
}

// allowance is a count shared by many connections, handed out one at a
// time in the order asked for: a release wakes only the waiter it serves,
// however many wait. Safe for concurrent use.
type allowance struct {
	mu      sync.Mutex
	free    int
	waiters []chan struct{} // closed when served, oldest first
}

func newAllowance(n int) *allowance { return &allowance{free: n} }

// acquire takes one, waiting its turn until one is free or done is closed
// (then it returns false and takes nothing). While it waits, every tick it
// asks alive, if set, and gives up (false) when that reports false.
func (a *allowance) acquire(done <-chan struct{}, tick <-chan time.Time, alive func() bool) bool {
	a.mu.Lock()
	if a.free > 0 && len(a.waiters) == 0 {
		a.free--
		a.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	a.waiters = append(a.waiters, ch)
	a.mu.Unlock()
	for {
		select {
		case <-ch:
			return true
		case <-tick:
			if alive == nil || alive() {
				continue
			}
		case <-done:
		}
		a.mu.Lock()
		if i := slices.Index(a.waiters, ch); i >= 0 {
			a.waiters = slices.Delete(a.waiters, i, i+1)
			a.mu.Unlock()
			return false
		}
		a.mu.Unlock()
		a.release(1) // served meanwhile: pass it on
		return false
	}
}

// release gives back n, each to the oldest waiter or to the free count.
func (a *allowance) release(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for ; n > 0; n-- {
		if len(a.waiters) == 0 {
			a.free++
			continue
		}
		close(a.waiters[0])
		a.waiters = a.waiters[1:]
	}
}
