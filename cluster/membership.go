package cluster

// Membership of a node's cluster: add a node as a learner,
// promote it to voter once caught up, remove a node. Replacing a dead node
// (`cleave node replace`) is: start the new node with an empty DataDir and
// Config.Join (a new, never used raft id), AddLearner(new id, its addresses)
// on the leader, Promote(new id), then RemoveMember(dead id). Every step is
// idempotent, so a caller that lost an answer retries the same step.
//
// The methods work on the leader only (elsewhere they fail with
// replica.ErrNotLeader, and the wire ops answer NOT_LEADER with the leader's
// address). Member addresses are part of the replicated state; peers learn
// them from it (replica's WireTransport). A member's record there is its
// client and peer address in wire.JoinAddrs's form.

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/cleavefs/cleave/replica"
	"github.com/cleavefs/cleave/wire"
)

// AddLearner adds node id, serving clients at addr and peers at peerAddr
// ("" means addr), to the cluster as a non-voting learner, and returns
// once the change is applied on this node (the leader). The learner
// catches up from the log or by snapshot.
func (n *Node) AddLearner(ctx context.Context, id uint64, addr, peerAddr string) error {
	if id == 0 {
		return errors.New("cluster: add learner: node id must be nonzero")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("cluster: add learner %d: address %q: %w", id, addr, err)
	}
	if peerAddr != "" {
		if _, _, err := net.SplitHostPort(peerAddr); err != nil {
			return fmt.Errorf("cluster: add learner %d: peer address %q: %w", id, peerAddr, err)
		}
	}
	return n.rep.AddLearner(ctx, id, wire.JoinAddrs(addr, peerAddr))
}

// Promote makes learner id a voter once it is caught up, waiting for that
// until ctx ends.
func (n *Node) Promote(ctx context.Context, id uint64) error { return n.rep.Promote(ctx, id) }

// RemoveMember removes node id (voter or learner) from the cluster.
func (n *Node) RemoveMember(ctx context.Context, id uint64) error {
	return n.rep.RemoveMember(ctx, id)
}

// Members lists the cluster's members as this node knows them.
func (n *Node) Members() []wire.MemberStatus { return memberStatus(n.rep.Members()) }

func memberStatus(ms []replica.Member) []wire.MemberStatus {
	out := make([]wire.MemberStatus, len(ms))
	for i, m := range ms {
		addr, peer := wire.SplitAddrs(m.Addr)
		out[i] = wire.MemberStatus{ID: m.ID, Addr: addr, PeerAddr: peer, Voter: m.Voter, Match: m.Match, Acked: m.Acked}
	}
	return out
}

// addrOf returns the client address of node id (what NOT_LEADER names):
// from replicated state, else from the configuration.
func (n *Node) addrOf(id uint64) string {
	addr, _ := wire.SplitAddrs(n.memberRecord(id))
	return addr
}

// peerAddrOf returns the peer address of node id.
func (n *Node) peerAddrOf(id uint64) string {
	_, peer := wire.SplitAddrs(n.memberRecord(id))
	return peer
}

// memberRecord returns node id's addresses in wire.JoinAddrs's form:
// from replicated state, else from the configuration; "" if unknown.
func (n *Node) memberRecord(id uint64) string {
	if id == 0 {
		return ""
	}
	if a := n.rep.MemberAddr(id); a != "" {
		return a
	}
	return n.configRecord(id)
}

// configRecord is node id's addresses as the configuration gives them.
func (n *Node) configRecord(id uint64) string {
	peer, ok := n.cfg.Peers[id]
	if !ok {
		return ""
	}
	return wire.JoinAddrs(n.cfg.Clients[id], peer)
}

// memberRecords returns every configured member's addresses in
// wire.JoinAddrs's form: what the replica records at bootstrap and what
// its transport dials (the peer part) before replicated state says more.
func (n *Node) memberRecords() map[uint64]string {
	out := make(map[uint64]string, len(n.cfg.Peers))
	for id := range n.cfg.Peers {
		out[id] = n.configRecord(id)
	}
	return out
}

// changeMembership serves ADD_LEARNER, PROMOTE and REMOVE_MEMBER. The
// answer carries this node's status (with the member list) on success.
func (n *Node) changeMembership(ctx context.Context, req *wire.Request) *wire.Response {
	m := req.Member
	if m == nil || m.ID == 0 {
		return &wire.Response{Code: wire.Invalid, Message: req.Op.String() + " needs member.id"}
	}
	if l := n.rep.Leader(); l != n.cfg.NodeID {
		return n.notLeader(l)
	}
	var err error
	switch req.Op {
	case wire.OpAddLearner:
		err = n.AddLearner(ctx, m.ID, m.Addr, m.PeerAddr)
	case wire.OpPromote:
		err = n.Promote(ctx, m.ID)
	case wire.OpRemoveMember:
		err = n.RemoveMember(ctx, m.ID)
	}
	if err != nil {
		switch {
		case errors.Is(err, replica.ErrConfChangeInProgress):
			return &wire.Response{Code: wire.Unavailable, Message: err.Error() + "; retry"}
		case errors.Is(err, replica.ErrLearnerBehind):
			return &wire.Response{Code: wire.Timeout, Message: err.Error()}
		case errors.Is(err, replica.ErrProposalDropped):
			return &wire.Response{Code: wire.Unavailable, Message: err.Error() + "; retry"}
		case errors.Is(err, replica.ErrUnknownMember):
			return &wire.Response{Code: wire.NotFound, Message: err.Error()}
		}
		var nl *replica.NotLeaderError
		if errors.As(err, &nl) || errors.Is(err, replica.ErrStopped) || errors.Is(err, replica.ErrOutcomeUnknown) || errors.Is(err, replica.ErrProposalLost) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return n.replicaError(err)
		}
		return &wire.Response{Code: wire.Invalid, Message: err.Error()}
	}
	n.log.Info("membership changed", "op", req.Op.String(), "member", m.ID, "addr", m.Addr, "peer_addr", m.PeerAddr)
	st := n.Status()
	return &wire.Response{Node: &st}
}
