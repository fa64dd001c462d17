package cluster

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/cleavefs/cleave/fsm"
)

// compactor compacts a node's state once a split's cleanup has dropped
// what the node no longer owns (fsm.FSM.CompactState). The cleanup deletes
// half the node's files one key at a time; left alone, Pebble keeps those
// tombstones and the values under them until later writes happen to push
// them into the last level, and every compaction until then rewrites the
// dead half again. One compaction right after the cleanup drops them at
// once, while the node is otherwise quiet. A request while one runs makes
// it run once more after it.
type compactor struct {
	fsm     *fsm.FSM
	applied func() uint64 // the replica's applied index
	log     *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	running bool
	after   uint64 // the index the next run waits to see applied
}

func newCompactor(f *fsm.FSM, applied func() uint64, log *slog.Logger) *compactor {
	c := &compactor{fsm: f, applied: applied, log: log.With("component", "compactor")}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// request starts a compaction of the state once entry index (the one
// applying now, whose batch is not committed yet) is applied, or asks the
// running one to run again when it ends. It never blocks.
func (c *compactor) request(index uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return
	}
	c.after = max(c.after, index)
	if c.running {
		return
	}
	c.running = true
	c.wg.Add(1)
	go c.run()
}

// appliedPoll is how often a run checks whether its entry is applied, and
// appliedWait how long it waits for that before compacting anyway.
const (
	appliedPoll = 20 * time.Millisecond
	appliedWait = 30 * time.Second
)

func (c *compactor) run() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		after := c.after
		c.after = 0
		c.mu.Unlock()
		for deadline := time.Now().Add(appliedWait); c.applied() < after && time.Now().Before(deadline); {
			select {
			case <-c.ctx.Done():
				c.mu.Lock()
				c.running = false
				c.mu.Unlock()
				return
			case <-time.After(appliedPoll):
			}
		}
		start := time.Now()
		if err := c.fsm.CompactState(c.ctx); err != nil {
			if c.ctx.Err() == nil {
				c.log.Warn("compacting the state after a split's cleanup failed", "err", err)
			}
		} else {
			c.log.Info("compacted the state after a split's cleanup", "took", time.Since(start).Round(time.Millisecond))
		}
		c.mu.Lock()
		if c.after == 0 || c.ctx.Err() != nil {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

// stop cancels a running compaction and waits for it to end; later
// requests do nothing. The database may be closed after it returns.
func (c *compactor) stop() {
	c.mu.Lock()
	c.cancel()
	c.mu.Unlock()
	c.wg.Wait()
}
