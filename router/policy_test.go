package router

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// TestRetryPolicy checks every rule of retryState.next: each case starts
// from a state (prepared by earlier answers), feeds one answer and checks
// the decision and the state after it.
func TestRetryPolicy(t *testing.T) {
	const a1, a2 = "10.0.0.1:1", "10.0.0.2:1"
	resp := func(code wire.Code) *wire.Response { return &wire.Response{Code: code, Message: "m"} }
	notLeader := func(leader string) *wire.Response {
		return &wire.Response{Code: wire.NotLeader, Leader: leader}
	}
	wrong := func(table uint64) *wire.Response {
		return &wire.Response{Code: wire.WrongRange, Table: table, Message: "not mine"}
	}
	write := newRetryState(false, true, false, time.Second)   // an APPEND without a session
	retry := newRetryState(true, true, false, time.Second)    // a write with a session
	read := newRetryState(true, false, false, time.Second)    // a read
	refresh := newRetryState(true, false, true, time.Second)  // a read, the table can catch up
	refreshW := newRetryState(true, false, true, time.Second) // ... after three misroutes
	refreshW.wrong = wrongRangeTries - 1
	seen := refresh
	seen.lastTable = 7
	maxed := read
	maxed.backoff = maxBackoff
	failedBefore := read
	failedBefore.lastErr = "earlier: refused"

	for _, tc := range []struct {
		name  string
		st    retryState
		a     answer
		want  decision
		check func(t *testing.T, st retryState)
	}{
		{"round done: back off, doubling", read, answer{roundDone: true},
			decision{act: actRound, wait: minBackoff}, func(t *testing.T, st retryState) {
				if st.backoff != 2*minBackoff || st.tries != 0 {
					t.Errorf("backoff %v tries %d, want %v and no try counted", st.backoff, st.tries, 2*minBackoff)
				}
			}},
		{"round done: backoff stays at its cap", maxed, answer{roundDone: true},
			decision{act: actRound, wait: maxBackoff}, func(t *testing.T, st retryState) {
				if st.backoff != maxBackoff {
					t.Errorf("backoff %v, want %v", st.backoff, maxBackoff)
				}
			}},
		{"slow node, call still pending: wait for it, even unretriable", write, answer{addr: a1, err: context.DeadlineExceeded, sent: true, inFlight: true},
			decision{act: actTry, hint: a1}, func(t *testing.T, st retryState) {
				if !st.unknown || !strings.Contains(st.lastErr, "no answer yet") {
					t.Errorf("unknown %v lastErr %q, want an unknown outcome and the wait named", st.unknown, st.lastErr)
				}
			}},
		{"slow node past the deadline: give up", retry, answer{addr: a1, err: context.DeadlineExceeded, sent: true, inFlight: true, expired: true},
			decision{act: actGiveUp}, nil},
		{"dial failed: next member", write, answer{addr: a1, err: io.ErrUnexpectedEOF},
			decision{act: actTry, forget: true}, func(t *testing.T, st retryState) {
				if st.unknown || !strings.Contains(st.lastErr, a1) || st.tries != 1 {
					t.Errorf("state %+v: want a known outcome, the error of %s, one try", st, a1)
				}
			}},
		{"sent, write not retriable: not retried", write, answer{addr: a1, err: io.EOF, sent: true},
			decision{act: actNotRetried}, nil},
		{"sent, write with a session: next member, outcome unknown", retry, answer{addr: a1, err: io.EOF, sent: true},
			decision{act: actTry, forget: true}, func(t *testing.T, st retryState) {
				if !st.unknown || st.code() != wire.Timeout {
					t.Errorf("unknown %v code %v, want TIMEOUT", st.unknown, st.code())
				}
			}},
		{"attempt timed out: named as such", read, answer{addr: a1, err: context.DeadlineExceeded, sent: true},
			decision{act: actTry, forget: true}, func(t *testing.T, st retryState) {
				if st.lastErr != a1+": no answer within 1s" {
					t.Errorf("last error %q", st.lastErr)
				}
			}},
		{"failed after the deadline: give up", read, answer{addr: a1, err: io.EOF, expired: true},
			decision{act: actGiveUp}, func(t *testing.T, st retryState) {
				if st.lastErr != a1+": EOF" || st.code() != wire.Unavailable {
					t.Errorf("last error %q code %v", st.lastErr, st.code())
				}
			}},
		{"deadline error after the deadline keeps the earlier cause", failedBefore, answer{addr: a1, err: context.DeadlineExceeded, expired: true},
			decision{act: actGiveUp}, func(t *testing.T, st retryState) {
				if st.lastErr != "earlier: refused" {
					t.Errorf("last error %q, want the earlier one", st.lastErr)
				}
			}},
		{"deadline error as the first failure is recorded", read, answer{addr: a1, err: context.DeadlineExceeded, expired: true},
			decision{act: actGiveUp}, func(t *testing.T, st retryState) {
				if !strings.HasPrefix(st.lastErr, a1+": ") || st.lastError() == "no node tried" {
					t.Errorf("last error %q", st.lastErr)
				}
			}},
		{"NOT_LEADER with a new hint: try the hinted leader", write, answer{addr: a1, resp: notLeader(a2)},
			decision{act: actTry, forget: true, lead: a2, hint: a2}, nil},
		{"NOT_LEADER with a hint tried this round: next member", write, answer{addr: a1, resp: notLeader(a2), hintTried: true},
			decision{act: actTry, forget: true}, nil},
		{"NOT_LEADER without a hint: next member", write, answer{addr: a1, resp: notLeader("")},
			decision{act: actTry, forget: true}, func(t *testing.T, st retryState) {
				if !strings.Contains(st.lastErr, "not leader") {
					t.Errorf("last error %q", st.lastErr)
				}
			}},
		{"NOT_LEADER after the deadline: give up, the hint still cached", write, answer{addr: a1, resp: notLeader(a2), expired: true},
			decision{act: actGiveUp, forget: true, lead: a2}, nil},
		{"UNAVAILABLE: next member", write, answer{addr: a1, resp: resp(wire.Unavailable)},
			decision{act: actTry, forget: true}, func(t *testing.T, st retryState) {
				if st.unknown {
					t.Error("UNAVAILABLE made the outcome unknown")
				}
			}},
		{"UNAVAILABLE after the deadline: give up", write, answer{addr: a1, resp: resp(wire.Unavailable), expired: true},
			decision{act: actGiveUp, forget: true}, nil},
		{"TIMEOUT, write not retriable: not retried", write, answer{addr: a1, resp: resp(wire.Timeout)},
			decision{act: actNotRetried}, nil},
		{"TIMEOUT, retriable: next member, outcome unknown", retry, answer{addr: a1, resp: resp(wire.Timeout)},
			decision{act: actTry, forget: true}, func(t *testing.T, st retryState) {
				if !st.unknown {
					t.Error("TIMEOUT left the outcome known")
				}
			}},
		{"NO_SPACE, retriable write: the answer, not retried", retry, answer{addr: a1, resp: resp(wire.NoSpace)},
			decision{act: actAnswer, lead: a1}, nil},
		{"WRONG_RANGE, table cannot catch up: counted, back off", read, answer{addr: a1, version: 3, resp: wrong(4)},
			decision{act: actAwaitTable, wait: minBackoff}, func(t *testing.T, st retryState) {
				if st.wrong != 1 {
					t.Errorf("wrong %d, want 1", st.wrong)
				}
			}},
		{"WRONG_RANGE, node knows a newer table: refresh, not counted", refresh, answer{addr: a1, version: 3, resp: wrong(5)},
			decision{act: actAwaitTable, refresh: 5, wait: minBackoff}, func(t *testing.T, st retryState) {
				if st.wrong != 0 || st.lastTable != 5 {
					t.Errorf("wrong %d lastTable %d, want 0 and 5", st.wrong, st.lastTable)
				}
			}},
		{"WRONG_RANGE, newer version already asked for: wait, no refresh", seen, answer{addr: a1, version: 3, resp: wrong(7)},
			decision{act: actAwaitTable, wait: minBackoff}, nil},
		{"WRONG_RANGE, node's table not newer: counted", refresh, answer{addr: a1, version: 3, resp: wrong(3)},
			decision{act: actAwaitTable, wait: minBackoff}, func(t *testing.T, st retryState) {
				if st.wrong != 1 {
					t.Errorf("wrong %d, want 1", st.wrong)
				}
			}},
		{"WRONG_RANGE at the limit: return it", refreshW, answer{addr: a1, version: 3, resp: wrong(2)},
			decision{act: actMisrouted}, nil},
		{"OK write: the answer, from the leader", write, answer{addr: a1, resp: resp(wire.OK)},
			decision{act: actAnswer, lead: a1}, nil},
		{"OK read: the answer, leader not assumed", read, answer{addr: a1, resp: resp(wire.OK)},
			decision{act: actAnswer}, nil},
		{"NOT_FOUND: the answer", read, answer{addr: a1, resp: resp(wire.NotFound)},
			decision{act: actAnswer}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.st
			got := st.next(tc.a)
			if got != tc.want {
				t.Fatalf("next = %+v (%v), want %+v (%v)", got, got.act, tc.want, tc.want.act)
			}
			if tc.check != nil {
				tc.check(t, st)
			}
		})
	}
}

// A request that never reached a node gives up UNAVAILABLE naming no node;
// one whose try may have reached a node gives up TIMEOUT.
func TestRetryPolicyGiveUpCode(t *testing.T) {
	st := newRetryState(true, false, false, time.Second)
	if st.code() != wire.Unavailable || st.lastError() != "no node tried" {
		t.Fatalf("fresh state: %v %q", st.code(), st.lastError())
	}
	st.next(answer{addr: "a", err: errors.New("refused")})
	if st.code() != wire.Unavailable {
		t.Fatalf("after a failed dial: %v, want UNAVAILABLE", st.code())
	}
	st.next(answer{addr: "a", err: io.EOF, sent: true})
	if st.code() != wire.Timeout {
		t.Fatalf("after a broken sent try: %v, want TIMEOUT", st.code())
	}
}

// The deadline keeps a margin for the answer: a tenth of the time left, at
// most maxMargin; with no caller deadline DefaultTimeout applies.
func TestForwardDeadlineMargin(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		name   string
		caller time.Duration
		ok     bool
		want   time.Duration
	}{
		{"short deadline: a tenth", 100 * time.Millisecond, true, 90 * time.Millisecond},
		{"long deadline: maxMargin", 5 * time.Second, true, 5*time.Second - maxMargin},
		{"passed deadline: no margin", -time.Second, true, -time.Second},
		{"no deadline: default less maxMargin", 0, false, 10*time.Second - maxMargin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := deadline(now, now.Add(tc.caller), tc.ok, 10*time.Second).Sub(now)
			if got != tc.want {
				t.Errorf("deadline in %v, want %v", got, tc.want)
			}
		})
	}
}
