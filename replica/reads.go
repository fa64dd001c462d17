package replica

import (
	"encoding/binary"
	"slices"

	"go.etcd.io/raft/v3"
)

// readWaiter is one read waiting for its barrier: ReadIndex's (done) or
// ReadIndexFunc's (then).
type readWaiter struct {
	done chan error              // buffered, answered once
	then func(*ReadScope, error) // called once, never on the loop
}

// A ReadScope is shared by the ReadIndexFunc callbacks of the reads
// released together: they run one after another on one goroutine, each
// after the read index of every one of them is applied. A value the first
// opens through Shared is handed to the others and closed after the last,
// so the reads of one round can share, say, one snapshot of the state:
// opened once the round's index is applied, it serves each of them
// linearizably.
type ReadScope struct {
	opened bool
	v      any
	close  func()
}

// Shared returns the scope's value, opening it with open on first use;
// the scope calls the close function open returns (if not nil) after the
// last callback.
func (s *ReadScope) Shared(open func() (v any, close func())) any {
	if !s.opened {
		s.v, s.close = open()
		s.opened = true
	}
	return s.v
}

// answerReads answers every waiter in ws with err. ReadIndexFunc's
// callbacks run one after another on one goroutine started here, in one
// ReadScope, so a round of N reads costs one goroutine, not N wake-ups.
func answerReads(ws []*readWaiter, err error) {
	var thens []func(*ReadScope, error)
	for _, w := range ws {
		if w.then != nil {
			thens = append(thens, w.then)
			continue
		}
		select {
		case w.done <- err:
		default:
		}
	}
	if len(thens) > 0 {
		go func() {
			var scope ReadScope
			for _, then := range thens {
				then(&scope, err)
			}
			if scope.close != nil {
				scope.close()
			}
		}()
	}
}

type readRound struct {
	ctx     []byte
	waiters []*readWaiter
	started int    // r.ticks when the current attempt was issued
	lead    uint64 // leader known when the current attempt was issued
	index   uint64
}

// readRounds is the state of the ReadIndex rounds. Owned by the loop
// goroutine.
type readRounds struct {
	seq  uint64        // context of the last attempt issued
	buf  []*readWaiter // joined, waiting for the next round
	reqs []*readRound  // rounds waiting for their ReadState, oldest first (at most maxReadRounds)
	wait []*readRound  // rounds waiting for applied >= index
}

func (r *Replica) readJoin(w *readWaiter) {
	r.noteActivity()
	r.arrive()
	if r.rn.BasicStatus().Lead == raft.None {
		answerReads([]*readWaiter{w}, &NotLeaderError{})
		return
	}
	r.reads.buf = append(r.reads.buf, w)
}

// maxReadRounds bounds the ReadIndex rounds in flight at once. Reads that
// arrive while a round is out start the next one at once instead of
// waiting for it to return, so a read waits for about one round trip to a
// quorum, not up to two; each round is one heartbeat per follower.
const maxReadRounds = 4

// maybeStartRead starts a ReadIndex round for the waiters that joined since
// the last round started, if fewer than maxReadRounds rounds are waiting
// for their ReadState.
func (r *Replica) maybeStartRead() {
	if len(r.reads.reqs) > 0 {
		// A leader change loses rounds in flight (raft resets its read-only
		// state); retry at once with the new leader instead of waiting for
		// the retry timeout.
		if lead := r.rn.BasicStatus().Lead; lead != raft.None {
			for _, rr := range r.reads.reqs {
				if lead != rr.lead {
					r.issueRead(rr)
				}
			}
		}
	}
	if len(r.reads.buf) == 0 {
		return
	}
	if now := r.now(); r.leaseHeld(now) {
		// On lease (lease.go): raft's commit index is the read index.
		rr := &readRound{waiters: r.reads.buf, index: r.rn.BasicStatus().GetCommit()}
		r.reads.buf = nil
		r.stats.leaseReads.Add(uint64(len(rr.waiters)))
		r.reads.wait = append(r.reads.wait, rr)
		r.releaseReads()
		r.renewLease(now)
		return
	}
	if len(r.reads.reqs) >= maxReadRounds {
		return
	}
	rr := &readRound{waiters: r.reads.buf}
	r.reads.buf = nil
	r.reads.reqs = append(r.reads.reqs, rr)
	r.issueRead(rr)
}

func (r *Replica) issueRead(rr *readRound) {
	r.reads.seq++
	rr.ctx = binary.BigEndian.AppendUint64(nil, r.reads.seq)
	rr.started = r.ticks
	rr.lead = r.rn.BasicStatus().Lead
	r.stats.readRounds.Add(1)
	r.rn.ReadIndex(rr.ctx)
}

// retryReads runs on every tick: a round that got no answer within an
// election timeout (lost message or leader change) is retried with a fresh
// context, or failed if no leader is known.
func (r *Replica) retryReads() {
	keep := r.reads.reqs[:0]
	for _, rr := range r.reads.reqs {
		if r.ticks-rr.started < r.cfg.ElectionTicks {
			keep = append(keep, rr)
			continue
		}
		if lead := r.rn.BasicStatus().Lead; lead == raft.None {
			answerReads(rr.waiters, &NotLeaderError{})
			continue
		}
		r.issueRead(rr)
		keep = append(keep, rr)
	}
	clear(r.reads.reqs[len(keep):])
	r.reads.reqs = keep
}

// readStatesArrived moves the rounds raft answered (a Ready's ReadStates)
// to wait for their read index to be applied.
func (r *Replica) readStatesArrived(rss []raft.ReadState) {
	for _, rs := range rss {
		i := slices.IndexFunc(r.reads.reqs, func(rr *readRound) bool { return string(rs.RequestCtx) == string(rr.ctx) })
		if i < 0 {
			continue // an answer to an attempt since retried
		}
		rr := r.reads.reqs[i]
		rr.index = rs.Index
		r.reads.wait = append(r.reads.wait, rr)
		r.reads.reqs = slices.Delete(r.reads.reqs, i, i+1)
	}
}

// releaseReads answers the rounds whose read index is applied.
func (r *Replica) releaseReads() {
	keep := r.reads.wait[:0]
	for _, rr := range r.reads.wait {
		if rr.index > r.applied {
			keep = append(keep, rr)
			continue
		}
		answerReads(rr.waiters, nil)
	}
	clear(r.reads.wait[len(keep):])
	r.reads.wait = keep
}

// failReads answers every read waiter with ErrStopped when the loop stops.
func (r *Replica) failReads() {
	var ws []*readWaiter
	ws = append(ws, r.reads.buf...)
	for _, rr := range r.reads.reqs {
		ws = append(ws, rr.waiters...)
	}
	for _, rr := range r.reads.wait {
		ws = append(ws, rr.waiters...)
	}
	answerReads(ws, ErrStopped)
	r.reads = readRounds{}
}
