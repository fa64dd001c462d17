package rpc

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

type ctxKey struct{}

// newTestCtx returns a request context of d ending after in, whose values
// hold ctxKey{} = "v".
func newTestCtx(d *deadlines, in time.Duration) *requestCtx {
	return d.newCtx(context.WithValue(context.Background(), ctxKey{}, "v"), time.Now().Add(in))
}

// waitDone waits up to 10 s for ctx to end.
func waitDone(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not end", what)
	}
}

// TestRequestCtxEndsAtDeadline: a request's context waited on ends with
// DeadlineExceeded at its deadline, through the connection's one timer,
// and leaves the heap; one nobody waits on reports the deadline when
// asked, without a timer.
func TestRequestCtxEndsAtDeadline(t *testing.T) {
	var d deadlines
	quiet := newTestCtx(&d, 20*time.Millisecond)
	if dl, ok := quiet.Deadline(); !ok || dl.IsZero() {
		t.Fatalf("Deadline() = %v, %v", dl, ok)
	}
	if quiet.Value(ctxKey{}) != "v" {
		t.Fatalf("Value lost the connection's values")
	}
	time.Sleep(30 * time.Millisecond)
	if err := quiet.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err() after the deadline = %v, want DeadlineExceeded", err)
	}
	if d.q.timer != nil {
		t.Fatalf("a context nobody waited on set the connection's timer")
	}
	select {
	case <-quiet.Done():
	default:
		t.Fatalf("Done() of an ended context is not closed")
	}

	// Out of order: each ends at its own deadline, also after the earliest
	// was answered before it came (the timer then fires with nothing due).
	late := newTestCtx(&d, 300*time.Millisecond)
	early := newTestCtx(&d, 50*time.Millisecond)
	mid := newTestCtx(&d, 150*time.Millisecond)
	for _, r := range []*requestCtx{late, early, mid} {
		r.Done()
	}
	early.cancel()
	if err := early.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("answered context: Err() = %v, want Canceled", err)
	}
	waitDone(t, mid, "mid")
	if err := late.Err(); err != nil && time.Now().Before(late.deadline) {
		t.Fatalf("late ended with mid, before its deadline: %v", err)
	}
	waitDone(t, late, "late")
	for _, r := range []*requestCtx{mid, late} {
		if err := r.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Err() = %v, want DeadlineExceeded", err)
		}
	}
	d.mu.Lock()
	left := len(d.q.items)
	d.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d contexts left in the heap after all ended", left)
	}
}

// TestRequestCtxAfterFunc: functions registered run once when the context
// ends, not after stop; on an ended context they run at once; context.
// AfterFunc and derived contexts register through the method (no
// goroutine of their own) and see the context's error as their cause.
func TestRequestCtxAfterFunc(t *testing.T) {
	var d deadlines
	r := newTestCtx(&d, time.Hour)
	var ran, stopped atomic.Int32
	stopF := r.AfterFunc(func() { stopped.Add(1) })
	AfterFunc(r, func() { ran.Add(1) })
	child, cancelChild := context.WithDeadline(r, time.Now().Add(2*time.Hour))
	defer cancelChild()
	std := make(chan struct{})
	context.AfterFunc(r, func() { close(std) })
	d.mu.Lock()
	registered := len(r.funcs)
	d.mu.Unlock()
	if registered != 4 {
		t.Fatalf("%d functions registered on the context, want 4 (derived contexts go through AfterFunc)", registered)
	}
	if !stopF() {
		t.Fatalf("stop before the end reported false")
	}
	if stopF() {
		t.Fatalf("a second stop reported true")
	}
	r.cancel()
	if ran.Load() != 1 || stopped.Load() != 0 {
		t.Fatalf("after cancel: ran %d, stopped one ran %d; want 1 and 0", ran.Load(), stopped.Load())
	}
	waitDone(t, child, "derived context")
	if err := context.Cause(child); !errors.Is(err, context.Canceled) {
		t.Fatalf("derived context's cause = %v, want Canceled", err)
	}
	select {
	case <-std:
	case <-time.After(10 * time.Second):
		t.Fatalf("context.AfterFunc's function did not run")
	}
	r.cancel()
	if ran.Load() != 1 {
		t.Fatalf("a second cancel ran the function again")
	}

	late := make(chan struct{})
	if stop := r.AfterFunc(func() { close(late) }); stop() {
		t.Fatalf("stop on an ended context reported true")
	}
	select {
	case <-late:
	case <-time.After(10 * time.Second):
		t.Fatalf("a function registered on an ended context did not run")
	}
}

// TestRequestCtxConnectionClose: closing the connection ends every
// request's context, waited on or not, and one made afterwards.
func TestRequestCtxConnectionClose(t *testing.T) {
	var d deadlines
	watched, quiet := newTestCtx(&d, time.Hour), newTestCtx(&d, time.Hour)
	var ran atomic.Int32
	watched.AfterFunc(func() { ran.Add(1) })
	d.close()
	if ran.Load() != 1 {
		t.Fatalf("closing ran the registered function %d times, want 1", ran.Load())
	}
	for _, r := range []*requestCtx{watched, quiet, newTestCtx(&d, time.Hour)} {
		if err := r.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Err() after the connection closed = %v, want Canceled", err)
		}
		waitDone(t, r, "context of a closed connection")
	}
}
