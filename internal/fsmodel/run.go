package fsmodel

import (
	"flag"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// Run is one random run of operations checked against the model: its
// seed, random source and length, and a trail of what it did for the
// failure log.
type Run struct {
	Seed    uint64
	Rand    *rand.Rand
	Steps   int // 400, or 100 with -short
	replay  string
	what    string
	history []string
}

var modelSeed = flag.Uint64("model.seed", 0, "seed for the model tests' random runs (0: time-based)")

// NewRun starts a run from -model.seed, or from the clock when that is 0.
// replay is the go test command line that reruns the test (without
// -model.seed); what names its steps in the failure log ("operations",
// "commands").
func NewRun(replay, what string) *Run {
	seed := *modelSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	steps := 400
	if testing.Short() {
		steps = 100
	}
	return &Run{
		Seed:   seed,
		Rand:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		Steps:  steps,
		replay: replay,
		what:   what,
	}
}

// Note adds one step's line to the trail.
func (r *Run) Note(line string) { r.history = append(r.history, line) }

// Report logs, if t has failed, the seed, how to replay the run and its
// last 15 steps. Tests defer it.
func (r *Run) Report(t testing.TB) {
	if t.Failed() {
		t.Logf("seed %d (replay: %s -model.seed=%d); last %s:\n%s",
			r.Seed, r.replay, r.Seed, r.what, strings.Join(r.history[max(0, len(r.history)-15):], "\n"))
	}
}
