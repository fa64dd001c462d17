package replica

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cleavefs/cleave/internal/durable"
)

func testEntry(index, term uint64) *pb.Entry {
	return &pb.Entry{Index: new(index), Term: new(term), Data: fmt.Appendf(nil, "entry %d of term %d", index, term)}
}

func testEntries(from, to, term uint64) []*pb.Entry {
	var out []*pb.Entry
	for i := from; i <= to; i++ {
		out = append(out, testEntry(i, term))
	}
	return out
}

// appendSync writes ents as one Ready does: prepared, written and synced,
// committed.
func appendSync(t *testing.T, l *segLog, ents ...*pb.Entry) {
	t.Helper()
	if err := l.append(ents); err != nil {
		t.Fatal(err)
	}
}

// checkLog requires l to hold exactly want, read back from its files.
func checkLog(t *testing.T, l *segLog, want []*pb.Entry) {
	t.Helper()
	first := want[0].GetIndex()
	if l.first != first || l.lastIndex() != want[len(want)-1].GetIndex() {
		t.Fatalf("log holds [%d, %d], want [%d, %d]", l.first, l.lastIndex(), first, want[len(want)-1].GetIndex())
	}
	for _, w := range want {
		got, err := l.entry(w.GetIndex())
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, w) || l.term(w.GetIndex()) != w.GetTerm() {
			t.Fatalf("entry %d = %v (term %d), want %v", w.GetIndex(), got, l.term(w.GetIndex()), w)
		}
	}
}

func openTestSegLog(t *testing.T, fs vfs.FS, gen, trunc uint64) *segLog {
	t.Helper()
	l, stale, err := openSegLog(fs, "/log", gen, trunc, 200)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) > 0 {
		t.Fatalf("stale segments %v", stale)
	}
	return l
}

// TestSegLogReopens writes entries over several segments, with a
// follower's conflicting suffix replaced, and reads the same log back
// after a reopen.
func TestSegLogReopens(t *testing.T) {
	fs := vfs.NewMem()
	l := openTestSegLog(t, fs, 7, 0)
	want := testEntries(1, 30, 1)
	for _, e := range want {
		appendSync(t, l, e)
	}
	if len(l.segs) < 3 {
		t.Fatalf("%d segments, want several (200 bytes each)", len(l.segs))
	}
	// Entries 6.. of term 1 (in the first segments) conflict with the
	// new leader's of term 2.
	repl := testEntries(6, 8, 2)
	appendSync(t, l, repl...)
	want = append(want[:5], repl...)
	checkLog(t, l, want)
	l.close()

	l = openTestSegLog(t, fs, 7, 0)
	checkLog(t, l, want)
	appendSync(t, l, testEntry(9, 2))
	l.close()
	l = openTestSegLog(t, fs, 7, 0)
	checkLog(t, l, append(want, testEntry(9, 2)))
	l.close()
}

// TestSegLogTornTail tears the last write: the log ends at the last whole
// record, and later writes replace the torn bytes.
func TestSegLogTornTail(t *testing.T) {
	for _, tear := range []int{1, recordHeader, recordHeader + 3} {
		t.Run(fmt.Sprintf("tear %d bytes in", tear), func(t *testing.T) {
			fs := vfs.NewMem()
			l := openTestSegLog(t, fs, 7, 0)
			appendSync(t, l, testEntries(1, 2, 1)...)
			s := l.segs[len(l.segs)-1]
			w, err := l.prepare([]*pb.Entry{testEntry(3, 1)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.f.WriteAt(w.buf[:tear], w.off); err != nil {
				t.Fatal(err)
			}
			l.close()

			l = openTestSegLog(t, fs, 7, 0)
			checkLog(t, l, testEntries(1, 2, 1))
			appendSync(t, l, testEntry(3, 2))
			l.close()
			l = openTestSegLog(t, fs, 7, 0)
			checkLog(t, l, append(testEntries(1, 2, 1), testEntry(3, 2)))
			l.close()
		})
	}
}

// TestSegLogGapFails loses the tail of a segment that is not the last:
// the entries it held are missing, and open fails instead of serving a
// log with a hole.
func TestSegLogGapFails(t *testing.T) {
	fs := vfs.NewMem()
	l := openTestSegLog(t, fs, 7, 0)
	for _, e := range testEntries(1, 10, 1) {
		appendSync(t, l, e)
	}
	first := l.segs[0]
	if len(l.segs) < 2 || first.last < 2 {
		t.Fatalf("want a first segment with two entries or more, have %d segments", len(l.segs))
	}
	// Corrupt the first segment's last record's checksum.
	p := l.pos[first.last-l.first]
	if _, err := first.f.WriteAt([]byte{0, 0, 0, 0}, p.off-4); err != nil {
		t.Fatal(err)
	}
	l.close()
	_, _, err := openSegLog(fs, "/log", 7, 0, 200)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("entry %d follows %d", first.last+1, first.last-1)) {
		t.Fatalf("open with a lost entry: %v, want a gap error", err)
	}
}

// TestSegLogRecycles compacts segments into spares and starts new ones in
// them: the files stay few, and what a spare held before is never read.
func TestSegLogRecycles(t *testing.T) {
	fs := &countingFS{FS: vfs.NewMem()}
	l := openTestSegLog(t, fs, 7, 0)
	var want []*pb.Entry
	for i := uint64(1); i <= 60; i++ {
		e := testEntry(i, 1)
		appendSync(t, l, e)
		want = append(want, e)
		if i%10 == 0 {
			if err := l.compact(i - 3); err != nil {
				t.Fatal(err)
			}
			want = want[len(want)-3:]
			checkLog(t, l, want)
		}
	}
	names, err := fs.List("/log")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) > len(l.segs)+maxSpares {
		t.Errorf("log directory holds %v: more than %d segments and %d spares", names, len(l.segs), maxSpares)
	}
	if len(l.spares) == 0 || !slices.ContainsFunc(names, isSpareName) {
		t.Errorf("no spare kept: %v", names)
	}
	if last := l.segs[len(l.segs)-1].seq; uint64(fs.creates) >= last {
		t.Errorf("%d files created for %d segments: none was started in a spare", fs.creates, last)
	}
	l.close()
	l = openTestSegLog(t, fs, 7, 57)
	checkLog(t, l, want)
	l.close()
}

// countingFS counts the files created through it.
type countingFS struct {
	vfs.FS
	creates int
}

func (fs *countingFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	fs.creates++
	return fs.FS.Create(name, c)
}

// TestSegLogStaleGenerations reports the segments of other generations,
// which a snapshot or a fork left behind, for removal.
func TestSegLogStaleGenerations(t *testing.T) {
	fs := vfs.NewMem()
	l := openTestSegLog(t, fs, 7, 0)
	appendSync(t, l, testEntries(1, 3, 1)...)
	l.close()
	l, stale, err := openSegLog(fs, "/log", 8, 10, 200)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	if l.lastIndex() != 10 || len(stale) != 1 || !strings.HasSuffix(stale[0], segmentName(7, 1)) {
		t.Fatalf("generation 8 over generation 7's files: last %d, stale %v", l.lastIndex(), stale)
	}
}

// TestLogMovesOutOfDB opens a store that holds its log in the DB, as
// stores did before the segment files: the entries move into a segment,
// leave the DB, and serve as before; a crash before the move is recorded
// leaves a segment that the next open removes.
func TestLogMovesOutOfDB(t *testing.T) {
	fs := vfs.NewMem()
	db, err := pebble.Open("/db", &pebble.Options{FS: fs, Logger: quietPebble{}, DisableWAL: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	st := newLogStore(db, DefaultConfig().Prefix)
	st.fs, st.dir, st.segBytes = fs, "/log", 300
	b := db.NewBatch()
	ents := testEntries(4, 20, 2)
	for _, e := range append(testEntries(1, 3, 2), ents...) {
		v, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Set(st.logKey(e.GetIndex()), v, nil); err != nil {
			t.Fatal(err)
		}
	}
	hs, err := proto.Marshal(&pb.HardState{Term: new(uint64(2)), Commit: new(uint64(15))})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string][]byte{
		string(st.keyHS):      hs,
		string(st.keyTrunc):   truncValue(3, 2),
		string(st.keyApplied): binary.BigEndian.AppendUint64(nil, 12),
	} {
		if err := b.Set([]byte(k), v, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := durable.Commit(db, b); err != nil {
		t.Fatal(err)
	}
	// A segment of an earlier attempt, never recorded.
	old, _, err := openSegLog(fs, "/log", 99, 3, 300)
	if err != nil {
		t.Fatal(err)
	}
	appendSync(t, old, testEntry(4, 2))
	old.close()

	for range 2 { // the move, then an open of the moved log
		found, err := st.load()
		if err != nil {
			t.Fatal(err)
		}
		if !found || st.truncIndex != 3 || st.lastIndex != 20 || st.applied != 12 {
			t.Fatalf("loaded: found %v, trunc %d, last %d, applied %d", found, st.truncIndex, st.lastIndex, st.applied)
		}
		got, err := st.Entries(4, 21, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(ents) {
			t.Fatalf("%d entries, want %d", len(got), len(ents))
		}
		for i := range got {
			if !proto.Equal(got[i], ents[i]) {
				t.Fatalf("entry %d = %v, want %v", ents[i].GetIndex(), got[i], ents[i])
			}
		}
		if n := logKeys(t, db); n != 0 {
			t.Fatalf("%d log keys left in the DB", n)
		}
		names, err := fs.List("/log")
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if gen, _, ok := parseSegmentName(n); !ok || gen == 99 {
				t.Fatalf("log directory holds %v", names)
			}
		}
		st.close()
	}
}

// TestRecordBelongsToItsSegment checks that a record reads only in the
// segment it was written to: a spare's old records end the records of its
// next life instead of joining them.
func TestRecordBelongsToItsSegment(t *testing.T) {
	fs := vfs.NewMem()
	l := openTestSegLog(t, fs, 7, 0)
	defer l.close()
	w, err := l.prepare([]*pb.Entry{testEntry(1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := readRecord(w.buf, 7, w.seg.seq); err != nil {
		t.Fatalf("record in its own segment: %v", err)
	}
	for _, other := range [][2]uint64{{7, w.seg.seq + 1}, {8, w.seg.seq}} {
		if _, _, err := readRecord(w.buf, other[0], other[1]); err == nil {
			t.Errorf("record of segment (7, %d) reads as one of (%d, %d)", w.seg.seq, other[0], other[1])
		}
	}
}

// TestSegLogRefusesGap: a write that would leave a gap after the last
// entry is refused before anything is written.
func TestSegLogRefusesGap(t *testing.T) {
	fs := vfs.NewMem()
	l, _, err := openSegLog(fs, "/log", 1, 0, 256)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	appendSync(t, l, testEntries(1, 2, 1)...)
	if _, err := l.prepare([]*pb.Entry{testEntry(4, 1)}); err == nil || !strings.Contains(err.Error(), "append at 4 leaves a gap after 2") {
		t.Fatalf("prepare of entry 4 after 2: %v, want the gap named", err)
	}
	checkLog(t, l, testEntries(1, 2, 1))
}

// TestSegLogWritesAheadOfItsEnd appends small entries to a new segment:
// only a few writes make its file longer (each fdatasync after one also
// writes the file's size and blocks), the rest overwrite the zeros an
// earlier write left past its records. The zeros end the records at
// open, and the next write after a reopen follows the last record.
func TestSegLogWritesAheadOfItsEnd(t *testing.T) {
	fs := &growthFS{FS: vfs.NewMem()}
	const maxBytes = 32 << 10
	l, _, err := openSegLog(fs, "/log", 7, 0, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	want := testEntries(1, 3000, 1)
	for _, e := range want {
		appendSync(t, l, e)
	}
	if len(l.segs) < 2 {
		t.Fatalf("%d segments, want the entries to fill more than one", len(l.segs))
	}
	if fs.writes < len(want) {
		t.Fatalf("%d writes for %d appends", fs.writes, len(want))
	}
	if limit := 8 * len(l.segs); fs.grew > limit {
		t.Errorf("%d of %d writes made a segment's file longer, want at most %d for %d segments", fs.grew, fs.writes, limit, len(l.segs))
	}
	l.close()
	l, _, err = openSegLog(fs, "/log", 7, 0, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	next := testEntry(3001, 2)
	appendSync(t, l, next)
	l.close()
	l, _, err = openSegLog(fs, "/log", 7, 0, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	checkLog(t, l, append(want, next))
	l.close()
}

// growthFS counts the writes to files opened for writing through it, and
// those that made a file longer.
type growthFS struct {
	vfs.FS
	writes, grew int
}

func (fs *growthFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	if err != nil {
		return nil, err
	}
	return &growthFile{File: f, fs: fs}, nil
}

type growthFile struct {
	vfs.File
	fs *growthFS
}

func (f *growthFile) WriteAt(p []byte, off int64) (int, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	f.fs.writes++
	if off+int64(len(p)) > st.Size() {
		f.fs.grew++
	}
	return f.File.WriteAt(p, off)
}
