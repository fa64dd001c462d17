package replica

import (
	"errors"
	"fmt"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Bounds on the numbers a peer's frame may carry. raft adds one to a term
// when it campaigns and to an index when it appends, unchecked: a term of
// 2^64−1 wraps to 0 and raft panics, on every node it reaches, and again
// after every restart once the term is persisted. A term grows by one per
// election round; at ten rounds a second, far faster than election
// timeouts allow, MaxTerm takes 890 years to reach. An index grows by one
// per log entry; at a million entries a second MaxIndex takes 36,000
// years. Anything beyond them is forged or corrupt, and the room left
// above them means raft's arithmetic on accepted values never overflows.
const (
	MaxTerm  uint64 = 1 << 48
	MaxIndex uint64 = 1 << 60
)

// errInvalidFrame is the class of every frame validateMessage refuses;
// errCommitBeyondLog the one of a heartbeat committing beyond the local
// log (counted apart, as Stats.BadCommit).
var (
	errInvalidFrame    = errors.New("invalid raft frame")
	errCommitBeyondLog = errors.New("heartbeat commits beyond the local log")
)

// peerView is what a replica knows when it checks a peer's frame.
type peerView struct {
	self      uint64          // this replica's raft id
	term      uint64          // its term, as last persisted
	lastIndex uint64          // the last index of its log, counting the entries being written
	members   map[uint64]bool // voters and learners; empty until a joiner has a membership
}

// leaderTypes are what a leader sends its followers. A follower accepts
// them from a sender outside its membership at its own term, and only
// then: a member that was away while a node joined has not applied the
// change that added it, and must still follow it if it now leads. Such a
// member learns the current term from a member (a rejected pre-vote
// answer carries it), after which the new leader's frames are accepted.
// A frame from a non-member at a higher term is dropped, so a stranger can
// never raise a term or depose a leader; votes and responses from
// non-members are always dropped, since they could only elect or count a
// stranger. (What a stranger could forge at the current term it could
// forge under a member's id: the peer plane's mutual TLS stops both.)
var leaderTypes = map[pb.MessageType]bool{pb.MsgApp: true, pb.MsgHeartbeat: true, pb.MsgSnap: true}

// peerTypes are the message types a peer of this repository's raft
// configuration sends. Proposals are never forwarded
// (DisableProposalForwarding) and leadership is never transferred, so
// MsgProp, MsgTransferLeader and MsgTimeoutNow come only from a forger;
// the rest of raft's types are local to a node. MsgSnap is accepted only
// with its data, from a snapshot stream (snapshot says which).
var peerTypes = map[pb.MessageType]bool{
	pb.MsgApp: true, pb.MsgAppResp: true,
	pb.MsgVote: true, pb.MsgVoteResp: true,
	pb.MsgPreVote: true, pb.MsgPreVoteResp: true,
	pb.MsgHeartbeat: true, pb.MsgHeartbeatResp: true,
	pb.MsgReadIndex: true, pb.MsgReadIndexResp: true,
	pb.MsgSnap: true,
}

// validateMessage reports why m, received from a peer, must not reach
// raft, or nil. snapshot says m came with its data from a snapshot stream;
// a MsgSnap is valid only then. It is a pure function of its arguments: a
// message it accepts has a type peers send, is addressed to v.self from
// another member (once v.members is known; leaderTypes from anyone at
// the current term), carries terms and indexes
// within MaxTerm and MaxIndex, and entries that continue the log position
// the message names. Every error wraps errInvalidFrame or
// errCommitBeyondLog.
func validateMessage(m *pb.Message, v peerView, snapshot bool) error {
	if m == nil {
		return fmt.Errorf("%w: no message", errInvalidFrame)
	}
	t := m.GetType()
	switch {
	case !peerTypes[t]:
		return fmt.Errorf("%w: %v is not a type peers send", errInvalidFrame, t)
	case (t == pb.MsgSnap) != snapshot:
		return fmt.Errorf("%w: %v outside a snapshot stream, or a snapshot stream without MsgSnap", errInvalidFrame, t)
	case m.GetTo() != v.self:
		return fmt.Errorf("%w: %v to %d arrived at %d", errInvalidFrame, t, m.GetTo(), v.self)
	case m.GetFrom() == 0 || m.GetFrom() == v.self:
		return fmt.Errorf("%w: %v from id %d", errInvalidFrame, t, m.GetFrom())
	case len(v.members) > 0 && !v.members[m.GetFrom()] && !(leaderTypes[t] && m.GetTerm() == v.term):
		return fmt.Errorf("%w: %v from %d, not a member of the group", errInvalidFrame, t, m.GetFrom())
	case m.GetTerm() == 0 && t != pb.MsgReadIndex:
		// raft takes a term of 0 for a local message and skips its term checks.
		return fmt.Errorf("%w: %v without a term", errInvalidFrame, t)
	case len(m.GetResponses()) > 0:
		return fmt.Errorf("%w: %v carries local responses", errInvalidFrame, t)
	case m.GetSnapshot() != nil && t != pb.MsgSnap:
		return fmt.Errorf("%w: %v carries a snapshot", errInvalidFrame, t)
	}
	if err := checkBounds(m); err != nil {
		return err
	}
	switch t {
	case pb.MsgApp:
		return checkEntries(m)
	case pb.MsgReadIndex, pb.MsgReadIndexResp:
		return checkReadContext(m)
	case pb.MsgSnap:
		return checkSnapshot(m)
	case pb.MsgVote, pb.MsgPreVote:
		if string(m.GetContext()) == "CampaignTransfer" {
			return fmt.Errorf("%w: %v forces a leadership transfer", errInvalidFrame, t)
		}
	case pb.MsgHeartbeat:
		if m.GetCommit() > v.lastIndex {
			return fmt.Errorf("%w: commit %d, last index %d", errCommitBeyondLog, m.GetCommit(), v.lastIndex)
		}
	case pb.MsgAppResp:
		// A follower acknowledges only what the leader sent it; a larger
		// index would count toward a quorum entries it does not have.
		if !m.GetReject() && m.GetIndex() > v.lastIndex {
			return fmt.Errorf("%w: MsgAppResp acknowledges index %d beyond the last index %d", errInvalidFrame, m.GetIndex(), v.lastIndex)
		}
	}
	if len(m.GetEntries()) > 0 {
		return fmt.Errorf("%w: %v carries %d entries", errInvalidFrame, t, len(m.GetEntries()))
	}
	return nil
}

// checkBounds checks every term and index field of m against MaxTerm and
// MaxIndex.
func checkBounds(m *pb.Message) error {
	t := m.GetType()
	switch {
	case m.GetTerm() > MaxTerm:
		return fmt.Errorf("%w: %v term %d above %d", errInvalidFrame, t, m.GetTerm(), MaxTerm)
	case m.GetLogTerm() > m.GetTerm():
		return fmt.Errorf("%w: %v log term %d above its term %d", errInvalidFrame, t, m.GetLogTerm(), m.GetTerm())
	case m.GetLogTerm() > MaxTerm:
		return fmt.Errorf("%w: %v log term %d above %d", errInvalidFrame, t, m.GetLogTerm(), MaxTerm)
	case m.GetIndex() > MaxIndex, m.GetCommit() > MaxIndex, m.GetRejectHint() > MaxIndex:
		return fmt.Errorf("%w: %v index %d, commit %d or hint %d above %d", errInvalidFrame, t, m.GetIndex(), m.GetCommit(), m.GetRejectHint(), MaxIndex)
	}
	return nil
}

// checkEntries checks that a MsgApp's entries follow the position
// (Index, LogTerm) it names: consecutive indexes, terms that never fall
// and never pass the message's term, known entry types.
func checkEntries(m *pb.Message) error {
	prev := m.GetLogTerm()
	for i, e := range m.GetEntries() {
		want := m.GetIndex() + 1 + uint64(i)
		switch {
		case e.GetIndex() != want:
			return fmt.Errorf("%w: MsgApp entry %d has index %d, want %d", errInvalidFrame, i, e.GetIndex(), want)
		case e.GetTerm() < prev || e.GetTerm() > m.GetTerm():
			return fmt.Errorf("%w: MsgApp entry %d has term %d outside [%d, %d]", errInvalidFrame, i, e.GetTerm(), prev, m.GetTerm())
		case e.GetType() != pb.EntryNormal && e.GetType() != pb.EntryConfChange && e.GetType() != pb.EntryConfChangeV2:
			return fmt.Errorf("%w: MsgApp entry %d has type %v", errInvalidFrame, i, e.GetType())
		}
		prev = e.GetTerm()
	}
	return nil
}

// checkReadContext checks a ReadIndex request or answer: at most the one
// entry raft uses to carry the request's context, with no position.
func checkReadContext(m *pb.Message) error {
	es := m.GetEntries()
	if len(es) > 1 || len(es) == 1 && (es[0].GetIndex() != 0 || es[0].GetTerm() != 0 || es[0].GetType() != pb.EntryNormal) {
		return fmt.Errorf("%w: %v with %d entries that are not a read context", errInvalidFrame, m.GetType(), len(es))
	}
	return nil
}

// checkSnapshot checks a MsgSnap's metadata: a position within the bounds
// and no later than the message's term, and a configuration.
func checkSnapshot(m *pb.Message) error {
	md := m.GetSnapshot().GetMetadata()
	switch {
	case len(m.GetEntries()) > 0:
		return fmt.Errorf("%w: MsgSnap carries entries", errInvalidFrame)
	case md.GetIndex() == 0 || md.GetIndex() > MaxIndex:
		return fmt.Errorf("%w: snapshot index %d outside [1, %d]", errInvalidFrame, md.GetIndex(), MaxIndex)
	case md.GetTerm() == 0 || md.GetTerm() > m.GetTerm():
		return fmt.Errorf("%w: snapshot term %d outside [1, %d]", errInvalidFrame, md.GetTerm(), m.GetTerm())
	case md.GetConfState() == nil:
		return fmt.Errorf("%w: snapshot without a configuration", errInvalidFrame)
	}
	return nil
}

// dropLogEvery is the least time between two log lines about dropped
// frames; the ones in between are counted in the next line.
const dropLogEvery = time.Second

// dropLog rate-limits the log of dropped frames. Loop goroutine.
type dropLog struct {
	last       time.Time
	suppressed int
}

// dropped counts and logs (rate-limited) a frame validateMessage refused.
// Loop goroutine.
func (r *Replica) dropped(m *pb.Message, err error) {
	if errors.Is(err, errCommitBeyondLog) {
		r.stats.badCommit.Add(1)
	} else {
		r.stats.invalid.Add(1)
	}
	now := time.Now()
	if now.Sub(r.drops.last) < dropLogEvery {
		r.drops.suppressed++
		return
	}
	r.log.Warn("dropping raft frame", "from", m.GetFrom(), "type", m.GetType(), "err", err, "suppressed", r.drops.suppressed)
	r.drops.last, r.drops.suppressed = now, 0
}
