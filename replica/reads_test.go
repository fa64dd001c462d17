package replica

import (
	"errors"
	"testing"
)

// The callbacks of the reads released together share one ReadScope: what
// the first opens through Shared the others get, and it is closed once,
// after the last callback. Reads answered with an error open nothing.
func TestReadScopeSharedByRound(t *testing.T) {
	type event struct {
		what string
		v    any
	}
	events := make(chan event, 16)
	opens := 0
	read := func(scope *ReadScope, err error) {
		if err != nil {
			events <- event{"error", err}
			return
		}
		v := scope.Shared(func() (any, func()) {
			opens++
			n := opens
			events <- event{"open", n}
			return n, func() { events <- event{"close", n} }
		})
		events <- event{"read", v}
	}
	ws := []*readWaiter{{then: read}, {done: make(chan error, 1)}, {then: read}, {then: read}}
	answerReads(ws, nil)
	want := []event{{"open", 1}, {"read", 1}, {"read", 1}, {"read", 1}, {"close", 1}}
	for i, w := range want {
		if got := <-events; got != w {
			t.Fatalf("event %d: %v, want %v (want %v)", i, got, w, want)
		}
	}
	if err := <-ws[1].done; err != nil {
		t.Fatalf("a waiting reader got %v", err)
	}

	// The next round opens its own.
	answerReads([]*readWaiter{{then: read}}, nil)
	for i, w := range []event{{"open", 2}, {"read", 2}, {"close", 2}} {
		if got := <-events; got != w {
			t.Fatalf("second round, event %d: %v, want %v", i, got, w)
		}
	}

	stopped := errors.New("stopped")
	answerReads([]*readWaiter{{then: read}, {then: read}}, stopped)
	for range 2 {
		if got := <-events; got != (event{"error", stopped}) {
			t.Fatalf("failed round: %v, want the error and nothing opened", got)
		}
	}
	select {
	case e := <-events:
		t.Fatalf("extra event %v", e)
	default:
	}
}
