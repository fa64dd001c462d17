package eventually

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWithinReturnsOnceTheConditionHolds(t *testing.T) {
	calls := 0
	err := Within(5*time.Second, "third call", func() error {
		calls++
		return True(calls == 3, "call %d", calls)
	})
	if err != nil || calls != 3 {
		t.Fatalf("Within = %v after %d calls, want nil after 3", err, calls)
	}
}

func TestWithinReportsTheLastError(t *testing.T) {
	calls := 0
	start := time.Now()
	err := Within(30*time.Millisecond, "never", func() error {
		calls++
		return errors.New("still " + strings.Repeat("x", calls))
	})
	if err == nil {
		t.Fatal("Within = nil for a condition that never holds")
	}
	if want := "still " + strings.Repeat("x", calls); !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "never: ") {
		t.Fatalf("Within = %q, want it to name the wait and end with the last error %q", err, want)
	}
	if took := time.Since(start); took < 30*time.Millisecond {
		t.Fatalf("gave up after %v, before the 30ms timeout", took)
	}
}

func TestWithinCallsAtLeastOnce(t *testing.T) {
	called := false
	if err := Within(0, "zero timeout", func() error { called = true; return nil }); err != nil || !called {
		t.Fatalf("Within(0) = %v, called %v; want nil after one call", err, called)
	}
}
