package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// The retry policy of forward as a pure function: next takes what forward
// knows (retryState) and what the last try brought (answer) and says what
// to do (decision). It reads no clock, table or network, so every rule has
// a table test (policy_test.go); forward performs the decisions.

// action is what forward does after an answer.
type action int

const (
	// actTry tries again at once: decision.hint if set, else the next
	// member not tried this round.
	actTry action = iota
	// actRound waits decision.wait and starts a new round of the members:
	// every member was tried this round.
	actRound
	// actAwaitTable asks the table to catch up to decision.refresh (when
	// nonzero), waits decision.wait, starts a new round and gives up if
	// the deadline has passed meanwhile: a WRONG_RANGE.
	actAwaitTable
	// actAnswer returns the node's answer.
	actAnswer
	// actMisrouted returns the node's WRONG_RANGE, explained: the router
	// took wrongRangeTries of them.
	actMisrouted
	// actNotRetried returns TIMEOUT at once: the write may have been
	// applied and a retry could apply it twice (retriable).
	actNotRetried
	// actGiveUp returns TIMEOUT or UNAVAILABLE (retryState.code): the
	// deadline has passed.
	actGiveUp
)

var actionNames = [...]string{"try", "round", "await-table", "answer", "misrouted", "not-retried", "give-up"}

func (a action) String() string { return actionNames[a] }

// retryState is what forward carries from one try of a request to the
// next. The first four fields are fixed for the request; next updates the
// rest.
type retryState struct {
	retriable      bool          // req.Retriable(): the request may be sent again after an unknown outcome
	mutating       bool          // req.Op.Mutating(): only a leader answers it
	refreshes      bool          // the table can catch up when asked (control.Refresher)
	attemptTimeout time.Duration // Config.AttemptTimeout, for the last error's text

	backoff   time.Duration // the next wait between rounds
	tries     int           // tries made
	wrong     int           // WRONG_RANGE answers counted against the request
	unknown   bool          // some try may have reached a node without a definite answer
	lastTable uint64        // newest node table version a refresh was asked for
	lastErr   string        // the last failure, "" before any
}

// newRetryState returns the state before the first try.
func newRetryState(retriable, mutating, refreshes bool, attemptTimeout time.Duration) retryState {
	return retryState{retriable: retriable, mutating: mutating, refreshes: refreshes, attemptTimeout: attemptTimeout, backoff: minBackoff}
}

// answer is what one try brought, or that the round is over.
type answer struct {
	roundDone bool           // every member was tried this round: no try was made
	addr      string         // the node tried
	version   uint64         // the routing table version the try was routed with
	resp      *wire.Response // nil on a transport failure
	err       error          // the transport failure
	sent      bool           // on err: the request may have reached the node
	inFlight  bool           // on err: the call is still pending on a live connection (attempt.inFlight)
	expired   bool           // the deadline (less the margin) had passed when the try ended
	hintTried bool           // resp.Leader was already tried this round
}

// decision is next's answer: the action and what to do on the way.
type decision struct {
	act     action
	forget  bool          // drop the answer's addr as the cluster's cached leader
	lead    string        // cache this address as the cluster's leader
	hint    string        // with actTry: the address to try next
	refresh uint64        // with actAwaitTable: the table version to catch up to, 0 for none
	wait    time.Duration // with actRound and actAwaitTable
}

// next is the retry policy. Each rule, in the order it is checked:
//
//   - every member tried this round: back off (minBackoff doubling to
//     maxBackoff) and start a new round.
//   - a try that ran out of time with its call still pending on a live
//     connection to a node gossip does not call dead, before the deadline:
//     try the same node again, which waits for that call (a slow node is
//     not sent a second copy of the request).
//   - a transport failure after the request was sent, for a request that
//     is not retriable: not retried (its outcome is unknown).
//   - a transport failure once the deadline has passed: give up (the last
//     error keeps the earlier cause rather than the deadline's).
//   - any other transport failure: forget the cached leader if it was
//     this node and try the next member.
//   - NOT_LEADER: forget this node as leader; with a leader address not
//     tried this round, cache it and try it next.
//   - UNAVAILABLE, or TIMEOUT for a retriable request: forget the cached
//     leader, try the next member (TIMEOUT makes the outcome unknown).
//     TIMEOUT for a request that is not retriable: not retried.
//   - WRONG_RANGE: counted, unless the table can catch up and the node
//     knows a newer version than the request was routed with (a split the
//     meta group is still committing: wait for the table instead). At
//     wrongRangeTries counted, the answer is returned. Otherwise ask the
//     table to catch up (once per newer version seen), back off and
//     route again.
//   - anything else is the answer; a mutation's answer names the leader.
//     NO_SPACE is one: the leader refused the write before proposing it,
//     and another member would only send it back to the same leader.
//
// After NOT_LEADER, UNAVAILABLE and TIMEOUT, a passed deadline gives up.
func (s *retryState) next(a answer) decision {
	if a.roundDone {
		return decision{act: actRound, wait: s.backOff()}
	}
	s.tries++
	if a.err != nil {
		return s.failed(a)
	}
	resp := a.resp
	var d decision
	switch resp.Code {
	case wire.NotLeader:
		s.lastErr = fmt.Sprintf("%s: not leader (leader %q)", a.addr, resp.Leader)
		d = decision{act: actTry, forget: true}
		if resp.Leader != "" && !a.hintTried {
			d.lead, d.hint = resp.Leader, resp.Leader
		}
	case wire.Unavailable, wire.Timeout:
		if resp.Code == wire.Timeout && !s.retriable {
			return decision{act: actNotRetried}
		}
		s.unknown = s.unknown || resp.Code == wire.Timeout
		s.lastErr = fmt.Sprintf("%s: %v", a.addr, resp.Err())
		d = decision{act: actTry, forget: true}
	case wire.WrongRange:
		return s.wrongRange(a)
	default:
		d = decision{act: actAnswer}
		if s.mutating {
			d.lead = a.addr // only the leader applies mutations
		}
		return d
	}
	if a.expired {
		d.act, d.hint = actGiveUp, ""
	}
	return d
}

// failed is next for a transport failure.
func (s *retryState) failed(a answer) decision {
	s.unknown = s.unknown || a.sent
	if a.inFlight && !a.expired {
		// A slow node, not a gone one: wait for the call it is working on
		// (no second copy is sent, so this holds for every request).
		s.lastErr = fmt.Sprintf("%s: no answer yet after %v", a.addr, s.attemptTimeout)
		return decision{act: actTry, hint: a.addr}
	}
	if a.sent && !s.retriable {
		return decision{act: actNotRetried}
	}
	deadline := errors.Is(a.err, context.DeadlineExceeded)
	if a.expired {
		if s.lastErr == "" || !deadline {
			s.lastErr = fmt.Sprintf("%s: %v", a.addr, a.err)
		}
		return decision{act: actGiveUp}
	}
	if deadline {
		s.lastErr = fmt.Sprintf("%s: no answer within %v", a.addr, s.attemptTimeout)
	} else {
		s.lastErr = fmt.Sprintf("%s: %v", a.addr, a.err)
	}
	return decision{act: actTry, forget: true}
}

// wrongRange is next for a WRONG_RANGE answer.
func (s *retryState) wrongRange(a answer) decision {
	newer := a.resp.Table > a.version
	if !s.refreshes || !newer {
		s.wrong++
	}
	s.lastErr = fmt.Sprintf("%s: %v", a.addr, a.resp.Err())
	if s.wrong >= wrongRangeTries {
		return decision{act: actMisrouted}
	}
	d := decision{act: actAwaitTable}
	if s.refreshes && newer && a.resp.Table > s.lastTable {
		s.lastTable = a.resp.Table
		d.refresh = a.resp.Table
	}
	d.wait = s.backOff()
	return d
}

// backOff returns the wait before the next round and doubles the one after.
func (s *retryState) backOff() time.Duration {
	w := s.backoff
	s.backoff = min(2*s.backoff, maxBackoff)
	return w
}

// code is the answer when forward gives up: TIMEOUT if some try may have
// reached a node (the outcome is unknown), else UNAVAILABLE.
func (s *retryState) code() wire.Code {
	if s.unknown {
		return wire.Timeout
	}
	return wire.Unavailable
}

// lastError is the last failure for the give-up message.
func (s *retryState) lastError() string {
	if s.lastErr == "" {
		return "no node tried"
	}
	return s.lastErr
}

// deadline is forward's own deadline: the caller's (else now plus
// defaultTimeout) less a margin for writing the answer, a tenth of the
// time left but at most maxMargin.
func deadline(now time.Time, caller time.Time, ok bool, defaultTimeout time.Duration) time.Time {
	if !ok {
		caller = now.Add(defaultTimeout)
	}
	return caller.Add(-max(0, min(maxMargin, caller.Sub(now)/10)))
}
