package replica

import "time"

// handDriver replaces the loop's clock and lets a test drive the loop one
// iteration at a time, so that a scenario replays exactly (tests pass one to open;
// Open passes nil). Nothing else changes: the loop handles its inputs,
// Readies and fsyncs as in production.
type handDriver struct {
	// tick replaces the ticker: every value received is one raft tick.
	tick <-chan time.Time
	// steps are hand steps; each is one iteration of the loop.
	steps chan handStep
	// afterReady, if set, runs on the loop goroutine after each Ready's
	// batch is committed (or found empty), before its messages to peers
	// (a follower's) are sent and its results delivered.
	afterReady func()
	// afterApply, if set, runs on the loop goroutine after applyDurable
	// commits its batch, before the proposers it settles are answered.
	afterApply func()
	// afterLogSync, if set, runs after a Ready's entries are synced to the
	// log (and the messages that may go then are sent), before its batch
	// is committed: on the goroutine that writes it (the writer, while the
	// hand-driven loop waits for the write, or the loop writing in place).
	afterLogSync func()
}

// handStep is one iteration of the loop driven by hand: before runs on
// the loop goroutine first (it may queue inputs through the exported
// methods, which the iteration then folds in as it folds queued inputs),
// and done is closed when the iteration ends with no Ready pending.
type handStep struct {
	before func()
	done   chan struct{}
}
