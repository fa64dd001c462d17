package loadgen

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// The YCSB core workloads (Cooper et al., "Benchmarking cloud serving
// systems with YCSB", SoCC 2010), over files: a record is a file of Size,
// read is a whole-file get, update and insert are whole-file puts (insert
// of a new file), scan lists the first 1 to 100 entries (uniform) of the
// root directory of a record, read-modify-write gets a file and puts it
// back. Their load phase is the preload: the Files records (--records),
// spread over the roots as every workload's files are.
const (
	YCSBA Workload = "ycsb-a" // update heavy: 50% read, 50% update, zipfian
	YCSBB Workload = "ycsb-b" // read mostly: 95% read, 5% update, zipfian
	YCSBC Workload = "ycsb-c" // read only, zipfian
	YCSBD Workload = "ycsb-d" // read latest: 95% read, 5% insert, latest
	YCSBE Workload = "ycsb-e" // short ranges: 95% scan, 5% insert, zipfian
	YCSBF Workload = "ycsb-f" // read-modify-write: 50% read, 50% read-modify-write, zipfian
)

// maxScanLength is YCSB's default maxscanlength: a scan lists 1 to 100
// entries, uniformly.
const maxScanLength = 100

// ycsbMix is a YCSB workload's operation proportions (summing to 1) and its
// request distribution.
type ycsbMix struct {
	read, update, insert, scan, rmw float64
	dist                            Dist
}

var ycsbMixes = map[Workload]ycsbMix{
	YCSBA: {read: 0.5, update: 0.5, dist: Zipf},
	YCSBB: {read: 0.95, update: 0.05, dist: Zipf},
	YCSBC: {read: 1, dist: Zipf},
	YCSBD: {read: 0.95, insert: 0.05, dist: Latest},
	YCSBE: {scan: 0.95, insert: 0.05, dist: Zipf},
	YCSBF: {read: 0.5, rmw: 0.5, dist: Zipf},
}

// isYCSB reports whether w is one of the YCSB core workloads.
func isYCSB(w Workload) bool { _, ok := ycsbMixes[w]; return ok }

// Scanner is what ycsb-e needs: a listing of at most limit entries of a
// directory from its start. Checked at run time.
type Scanner interface {
	// Scan lists up to limit entries directly under dir and returns how
	// many it got.
	Scan(ctx context.Context, dir string, limit int) (int, error)
}

// insertSeq hands out the indexes of inserted files, from the record count
// up, and says how many files are readable: every index below Readable was
// acknowledged (successfully or not), like YCSB's
// AcknowledgedCounterGenerator, so a read never races the insert of its
// file. Safe for concurrent use.
type insertSeq struct {
	next     atomic.Int64
	readable atomic.Int64

	mu   sync.Mutex
	done map[int64]bool // acknowledged indexes at or above readable
}

func newInsertSeq(records int64) *insertSeq {
	s := &insertSeq{done: map[int64]bool{}}
	s.next.Store(records)
	s.readable.Store(records)
	return s
}

// Next returns the index of the next file to insert.
func (s *insertSeq) Next() int64 { return s.next.Add(1) - 1 }

// Ack notes that the insert of index i returned.
func (s *insertSeq) Ack(i int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done[i] = true
	r := s.readable.Load()
	for s.done[r] {
		delete(s.done, r)
		r++
	}
	s.readable.Store(r)
}

// Readable returns the number of files reads may choose from.
func (s *insertSeq) Readable() int64 { return s.readable.Load() }

// ycsb performs one operation of a YCSB workload.
func (w *worker) ycsb(ctx context.Context) (string, int64, error) {
	m := ycsbMixes[w.cfg.Workload]
	x := w.r.Float64()
	switch {
	case x < m.read:
		d, err := w.store.Get(ctx, w.names.File(w.read.Next()))
		return "read", int64(len(d)), err
	case x < m.read+m.update:
		d := w.data()
		return "update", int64(len(d)), w.store.Put(ctx, w.names.File(w.read.Next()), d)
	case x < m.read+m.update+m.insert:
		i := w.seq.Next()
		d := w.data()
		err := w.store.Put(ctx, w.names.File(i), d)
		w.seq.Ack(i)
		return "insert", int64(len(d)), err
	case x < m.read+m.update+m.insert+m.scan:
		dir := w.names.Root(w.read.Next() % w.cfg.Roots)
		n, err := w.store.(Scanner).Scan(ctx, dir, 1+w.r.IntN(maxScanLength))
		return "scan", int64(n), err
	}
	path := w.names.File(w.read.Next())
	old, err := w.store.Get(ctx, path)
	if err != nil {
		return "read-modify-write", int64(len(old)), err
	}
	d := w.data()
	return "read-modify-write", int64(len(old) + len(d)), w.store.Put(ctx, path, d)
}

// ycsbSupports returns nil if store has what YCSB workload w needs.
func ycsbSupports(store Store, w Workload) error {
	if ycsbMixes[w].scan > 0 {
		if _, ok := store.(Scanner); !ok {
			return fmt.Errorf("workload %s: %w (this target has no limited listing)", w, ErrNotSupported)
		}
	}
	return nil
}
