// Package eventually waits in tests for a condition that another goroutine
// or process makes true: a leader elected, a replica caught up, a file
// written. It replaces sleeps and hand-written poll loops, so that every
// wait has a deadline and a timeout says what was last seen.
//
// A condition is a func() error: nil means it holds; an error says why not
// yet, and the last one is reported when the deadline passes. The condition
// runs on the caller's goroutine, one call at a time, so it may call
// t.Fatal to give up early on something that will never change.
//
// Polling starts after 1 ms and backs off to one try every 50 ms, so a
// condition that holds at once costs nothing and a slow one (a process
// started by the condition, say) does not run more than 20 times a second.
package eventually

import (
	"fmt"
	"testing"
	"time"
)

// maxInterval bounds the pause between two tries.
const maxInterval = 50 * time.Millisecond

// Within calls cond until it returns nil and returns nil then; when timeout
// passes first it returns an error naming what and carrying cond's last
// error. cond is called at least once.
func Within(timeout time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	tries := 0
	for {
		err := cond()
		tries++
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%s: not within %v (%d tries); last: %w", what, timeout, tries, err)
		}
		time.Sleep(min(pause, time.Until(deadline)))
		pause = min(2*pause, maxInterval)
	}
}

// Holds is Within for a test: it fails t when cond does not hold within
// timeout, reporting what and cond's last error.
func Holds(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Within(timeout, what, cond); err != nil {
		t.Fatal(err)
	}
}

// True adapts a boolean check to a condition: the error it returns when ok
// is false is the message built from format and args, which Within reports
// as the last state seen.
func True(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, args...)
}
