package replica

import (
	"encoding/binary"

	"go.etcd.io/raft/v3"
)

type readWaiter struct{ done chan error }

type readRound struct {
	ctx     []byte
	waiters []*readWaiter
	started int    // r.ticks when the current attempt was issued
	lead    uint64 // leader known when the current attempt was issued
	index   uint64
}

func (r *Replica) readJoin(w *readWaiter) {
	if r.rn.BasicStatus().Lead == raft.None {
		w.done <- &NotLeaderError{}
		return
	}
	r.readBuf = append(r.readBuf, w)
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
	if len(r.readReqs) > 0 {
		// A leader change loses rounds in flight (raft resets its read-only
		// state); retry at once with the new leader instead of waiting for
		// the retry timeout.
		if lead := r.rn.BasicStatus().Lead; lead != raft.None {
			for _, rr := range r.readReqs {
				if lead != rr.lead {
					r.issueRead(rr)
				}
			}
		}
	}
	if len(r.readBuf) == 0 || len(r.readReqs) >= maxReadRounds {
		return
	}
	rr := &readRound{waiters: r.readBuf}
	r.readBuf = nil
	r.readReqs = append(r.readReqs, rr)
	r.issueRead(rr)
}

func (r *Replica) issueRead(rr *readRound) {
	r.readSeq++
	rr.ctx = binary.BigEndian.AppendUint64(nil, r.readSeq)
	rr.started = r.ticks
	rr.lead = r.rn.BasicStatus().Lead
	r.stats.readRounds.Add(1)
	r.rn.ReadIndex(rr.ctx)
}

// releaseReads answers the rounds whose read index is applied.
func (r *Replica) releaseReads() {
	keep := r.readWait[:0]
	for _, rr := range r.readWait {
		if rr.index > r.applied {
			keep = append(keep, rr)
			continue
		}
		for _, w := range rr.waiters {
			w.done <- nil
		}
	}
	clear(r.readWait[len(keep):])
	r.readWait = keep
}
