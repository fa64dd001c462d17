package replica

import (
	pb "go.etcd.io/raft/v3/raftpb"
)

// A leader's append without entries (a notice) mostly only tells a
// follower that the commit index moved: raft sends one to every follower
// each time it does. With one client that is every write, and the
// follower answers each: half of the group's messages and of a
// follower's Readies carried nothing but a commit index, which the next
// append carries anyway.
//
// So a leader holds a Ready's notice back instead of sending it (at most
// one per peer, the latest), until one of these comes first:
//
//   - a later Ready has an append to that peer in the same term: the
//     notice is dropped, since that append supersedes it exactly as within
//     one Ready (dropSuperseded);
//   - a later Ready has any other message to that peer: the notice goes
//     first, before it, so the peer sees them in raft's order (given a
//     read index, or a heartbeat with a read context, the follower then
//     already knows the commit it will wait to apply);
//   - a tick came since: the next Ready sends every held notice. A
//     leader's Ready comes with each heartbeat (every tick by default),
//     so a follower learns a commit at most a heartbeat interval late
//     even if nothing else comes.
//
// Holding delays a message; dropping loses one: raft tolerates both, and
// it already counted the notice sent. A node that stops leading drops the
// notices it holds (their term is over). docs/robustness.md, "A notice
// may wait for the next message".
type heldNotices struct {
	msgs []*pb.Message // in the order held; at most one per peer
	due  bool          // a tick came: the next Ready sends them all
}

// holdNotices returns what a Ready sends now out of msgs (its messages,
// superseded ones already left out): the held notices first where due
// (see heldNotices), then msgs without the notices this Ready holds back.
// It counts the held notices it drops as superseded. Unless hold (a
// leader, without Config.SendNotices) it holds nothing and drops what it
// held. Loop goroutine.
func (r *Replica) holdNotices(hold bool, msgs []*pb.Message) []*pb.Message {
	h := &r.held
	if !hold {
		clear(h.msgs)
		h.msgs, h.due = h.msgs[:0], false
		return msgs
	}
	var out []*pb.Message // allocated only when something is held or released
	touched := false
	if len(h.msgs) > 0 {
		kept := h.msgs[:0]
		for _, n := range h.msgs {
			switch {
			case hasAppend(msgs, n.GetTo(), n.GetTerm()):
				r.stats.superseded.Add(1)
				touched = true
			case h.due || sendsTo(msgs, n.GetTo()):
				out = append(out, n)
				touched = true
			default:
				kept = append(kept, n)
			}
		}
		clear(h.msgs[len(kept):])
		h.msgs = kept
		h.due = false
	}
	next := 0 // msgs[next:] are not in out yet
	for i, m := range msgs {
		if isNotice(m) && !hasAppend(msgs[i+1:], m.GetTo(), m.GetTerm()) && !sendsTo(h.msgs, m.GetTo()) {
			out = append(out, msgs[next:i]...)
			next = i + 1
			h.msgs = append(h.msgs, m)
			touched = true
		}
	}
	if !touched {
		return msgs
	}
	return append(out, msgs[next:]...)
}

// isNotice reports whether m is an append without entries.
func isNotice(m *pb.Message) bool { return m.GetType() == pb.MsgApp && len(m.Entries) == 0 }

// hasAppend reports whether msgs hold an append to peer in term.
func hasAppend(msgs []*pb.Message, peer, term uint64) bool {
	for _, m := range msgs {
		if m.GetType() == pb.MsgApp && m.GetTo() == peer && m.GetTerm() == term {
			return true
		}
	}
	return false
}

// sendsTo reports whether msgs hold a message to peer.
func sendsTo(msgs []*pb.Message, peer uint64) bool {
	for _, m := range msgs {
		if m.GetTo() == peer {
			return true
		}
	}
	return false
}
