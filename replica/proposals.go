package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

type proposal struct {
	id    uint64
	data  []byte // 8-byte id + cmd
	done  chan proposalResult
	index uint64
	term  uint64
}

type proposalResult struct {
	result any
	index  uint64
	err    error
}

const idLen = 8

// flushProposals steps all buffered proposals as one MsgProp.
func (r *Replica) flushProposals() {
	if len(r.propBuf) == 0 {
		return
	}
	props := r.propBuf
	r.propBuf = r.propBuf[:0]
	fail := func(err error) {
		for _, p := range props {
			p.done <- proposalResult{err: err}
		}
	}
	if st := r.rn.BasicStatus(); st.RaftState != raft.StateLeader {
		fail(&NotLeaderError{Leader: st.Lead})
		return
	}
	ents := make([]*pb.Entry, len(props))
	for i, p := range props {
		ents[i] = &pb.Entry{Data: p.data}
	}
	err := r.rn.Step(&pb.Message{Type: pb.MsgProp.Enum(), From: new(r.cfg.ID), Entries: ents})
	if err != nil {
		if st := r.rn.BasicStatus(); st.RaftState != raft.StateLeader {
			fail(&NotLeaderError{Leader: st.Lead})
		} else if errors.Is(err, raft.ErrProposalDropped) {
			fail(ErrProposalDropped)
		} else {
			fail(fmt.Errorf("replica: propose: %w", err))
		}
		return
	}
	for _, p := range props {
		r.unlanded[p.id] = p
	}
}

// trackLanded records the log index of own proposals appearing in ents and
// reports as lost own proposals whose index is overwritten or truncated.
func (r *Replica) trackLanded(ents []*pb.Entry, lose func(*proposal)) {
	if len(ents) == 0 {
		return
	}
	first, last := ents[0].GetIndex(), ents[len(ents)-1].GetIndex()
	for _, e := range ents {
		idx := e.GetIndex()
		if p := r.landed[idx]; p != nil && p.term != e.GetTerm() {
			delete(r.landed, idx)
			lose(p)
		}
		if len(r.unlanded) == 0 || e.GetType() != pb.EntryNormal || len(e.GetData()) < idLen {
			continue
		}
		id := binary.BigEndian.Uint64(e.GetData())
		if p, ok := r.unlanded[id]; ok {
			delete(r.unlanded, id)
			p.index, p.term = idx, e.GetTerm()
			r.landed[idx] = p
		}
	}
	if first <= r.store.lastIndex && last < r.store.lastIndex {
		// The log was truncated after last: own entries there are gone.
		var gone []uint64
		for idx := range r.landed {
			if idx > last {
				gone = append(gone, idx)
			}
		}
		slices.Sort(gone)
		for _, idx := range gone {
			lose(r.landed[idx])
			delete(r.landed, idx)
		}
	}
}

// failAll answers every waiter when the loop stops: proposals not yet
// stepped into raft with ErrStopped (not applied), those raft has taken
// with ErrOutcomeUnknown, reads with ErrStopped.
func (r *Replica) failAll() {
	fail := func(p *proposal, err error) {
		select {
		case p.done <- proposalResult{err: err}:
		default:
		}
	}
	for _, p := range r.propBuf {
		fail(p, ErrStopped)
	}
	for _, p := range r.unlanded {
		fail(p, ErrOutcomeUnknown)
	}
	for _, p := range r.landed {
		fail(p, ErrOutcomeUnknown)
	}
	r.propBuf, r.unlanded, r.landed = nil, nil, nil
	var ws []*readWaiter
	ws = append(ws, r.readBuf...)
	for _, rr := range r.readReqs {
		ws = append(ws, rr.waiters...)
	}
	for _, rr := range r.readWait {
		ws = append(ws, rr.waiters...)
	}
	for _, w := range ws {
		select {
		case w.done <- ErrStopped:
		default:
		}
	}
	r.readBuf, r.readReqs, r.readWait = nil, nil, nil
}
