package rpc

import "sync"

// byteBudget bounds the bytes of requests being handled. acquire waits for
// room instead of failing; a request larger than the whole budget waits for
// the budget to be empty. Safe for concurrent use.
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

// release returns n bytes taken by acquire and wakes every waiter.
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
