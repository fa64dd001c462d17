package cluster

// The scrubber re-reads every stored chunk at a bounded rate and checks it
// against its name. It finds rot at rest before a read does.
// Findings are counted in NodeStatus (ScrubCorrupt) and each corrupt chunk
// is logged and repaired from another member's copy (repair.go; counted in
// ChunksRepaired, or RepairFailed when no member has a healthy copy).

import (
	"context"
	"github.com/cleavefs/cleave/fsm"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// scrubber drives VerifyChunks from a goroutine at rate bytes per second,
// each chunk counted as its bytes plus scrubChunkCost.
type scrubber struct {
	fsm    *fsm.FSM
	rate   int64
	repair func(context.Context, fsm.ChunkID) error // nil: report only
	log    *slog.Logger

	checked, bytes, corrupt, passes atomic.Uint64

	ctx    context.Context // cancelled by stop
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

func startScrubber(f *fsm.FSM, rate int64, repair func(context.Context, fsm.ChunkID) error, log *slog.Logger) *scrubber {
	s := &scrubber{fsm: f, rate: rate, repair: repair, log: log.With("component", "scrubber"), done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.run()
	return s
}

// scrubChunkCost is what pacing adds to each chunk's bytes: reading a
// chunk costs a key, a value read and a hash set-up whatever its size, so
// a store of small chunks paced by bytes alone would be re-read thousands
// of chunks a second. At the default 8 MiB/s, 1 KiB chunks are verified
// about 126 a second; 4 MiB ones at the rate.
const scrubChunkCost = 64 << 10

// firstScrubStep bounds the bytes of the first step, before the chunks'
// mean size is known; later steps aim at scrubStepChunks chunks, so that
// each is a short burst of work, also on a node with a small CPU quota.
const (
	firstScrubStep  = 64 << 10
	scrubStepChunks = 64
)

func (s *scrubber) run() {
	defer s.wg.Done()
	maxStep := min(s.rate, 4<<20) // bytes per step: pace in steps of at most 4 MiB
	step := min(maxStep, firstScrubStep)
	var from []byte
	for {
		start := time.Now()
		st, err := s.fsm.VerifyChunks(from, step)
		if err != nil {
			s.log.Error("scrub step failed", "err", err)
		}
		s.checked.Add(uint64(st.Checked))
		s.bytes.Add(uint64(st.Bytes))
		for _, name := range st.Corrupt {
			s.corrupt.Add(1)
			s.log.Error("corrupt chunk: stored bytes do not match the chunk's name", "chunk", name)
			if h, err := fsm.ParseChunkName(name); err == nil && s.repair != nil {
				_ = s.repair(s.ctx, h) // logged and counted by repair
			}
		}
		if st.Checked > 0 {
			step = min(max(st.Bytes/int64(st.Checked)*scrubStepChunks, 1), maxStep)
		}
		from = st.Next
		cost := st.Bytes + int64(st.Checked)*scrubChunkCost
		wait := time.Duration(float64(cost) / float64(s.rate) * float64(time.Second))
		if from == nil {
			s.passes.Add(1)
			wait = max(wait, time.Second) // an empty or small store: do not spin
		}
		wait -= time.Since(start)
		if wait < time.Millisecond {
			wait = time.Millisecond
		}
		select {
		case <-s.done:
			return
		case <-time.After(wait):
		}
	}
}

func (s *scrubber) stop() {
	s.once.Do(func() { close(s.done); s.cancel() })
	s.wg.Wait()
}

func (s *scrubber) report(ns *wire.NodeStatus) {
	ns.ScrubChecked = s.checked.Load()
	ns.ScrubBytes = s.bytes.Load()
	ns.ScrubCorrupt = s.corrupt.Load()
	ns.ScrubPasses = s.passes.Load()
}
