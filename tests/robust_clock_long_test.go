//go:build long

package tests

import (
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestClockJump runs the robustness schedule while the machine's wall
// clock is stepped back by 30 s for the middle half of it, then forward
// again to where it would have been: what NTP stepping or `date -s` does
// to every process. A leader's read lease is kept by the monotonic clock,
// so the jump must not lengthen it; the history is checked with porcupine.
// The step is the whole machine's, so this schedule runs only under
// `make test-long`, and needs root (it skips, saying so, without).
func TestClockJump(t *testing.T) {
	skipInShortMode(t, "robustness schedules")
	if os.Geteuid() != 0 {
		t.Skip("stepping the wall clock needs root (CAP_SYS_TIME)")
	}
	d := ownDeployment(t)
	seed := scheduleSeed(t)
	jump := fault{"clock-jump", func(t *testing.T, d *deployment, rng *rand.Rand) func() {
		return stepWallClock(t, -30*time.Second)
	}}
	ops := runSchedule(t, d, jump, seed, scheduleDuration(12*time.Second))
	requireLinearizable(t, jump.name, seed, ops)
}

// stepWallClock moves the wall clock (CLOCK_REALTIME) by by and returns a
// function that puts it back where it would have been without the step,
// by the monotonic clock; the test's cleanup does it too if the test ends
// first.
func stepWallClock(t *testing.T, by time.Duration) (restore func()) {
	t.Helper()
	before := time.Now()
	if err := setWallClock(before.Add(by)); err != nil {
		t.Fatalf("step the wall clock by %v: %v", by, err)
	}
	t.Logf("wall clock stepped by %v", by)
	var once sync.Once
	restore = func() {
		once.Do(func() {
			// before carries a monotonic reading: Since is the true elapsed time.
			if err := setWallClock(before.Round(0).Add(time.Since(before))); err != nil {
				t.Errorf("restore the wall clock: %v", err)
				return
			}
			t.Logf("wall clock stepped back to real time")
		})
	}
	t.Cleanup(restore)
	return restore
}

func setWallClock(to time.Time) error {
	ts := unix.NsecToTimespec(to.UnixNano())
	return unix.ClockSettime(unix.CLOCK_REALTIME, &ts)
}
