package fsm

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cleavefs/cleave/wire"
)

// BenchmarkApplyPutLoad applies what cleave-loadgen's 1 KiB put workload
// sends a leader: 8 sessions with rising sequence numbers (so every
// session window fills and trims), overwrites of 1,000 files in 16 roots
// with distinct data, kept inline as a node proposes them (InlineSize),
// entry time advancing 50 µs per entry. One Ready batch holds 16 entries.
func BenchmarkApplyPutLoad(b *testing.B) {
	const sessions = 8
	seq := make([]uint64, sessions)
	benchApplyPuts(b, func(r *rand.Rand) (uint64, uint64) {
		s := r.IntN(sessions)
		seq[s]++
		return uint64(s + 1), seq[s]
	})
}

// BenchmarkApplyPutPipelined is BenchmarkApplyPutLoad with the sessions
// of cleave-loadgen itself: one client, so one session, whose 64 workers
// pipeline their puts over two clusters. Each cluster applies about every
// other seq, out of order: 64 seqs in flight, taken in random order.
func BenchmarkApplyPutPipelined(b *testing.B) {
	var sent uint64
	var inflight []uint64
	benchApplyPuts(b, func(r *rand.Rand) (uint64, uint64) {
		for len(inflight) < 64 {
			sent++
			if r.IntN(2) == 0 { // the other cluster's
				continue
			}
			inflight = append(inflight, sent)
		}
		i := r.IntN(len(inflight))
		seq := inflight[i]
		inflight[i] = inflight[len(inflight)-1]
		inflight = inflight[:len(inflight)-1]
		return 1, seq
	})
}

// benchApplyPuts applies 1 KiB puts over 1,000 files, each with the
// session and seq next gives.
func benchApplyPuts(b *testing.B, next func(*rand.Rand) (session, seq uint64)) {
	db, f := benchFSM(b)
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	const sessions, files, perBatch = 8, 1000, 16
	var index uint64
	now := int64(1e18)
	step := func(batch *pebble.Batch) {
		index++
		now += 50e3
		s, seq := next(r)
		fi := r.IntN(files)
		off := r.IntN(len(buf) - 1024)
		cmd, _ := EncodeCommand(&Command{
			Op: wire.OpPut, Path: fmt.Sprintf("/load-%03d/f%08d", fi%16, fi/16), Data: buf[off : off+1024],
			Flags: wire.FlagParents, Time: now, Session: s, Seq: seq, InlineSize: DefaultInlineSize,
		})
		res := f.Apply(batch, index, cmd)
		if res.Code != wire.OK {
			b.Fatal(res.Message)
		}
	}
	ready := func() { // one Ready: perBatch entries applied in one batch
		batch := db.NewIndexedBatch()
		for range perBatch {
			step(batch)
		}
		if err := batch.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
		batch.Close()
	}
	// Warm up: fill every session window and create every file.
	for i := 0; i < 2*sessions*sessionWindow/perBatch; i++ {
		ready()
	}
	b.SetBytes(1024)
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		ready()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perBatch), "ns/entry")
	cpu.report(b.N*perBatch, "entry")
}

// cpuClock measures the CPU time (user + system) of the whole process,
// Pebble's background work included: steadier than wall time on a busy
// machine.
type cpuClock struct {
	b     *testing.B
	start int64
}

func cpuNow(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// startCPU resets the benchmark timer and starts measuring CPU time.
func startCPU(b *testing.B) cpuClock {
	b.ResetTimer()
	return cpuClock{b: b, start: cpuNow(b)}
}

// report adds the metric "cpu-ns/<unit>": CPU time over n units of work.
func (c cpuClock) report(n int, unit string) {
	c.b.ReportMetric(float64(cpuNow(c.b)-c.start)/float64(n), "cpu-ns/"+unit)
}

// BenchmarkGet1KiB reads whole 1 KiB files (of 1,000, kept inline) from
// the committed state, as a node serves the loadgen's get workload after ReadIndex:
// "alone" opens a view per read, "view-16" shares one among 16 reads, as
// the reads of one round on a busy leader do.
func BenchmarkGet1KiB(b *testing.B) {
	for _, perView := range []int{1, 16} {
		name := "alone"
		if perView > 1 {
			name = fmt.Sprintf("view-%d", perView)
		}
		b.Run(name, func(b *testing.B) { benchGet(b, perView) })
	}
}

func benchGet(b *testing.B, perView int) {
	db, f := benchFSM(b)
	batch := db.NewIndexedBatch()
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 1024)
	const files = 1000
	for i := range files {
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		cmd, _ := EncodeCommand(&Command{Op: wire.OpPut, Path: fmt.Sprintf("/get-%03d/f%08d", i%16, i/16), Data: data, Flags: wire.FlagParents, Time: 1, InlineSize: DefaultInlineSize})
		if res := f.Apply(batch, uint64(i+1), cmd); res.Code != wire.OK {
			b.Fatal(res.Message)
		}
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		b.Fatal(err)
	}
	if err := db.Flush(); err != nil { // read from sstables, as a node mostly does
		b.Fatal(err)
	}
	b.SetBytes(1024)
	b.ReportAllocs()
	cpu := startCPU(b)
	var v *View
	for i := 0; b.Loop(); i++ {
		if i%perView == 0 {
			if v != nil {
				v.Close()
			}
			v = f.NewView()
		}
		fi := r.IntN(files)
		if _, _, err := v.Read(fmt.Sprintf("/get-%03d/f%08d", fi%16, fi/16), 0, 0, -1); err != nil {
			b.Fatal(err)
		}
	}
	v.Close()
	cpu.report(b.N, "op")
}

// benchFSM is a bootstrapped FSM owning the whole ring over a fresh DB
// with a node's Pebble options.
func benchFSM(b *testing.B) (*pebble.DB, *FSM) {
	db, err := pebble.Open(b.TempDir(), PebbleOptions(quietLogger{}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	f := mustFSM(db)
	boot := db.NewIndexedBatch()
	if err := f.Bootstrap(boot, wire.Range{}); err != nil {
		b.Fatal(err)
	}
	if err := boot.Commit(pebble.NoSync); err != nil {
		b.Fatal(err)
	}
	return db, f
}

// BenchmarkCommandCodec encodes (as the leader proposes) and decodes (as
// every replica applies) the Command of a 1 KiB put with a session.
func BenchmarkCommandCodec(b *testing.B) {
	c := &Command{Op: wire.OpPut, Path: "/load-007/f00000042", Data: make([]byte, 1024), Flags: wire.FlagParents,
		Time: 1_700_000_000_000_000_000, Clock: 1_700_000_000_000_000_000, Session: 12345, Seq: 678,
		ChunkSize: DefaultChunkSize, SessionTTL: DefaultSessionTTL, ChunkTTL: DefaultChunkTTL}
	p, err := EncodeCommand(c)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := EncodeCommand(c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeCommand(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
