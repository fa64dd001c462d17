package replica

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"
)

// Membership changes are raft ConfChange (v1) entries, one at a time. The
// context of an add carries the member's address, which applying the entry
// records under p+"member/" (storage.go) in the same batch as the new
// ConfState, so addresses are replicated, survive restarts and travel in
// snapshots.

// Member is one member of the group.
type Member struct {
	ID    uint64
	Addr  string // "" if never recorded
	Voter bool   // false: learner
	// Match is the highest log index known to be replicated on the member;
	// set only in the leader's Status.
	Match uint64
	// Acked is true if this replica ever saw the member act on durable
	// raft state (lead, vote, answer a leader): its lost disk would lose
	// something a quorum counted on (acked.go).
	Acked bool
}

type confReq struct {
	cc    *pb.ConfChange
	check func() error // run on the loop before proposing; nil error to go on, errNoop to succeed at once
	p     *proposal
}

var errNoop = errors.New("no change needed")

// AddLearner adds id (reachable at addr) as a non-voting learner and waits
// until the change is applied on this node, the leader. The learner then
// catches up from the log or, with an empty disk, by snapshot. Adding a
// member that is already a learner at addr is a no-op.
func (r *Replica) AddLearner(ctx context.Context, id uint64, addr string) error {
	if id == 0 || addr == "" {
		return errors.New("replica: add learner: id and address are required")
	}
	cc := &pb.ConfChange{Type: pb.ConfChangeAddLearnerNode.Enum(), NodeId: new(id), Context: []byte(addr)}
	return r.changeConf(ctx, cc, func() error {
		cs := r.store.cs
		switch {
		case slices.Contains(cs.GetLearners(), id) && r.addrs[id] == addr:
			return errNoop
		case slices.Contains(cs.GetVoters(), id):
			return fmt.Errorf("replica: add learner: %d is already a voter", id)
		}
		return nil
	})
}

// Promote makes learner id a voter once it is caught up: its match index
// nonzero, not below the leader's log start, and within
// Config.PromoteMaxLag of the leader's last index. It polls until
// then or until ctx ends (returning ErrLearnerBehind wrapped with ctx's
// error). Promoting a voter is a no-op.
func (r *Replica) Promote(ctx context.Context, id uint64) error {
	cc := &pb.ConfChange{Type: pb.ConfChangeAddNode.Enum(), NodeId: new(id)}
	check := func() error {
		cs := r.store.cs
		if slices.Contains(cs.GetVoters(), id) {
			return errNoop
		}
		if !slices.Contains(cs.GetLearners(), id) {
			return fmt.Errorf("%w: %d is not a learner", ErrUnknownMember, id)
		}
		pr, ok := r.rn.Status().Progress[id]
		if !ok || pr.Match == 0 || pr.Match < r.store.truncIndex {
			return fmt.Errorf("%w: it has not replicated anything yet", ErrLearnerBehind)
		}
		if last := r.store.lastIndex; pr.Match+r.cfg.PromoteMaxLag < last {
			return fmt.Errorf("%w: match %d, leader's last index %d", ErrLearnerBehind, pr.Match, last)
		}
		return nil
	}
	poll := time.NewTicker(r.cfg.TickInterval)
	defer poll.Stop()
	var last error
	for {
		err := r.changeConf(ctx, cc, check)
		switch {
		case errors.Is(err, ErrLearnerBehind), errors.Is(err, ErrConfChangeInProgress):
			last = err
		case err != nil && err == ctx.Err() && last != nil:
			return fmt.Errorf("promote %d: %w (%w)", id, err, last)
		default:
			return err
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			return fmt.Errorf("promote %d: %w (%w)", id, ctx.Err(), last)
		}
	}
}

// RemoveMember removes id, voter or learner, from the group. Removing a
// non-member is a no-op; removing the last voter is refused. The leader may
// remove itself: it steps down once the change is applied.
func (r *Replica) RemoveMember(ctx context.Context, id uint64) error {
	cc := &pb.ConfChange{Type: pb.ConfChangeRemoveNode.Enum(), NodeId: new(id)}
	return r.changeConf(ctx, cc, func() error {
		cs := r.store.cs
		voter := slices.Contains(cs.GetVoters(), id)
		if !voter && !slices.Contains(cs.GetLearners(), id) {
			return errNoop
		}
		if voter && len(cs.GetVoters()) == 1 {
			return fmt.Errorf("replica: remove %d: it is the last voter", id)
		}
		return nil
	})
}

// Members returns the group's members as this node knows them (from its
// applied ConfState), sorted by id; on the leader with match indexes.
func (r *Replica) Members() []Member { return slices.Clone(r.status.Load().Members) }

// MemberAddr returns the recorded address of member id, or "".
func (r *Replica) MemberAddr(id uint64) string {
	for _, m := range r.status.Load().Members {
		if m.ID == id {
			return m.Addr
		}
	}
	return ""
}

// changeConf hands a conf change to the loop and waits until it is applied
// here. Errors as Propose, plus ErrConfChangeInProgress (nothing changed;
// retry) and those of check.
func (r *Replica) changeConf(ctx context.Context, cc *pb.ConfChange, check func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := &proposal{id: r.idBase + r.idNext.Add(1), done: make(chan proposalResult, 1)}
	cc.Id = new(p.id)
	req := &confReq{cc: cc, check: check, p: p}
	if err := enqueue(ctx, r, r.confc, req); err != nil {
		return err
	}
	select {
	case res := <-p.done:
		return res.err
	case <-ctx.Done():
		return ctx.Err()
	case <-r.donec:
		select {
		case res := <-p.done:
			return res.err
		default:
			return ErrStopped
		}
	}
}

// proposeConf runs on the loop: it checks and steps one conf change.
func (r *Replica) proposeConf(req *confReq) {
	p := req.p
	fail := func(err error) { p.finish(proposalResult{err: err}) }
	if st := r.rn.BasicStatus(); st.RaftState != raft.StateLeader {
		fail(&NotLeaderError{Leader: st.Lead})
		return
	}
	if r.confStepped != nil || r.lastConfIndex > r.applied {
		fail(ErrConfChangeInProgress)
		return
	}
	if err := req.check(); err != nil {
		if errors.Is(err, errNoop) {
			err = nil
		}
		fail(err)
		return
	}
	if err := r.rn.ProposeConfChange(req.cc); err != nil {
		if errors.Is(err, raft.ErrProposalDropped) {
			fail(ErrProposalDropped)
		} else {
			fail(fmt.Errorf("replica: propose conf change: %w", err))
		}
		return
	}
	r.confStepped = p
	r.log.Info("proposed membership change", "type", req.cc.GetType().String(), "node", req.cc.GetNodeId(), "addr", string(req.cc.GetContext()))
}

// trackConf notes conf-change entries appended in a Ready; the one just
// stepped must be among them, else raft replaced it with an empty entry
// (a change was still pending).
func (r *Replica) trackConf(ents []*pb.Entry) {
	if len(ents) > 0 && ents[0].GetIndex() <= r.lastConfIndex {
		// The log from ents[0] on is replaced: a conf change there is gone.
		// Everything below may still hold one, so stay conservative.
		r.lastConfIndex = ents[0].GetIndex() - 1
	}
	for _, e := range ents {
		if e.GetType() != pb.EntryConfChange && e.GetType() != pb.EntryConfChangeV2 {
			continue
		}
		r.lastConfIndex = max(r.lastConfIndex, e.GetIndex())
		if p := r.confStepped; p != nil && e.GetType() == pb.EntryConfChange {
			cc := &pb.ConfChange{}
			if proto.Unmarshal(e.GetData(), cc) == nil && cc.GetId() == p.id {
				r.props.land(p, e.GetIndex(), e.GetTerm())
				r.confStepped = nil
			}
		}
	}
	if p := r.confStepped; p != nil && len(ents) > 0 {
		r.confStepped = nil
		p.finish(proposalResult{err: ErrConfChangeInProgress})
	}
}

func (r *Replica) setMembers(cs *pb.ConfState) {
	m := make(map[uint64]bool)
	for _, ids := range [][]uint64{cs.GetVoters(), cs.GetVotersOutgoing(), cs.GetLearners(), cs.GetLearnersNext()} {
		for _, id := range ids {
			m[id] = true
		}
	}
	r.members = m
	r.learner = slices.Contains(cs.GetLearners(), r.cfg.ID) || slices.Contains(cs.GetLearnersNext(), r.cfg.ID)
	r.membersDirty = true
}

// recordMemberAddr writes the address a conf change carries (or deletes
// a removed member's) into b.
func (r *Replica) recordMemberAddr(b *pebble.Batch, cc *pb.ConfChange) error {
	id := cc.GetNodeId()
	switch cc.GetType() {
	case pb.ConfChangeAddNode, pb.ConfChangeAddLearnerNode:
		if len(cc.GetContext()) == 0 {
			return nil
		}
		r.addrs[id] = string(cc.GetContext())
		return b.Set(r.store.memberKey(id), cc.GetContext(), nil)
	case pb.ConfChangeRemoveNode:
		delete(r.addrs, id)
		return b.Delete(r.store.memberKey(id), nil)
	}
	return nil
}

// memberList builds the published member list. Loop goroutine.
func (r *Replica) memberList(leader bool) []Member {
	cs := r.store.cs
	var prs map[uint64]uint64
	if leader {
		prs = map[uint64]uint64{}
		r.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
			prs[id] = pr.Match
		})
	}
	var out []Member
	add := func(ids []uint64, voter bool) {
		for _, id := range ids {
			if slices.ContainsFunc(out, func(m Member) bool { return m.ID == id }) {
				continue
			}
			out = append(out, Member{ID: id, Addr: r.addrs[id], Voter: voter, Match: prs[id], Acked: id != r.cfg.ID && (r.acked[id] || prs[id] > 0)})
		}
	}
	add(cs.GetVoters(), true)
	add(cs.GetVotersOutgoing(), true)
	add(cs.GetLearners(), false)
	add(cs.GetLearnersNext(), false)
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// confChangeID returns the proposal id a v1 conf change carries, or 0.
func confChangeID(data []byte) uint64 {
	cc := &pb.ConfChange{}
	if proto.Unmarshal(data, cc) != nil {
		return 0
	}
	return cc.GetId()
}
