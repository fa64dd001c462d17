package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

type proposal struct {
	id   uint64
	data []byte // 8-byte id + cmd
	done chan proposalResult
	// then, if set, is told the result instead of done (ProposeFunc), on
	// the loop goroutine.
	then     func(result any, index uint64, err error)
	index    uint64
	term     uint64
	answered bool // loop-owned: finish was called
	// made is when the proposal was made, landed when a Ready carried
	// its entry (zero until then; loop-owned), for Stats.
	made, landed time.Time
}

// finish answers p's proposer, once: a proposal already answered is not
// answered again. Loop goroutine only.
func (p *proposal) finish(res proposalResult) {
	if p.answered {
		return
	}
	p.answered = true
	if p.then != nil {
		p.then(res.result, res.index, res.err)
		return
	}
	p.done <- res
}

type proposalResult struct {
	result any
	index  uint64
	err    error
}

const idLen = 8

// delivery is the answer one own proposal gets at the end of a Ready.
type delivery struct {
	p   *proposal
	res proposalResult
}

// lost appends ErrProposalLost deliveries for ps to ds.
func lost(ds []delivery, ps ...*proposal) []delivery {
	for _, p := range ps {
		ds = append(ds, delivery{p, proposalResult{err: ErrProposalLost}})
	}
	return ds
}

// proposalTracker follows this node's own proposals from the Propose call
// to the entry that settles them: which own proposal an appended, applied,
// overwritten or snapshotted entry belongs to. It is pure — no raft, no
// disk, no channels: its methods return the proposals they settle and the
// loop answers them. Owned by the loop goroutine.
type proposalTracker struct {
	buf      []*proposal          // received from Propose, not yet stepped into raft
	unlanded map[uint64]*proposal // proposal id → proposal stepped but not yet seen in Ready.Entries
	landed   map[uint64]*proposal // log index → own proposal appended there
}

func newProposalTracker() proposalTracker {
	return proposalTracker{unlanded: make(map[uint64]*proposal), landed: make(map[uint64]*proposal)}
}

// stepped records that raft took ps (one MsgProp).
func (t *proposalTracker) stepped(ps []*proposal) {
	for _, p := range ps {
		t.unlanded[p.id] = p
	}
}

// land records that p's entry was appended at index, in term.
func (t *proposalTracker) land(p *proposal, index, term uint64) {
	p.index, p.term = index, term
	t.landed[index] = p
}

// appended records the log index of own proposals appearing in ents, the
// entries of one Ready written over a log whose last index was lastIndex,
// and returns, in log order, the own proposals whose index is overwritten
// or truncated.
func (t *proposalTracker) appended(ents []*pb.Entry, lastIndex uint64) (gone []*proposal) {
	if len(ents) == 0 {
		return nil
	}
	first, last := ents[0].GetIndex(), ents[len(ents)-1].GetIndex()
	var now time.Time
	if len(t.unlanded) > 0 {
		now = time.Now()
	}
	for _, e := range ents {
		idx := e.GetIndex()
		if p := t.landed[idx]; p != nil && p.term != e.GetTerm() {
			delete(t.landed, idx)
			gone = append(gone, p)
		}
		if len(t.unlanded) == 0 || e.GetType() != pb.EntryNormal || len(e.GetData()) < idLen {
			continue
		}
		id := binary.BigEndian.Uint64(e.GetData())
		if p, ok := t.unlanded[id]; ok {
			delete(t.unlanded, id)
			p.landed = now
			t.land(p, idx, e.GetTerm())
		}
	}
	if first <= lastIndex && last < lastIndex {
		// The log was truncated after last: own entries there are gone.
		var idxs []uint64
		for idx := range t.landed {
			if idx > last {
				idxs = append(idxs, idx)
			}
		}
		slices.Sort(idxs)
		for _, idx := range idxs {
			gone = append(gone, t.landed[idx])
			delete(t.landed, idx)
		}
	}
	return gone
}

// takeLanded removes and returns the own proposal that landed at index, or
// nil. The loop takes it before applying the entry at index: if Apply
// fails the replica stops, and the loop answers the proposer
// ErrOutcomeUnknown itself (the entry is committed in the group).
func (t *proposalTracker) takeLanded(index uint64) *proposal {
	p := t.landed[index]
	delete(t.landed, index)
	return p
}

// committed says which own proposal the applied entry e settles: p is the
// proposal (or nil) and ours whether e is p's entry (deliver the result)
// rather than another entry at p's index (p is lost). landed is what
// takeLanded returned for e's index; a normal entry that raft committed
// without showing it in a Ready's Entries is matched by its id.
func (t *proposalTracker) committed(e *pb.Entry, landed *proposal) (p *proposal, ours bool) {
	p = landed
	switch e.GetType() {
	case pb.EntryNormal:
		data := e.GetData()
		if len(data) < idLen {
			return p, false // a new leader's empty entry, or malformed
		}
		id := binary.BigEndian.Uint64(data)
		if p == nil {
			// Raft did not show us where it landed; match by id.
			if q, ok := t.unlanded[id]; ok {
				delete(t.unlanded, id)
				p = q
			}
		}
		return p, p != nil && p.id == id
	case pb.EntryConfChange:
		return p, p != nil && confChangeID(e.GetData()) == p.id
	}
	return p, false
}

// settle appends to ds what the applied entry e settles: the result res
// for its own proposal, ErrProposalLost for an own proposal whose index e
// took, nothing for another node's entry. landed is as for committed.
func (t *proposalTracker) settle(ds []delivery, e *pb.Entry, landed *proposal, res any) []delivery {
	p, ours := t.committed(e, landed)
	switch {
	case ours:
		return append(ds, delivery{p, proposalResult{result: res, index: e.GetIndex()}})
	case p != nil:
		return lost(ds, p)
	}
	return ds
}

// snapshotted removes and returns, in log order, the own proposals landed
// at or below index, which a snapshot replaced: the snapshot may or may not
// hold their entries, so their outcome is unknown here.
func (t *proposalTracker) snapshotted(index uint64) []*proposal {
	var idxs []uint64
	for idx := range t.landed {
		if idx <= index {
			idxs = append(idxs, idx)
		}
	}
	slices.Sort(idxs)
	ps := make([]*proposal, len(idxs))
	for i, idx := range idxs {
		ps[i] = t.landed[idx]
		delete(t.landed, idx)
	}
	return ps
}

// drop empties the tracker when the loop stops, returning the proposals
// raft never took (not applied) and those it took (outcome unknown).
func (t *proposalTracker) drop() (notStepped, stepped []*proposal) {
	notStepped = t.buf
	for _, p := range t.unlanded {
		stepped = append(stepped, p)
	}
	for _, p := range t.landed {
		stepped = append(stepped, p)
	}
	t.buf, t.unlanded, t.landed = nil, nil, nil
	return notStepped, stepped
}

// flushProposals steps all buffered proposals as one MsgProp.
func (r *Replica) flushProposals() {
	if len(r.props.buf) == 0 {
		return
	}
	props := r.props.buf
	r.props.buf = r.props.buf[:0]
	fail := func(err error) {
		for _, p := range props {
			p.finish(proposalResult{err: err})
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
	r.props.stepped(props)
}

// failProposals answers every own proposal when the loop stops: those not
// yet stepped into raft with ErrStopped (not applied), those raft has
// taken with ErrOutcomeUnknown.
func (r *Replica) failProposals() {
	fail := func(p *proposal, err error) { p.finish(proposalResult{err: err}) }
	notStepped, stepped := r.props.drop()
	for _, p := range notStepped {
		fail(p, ErrStopped)
	}
	for _, p := range stepped {
		fail(p, ErrOutcomeUnknown)
	}
}
