package fsm

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cleavefs/cleave/internal/fsmodel"
)

// fuzzSteps bounds the commands one fuzz input drives, so that one
// execution stays well under a second.
const fuzzSteps = 48

// byteSource is a rand.Source that the fuzzer's bytes steer: each value
// is the next eight bytes XORed into a fixed PCG stream. The stream keeps
// the values varied where the input is not (rand's bounded draws loop
// forever on a source that returns zeros).
type byteSource struct {
	p   []byte
	pcg *rand.PCG
}

func (s *byteSource) Uint64() uint64 {
	var b [8]byte
	n := copy(b[:], s.p)
	s.p = s.p[n:]
	return binary.LittleEndian.Uint64(b[:]) ^ s.pcg.Uint64()
}

// FuzzApplySequence decodes the input into a sequence of commands (mkdir,
// put, write, append, rename, copy, remove, over a small tree), applies
// each to a real Pebble-backed FSM and to the model, and checks after
// every step: the same result code, the namespace equal to the model's
// (so every entry's parent exists and is a directory), every file's
// bytes, and the chunk reference counts.
func FuzzApplySequence(f *testing.F) {
	for _, seed := range []uint64{1, 2, 3} {
		b := make([]byte, 0, 8*fuzzSteps)
		rng := rand.New(rand.NewPCG(seed, seed))
		for range fuzzSteps {
			b = binary.LittleEndian.AppendUint64(b, rng.Uint64())
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		src := &byteSource{p: p, pcg: rand.NewPCG(7, 11)}
		rng := rand.New(src)
		n := newNode(t, wholeRing)
		m := fsmodel.Model{}
		var log []string
		for i := 0; i < fuzzSteps && len(src.p) > 0; i++ {
			o := fsmodel.Random(rng)
			c := commandOf(o)
			want := m.Step(o)
			res := n.do(c)
			log = append(log, fmt.Sprintf("%d: %v %s → %s offset=%d data=%q: %v %s", i, c.Op, c.Path, c.To, c.Offset, c.Data, res.Code, res.Message))
			if res.Code != want {
				t.Fatalf("step %d: got %v, model says %v; steps:\n%q", i, res.Code, want, log)
			}
			checkModel(t, n, m)
		}
	})
}
