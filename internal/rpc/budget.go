package rpc

import "sync"

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
// took), not thousands. Safe for concurrent use.
type window struct {
	max int

	mu      sync.Mutex
	owed    int
	written int
	freed   chan struct{} // closed and replaced by done; nil while nobody waits
}

// initialWindow is the answers a connection may owe before it has read any.
const initialWindow = 8

// acquire takes room for one answer, waiting until there is some or done
// is closed (then it returns false and takes nothing).
func (w *window) acquire(done <-chan struct{}) bool {
	for {
		w.mu.Lock()
		if w.owed < min(w.max, initialWindow+w.written) {
			w.owed++
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
	if w.freed != nil {
		close(w.freed)
		w.freed = nil
	}
	w.mu.Unlock()
}
