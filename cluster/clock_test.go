package cluster

import (
	"testing"
	"time"
)

// The entry clock a leader stamps: monotonic, following the local
// monotonic clock, and moving toward a wrong wall clock by at most MaxJump
// per period.
func TestEntryClock(t *testing.T) {
	const ttl = 8 * time.Minute // MaxJump 2 m, period 4 m
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		applied       time.Duration // largest applied entry time, from base
		wall, elapsed time.Duration
		want          time.Duration // the stamp, from base
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"a good clock is stamped as it is", []step{
			{0, 0, 0, 0},
			{0, 0, time.Second, time.Second},
			{time.Second, 0, 3 * time.Second, 3 * time.Second},
		}},
		{"a wall clock an hour ahead moves the entry clock by at most MaxJump", []step{
			{time.Second, 0, 0, time.Second}, // anchor on the applied time
			{time.Second, time.Hour, time.Second, 2*time.Second + 2*time.Minute},
			{time.Second, time.Hour, time.Minute, time.Second + time.Minute + 2*time.Minute},
			// a new period: the anchor is what was issued, then MaxJump again
			{time.Second, time.Hour, 5 * time.Minute, time.Second + 3*time.Minute + 2*time.Minute},
		}},
		{"a wall clock behind never moves the entry clock back", []step{
			{time.Minute, 0, 0, time.Minute},
			{time.Minute, -time.Hour, time.Second, time.Minute},
			// follows the monotonic clock, MaxJump toward the wall clock
			{time.Minute, -time.Hour, 3 * time.Minute, 2 * time.Minute},
		}},
		{"another leader's later entries raise the floor", []step{
			{0, 0, 0, 0},
			{10 * time.Minute, 0, time.Second, 10 * time.Minute},
			{10 * time.Minute, time.Hour, 2 * time.Second, 10*time.Minute + time.Second + 2*time.Minute},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var applied int64
			c := newEntryClock(func() int64 { return applied }, ttl)
			for i, s := range tc.steps {
				applied = base.Add(s.applied).UnixNano()
				if s.applied == 0 && i == 0 {
					applied = 0 // nothing applied yet
				}
				// The wall clock is off by s.wall; the monotonic reading is
				// s.elapsed after the first step's.
				got := c.stampAt(base.Add(s.elapsed+s.wall).UnixNano(), base.Add(s.elapsed))
				if want := base.Add(s.want).UnixNano(); got != want {
					t.Fatalf("step %d: stamp %v, want %v", i, time.Duration(got-base.UnixNano()), s.want)
				}
			}
		})
	}
}
