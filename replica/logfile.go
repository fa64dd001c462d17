package replica

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The log's entries live in append-only segment files in Config.LogDir,
// not in the DB: an entry is written once, fsynced, and deleted with its
// file, where in the DB it went to Pebble's WAL and memtable, was flushed
// and compacted, and was then deleted again (docs/benchmarks.md, seventh
// pass).
//
// A segment is named gen-seq.log (both 16 hex digits) and holds records
//
//	le32(len) le32(crc32c(le64(gen) le64(seq) payload)) payload
//
// whose payload is one proto-marshalled raftpb.Entry. Records are only
// appended; an entry at an index the log already holds replaces that
// entry and every later one (a follower's conflicting suffix), so reading
// the segments in order rebuilds the log. A segment's records end at the
// first that does not check: the tail of a write a crash tore (each
// Ready's entries are one write and one fsync, so nothing after it was
// acknowledged), or what the file held before it was recycled.
//
// Segment files are recycled: a compacted segment is kept as a spare
// (spare-id.log) and becomes the next segment, overwritten in place.
// Overwriting blocks a file already has makes each fsync a data-only
// flush, where appending also commits the file's new size to the file
// system's journal: about a third less time and CPU per fsync on this
// project's test machine (Pebble recycles its WAL files for the same
// reason). The gen and seq in each record's checksum make the records a
// spare held before invalid in its new life.
//
// A new file gets the same treatment as it fills: a write that passes the
// end of the file also writes zeros after its records, as many as the file
// holds already (at least 64 KiB, at most 1 MiB, never past a sixteenth
// beyond segmentBytes), and the writes after it overwrite them. So about
// nine writes of a new 4 MiB segment grow its file instead of every one,
// and a new log's first segments cost what recycled ones do. The zeros end
// the records at open like any record that does not check.
//
// gen is the log's generation, recorded in the DB (p+"logid") atomically
// with the log's start (p+"trunc"): a snapshot or a fork replaces both, so
// segments of any other generation hold entries of a log that no longer
// exists. They are removed at open, once the DB is flushed (the record of
// the new generation is then durable).

const (
	// segmentBytes is the size past which the next write starts a new
	// segment. Compaction deletes whole segments.
	segmentBytes = 4 << 20
	// minZeroAhead and maxZeroAhead bound the zeros a write that grows a
	// segment's file leaves after its records.
	minZeroAhead = 64 << 10
	maxZeroAhead = 1 << 20
	recordHeader = 8
	// maxSpares is how many compacted segments are kept for recycling.
	maxSpares = 2
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// segment is one segment file, open for reading and appending.
type segment struct {
	name string // full path
	seq  uint64
	f    vfs.File
	size int64 // bytes of whole records; the next write goes here
	// zeroed is the length of the file: records, then the zeros a write
	// left after them, or what a spare held before.
	zeroed int64
	last   uint64 // highest index ever written to it
}

// entryPos is where an entry's payload lies.
type entryPos struct {
	seg  *segment
	off  int64
	n    uint32
	term uint64
}

// segLog is the log's entries after the truncated index, in segment files.
// Like logStore it is the loop's: only the write of a prepared segWrite
// may run elsewhere (on the writer goroutine), while the loop reads
// nothing it changes (the loop takes no Ready until the write is done).
type segLog struct {
	fs       vfs.FS
	dir      string
	gen      uint64
	maxBytes int64
	segs     []*segment
	spares   []string   // files kept for the next segments
	first    uint64     // index of pos[0]
	pos      []entryPos // entries first .. first+len(pos)-1
	// spare is the buffer of the last committed write, kept (under
	// maxSpareBuffer) for the next prepare to encode into.
	spare []byte
}

// maxSpareBuffer bounds the write buffer a segLog keeps between writes.
const maxSpareBuffer = 4 << 20

// segWrite is one Ready's entries encoded for their segment.
type segWrite struct {
	seg *segment
	off int64
	buf []byte     // the records, then any zeros written ahead of them
	end int64      // where the records end in the file
	pos []entryPos // the entries' positions, in order
	idx uint64     // index of pos[0]
}

// write appends the records and syncs them: on the writer goroutine, or
// on the loop when it writes in place.
func (w *segWrite) write() error {
	if _, err := w.seg.f.WriteAt(w.buf, w.off); err != nil {
		return fmt.Errorf("write log segment %s: %w", w.seg.name, err)
	}
	if err := w.seg.f.SyncData(); err != nil {
		return fmt.Errorf("sync log segment %s: %w", w.seg.name, err)
	}
	return nil
}

func segmentName(gen, seq uint64) string { return fmt.Sprintf("%016x-%016x.log", gen, seq) }

// spareName names a spare file by a random id: spares outlive generations.
func spareName(id uint64) string { return fmt.Sprintf("spare-%016x.log", id) }

func isSpareName(name string) bool {
	var id uint64
	_, err := fmt.Sscanf(name, "spare-%016x.log", &id)
	return err == nil && len(name) == len("spare-")+16+len(".log")
}

func parseSegmentName(name string) (gen, seq uint64, ok bool) {
	var g, s uint64
	if len(name) != 16+1+16+4 || !strings.HasSuffix(name, ".log") {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(name, "%016x-%016x.log", &g, &s); err != nil {
		return 0, 0, false
	}
	return g, s, true
}

// newLogGen returns a fresh log generation: random, so that a fork, which
// writes it into a batch without looking at the log directory, needs no
// coordination. Zero is never returned (it means "none recorded").
func newLogGen() uint64 {
	for {
		if g := rand.Uint64(); g != 0 {
			return g
		}
	}
}

// openSegLog opens generation gen's segments in dir and rebuilds the log
// after trunc from them. It returns the names of every other generation's
// segments, which the caller removes once gen is durable (removeStale).
func openSegLog(fs vfs.FS, dir string, gen, trunc uint64, maxBytes int64) (*segLog, []string, error) {
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("log dir: %w", err)
	}
	if err := syncDir(fs, fs.PathDir(dir)); err != nil { // the directory's entry in its parent
		return nil, nil, err
	}
	names, err := fs.List(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("log dir: %w", err)
	}
	l := &segLog{fs: fs, dir: dir, gen: gen, maxBytes: maxBytes, first: trunc + 1}
	var stale []string
	for _, n := range names {
		g, seq, ok := parseSegmentName(n)
		switch {
		case !ok:
			if isSpareName(n) {
				l.spares = append(l.spares, fs.PathJoin(dir, n))
			}
		case g != gen:
			stale = append(stale, fs.PathJoin(dir, n))
		default:
			l.segs = append(l.segs, &segment{name: fs.PathJoin(dir, n), seq: seq})
		}
	}
	slices.SortFunc(l.segs, func(a, b *segment) int { return cmp.Compare(a.seq, b.seq) })
	for _, s := range l.segs {
		if err := l.load(s); err != nil {
			l.close()
			return nil, nil, err
		}
	}
	return l, stale, nil
}

// load opens s and adds its records to the log, up to the first that
// does not check. Entries missing from a segment that is not the last show
// as a gap before the next segment's, and fail.
func (l *segLog) load(s *segment) error {
	data, err := l.readAll(s.name)
	if err != nil {
		return err
	}
	off := int64(0)
	for off < int64(len(data)) {
		e, n, err := readRecord(data[off:], l.gen, s.seq)
		if err != nil {
			break
		}
		idx := e.GetIndex()
		s.last = max(s.last, idx)
		if idx >= l.first {
			if err := l.put(idx, entryPos{seg: s, off: off + recordHeader, n: uint32(n - recordHeader), term: e.GetTerm()}); err != nil {
				return fmt.Errorf("log segment %s at offset %d: %w", s.name, off, err)
			}
		}
		off += int64(n)
	}
	s.size = off
	s.zeroed = int64(len(data))
	if s.f, err = l.fs.OpenReadWrite(s.name, vfs.WriteCategoryUnspecified); err != nil {
		return fmt.Errorf("open log segment: %w", err)
	}
	return nil
}

func (l *segLog) readAll(name string) ([]byte, error) {
	f, err := l.fs.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open log segment: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat log segment %s: %w", name, err)
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("read log segment %s: %w", name, err)
	}
	return data, nil
}

// recordSum is a record's checksum: of its payload, seeded with the
// segment it was written to.
func recordSum(gen, seq uint64, payload []byte) uint32 {
	var id [16]byte
	binary.LittleEndian.PutUint64(id[:], gen)
	binary.LittleEndian.PutUint64(id[8:], seq)
	return crc32.Update(crc32.Checksum(id[:], crcTable), crcTable, payload)
}

// readRecord decodes the record of segment (gen, seq) at the start of b
// and returns it with its length.
func readRecord(b []byte, gen, seq uint64) (*pb.Entry, int, error) {
	if len(b) < recordHeader {
		return nil, 0, errors.New("short record header")
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n == 0 || n > len(b)-recordHeader {
		return nil, 0, fmt.Errorf("record of %d bytes with %d left", n, len(b)-recordHeader)
	}
	payload := b[recordHeader : recordHeader+n]
	if recordSum(gen, seq, payload) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, 0, errors.New("record checksum mismatch")
	}
	e := &pb.Entry{}
	if err := proto.Unmarshal(payload, e); err != nil {
		return nil, 0, fmt.Errorf("decode entry: %w", err)
	}
	return e, recordHeader + n, nil
}

// lastIndex returns the last index the log holds, or first-1 if none.
func (l *segLog) lastIndex() uint64 { return l.first + uint64(len(l.pos)) - 1 }

// put records entry idx at p: after the last, or replacing idx and every
// later entry.
func (l *segLog) put(idx uint64, p entryPos) error {
	if last := l.lastIndex(); idx > last+1 {
		return fmt.Errorf("entry %d follows %d", idx, last)
	}
	l.place(idx, p)
	return nil
}

// place makes p entry idx, which is at most one past the last index,
// dropping the entries from idx on.
func (l *segLog) place(idx uint64, p entryPos) {
	if idx <= l.lastIndex() {
		clear(l.pos[idx-l.first:])
		l.pos = l.pos[:idx-l.first]
	}
	l.pos = append(l.pos, p)
}

// prepare encodes ents, which start at most one past the last index, as
// the records of one write at the end of the last segment, which it
// starts first if there is none or it is full.
func (l *segLog) prepare(ents []*pb.Entry) (*segWrite, error) {
	if first, last := ents[0].GetIndex(), l.lastIndex(); first > last+1 {
		return nil, fmt.Errorf("replica: append at %d leaves a gap after %d", first, last)
	}
	if len(l.segs) == 0 || l.segs[len(l.segs)-1].size >= l.maxBytes {
		if err := l.roll(); err != nil {
			return nil, err
		}
	}
	s := l.segs[len(l.segs)-1]
	w := &segWrite{seg: s, off: s.size, idx: ents[0].GetIndex(), buf: l.spare[:0]}
	l.spare = nil
	for _, e := range ents {
		start := len(w.buf)
		w.buf = append(w.buf, make([]byte, recordHeader)...)
		var err error
		if w.buf, err = (proto.MarshalOptions{}).MarshalAppend(w.buf, e); err != nil {
			return nil, fmt.Errorf("encode log entry %d: %w", e.GetIndex(), err)
		}
		payload := w.buf[start+recordHeader:]
		binary.LittleEndian.PutUint32(w.buf[start:], uint32(len(payload)))
		binary.LittleEndian.PutUint32(w.buf[start+4:], recordSum(l.gen, s.seq, payload))
		w.pos = append(w.pos, entryPos{seg: s, off: s.size + int64(start) + recordHeader, n: uint32(len(payload)), term: e.GetTerm()})
	}
	w.end = w.off + int64(len(w.buf))
	if pad := l.zeroTo(s, w.end) - w.end; pad > 0 {
		w.buf = append(w.buf, make([]byte, pad)...)
	}
	return w, nil
}

// zeroTo is the length segment s's file should have after a write whose
// records end at end: end, or past it by as many bytes as the file holds
// (within the zero-ahead bounds and the segment's expected length) when
// the write grows the file.
func (l *segLog) zeroTo(s *segment, end int64) int64 {
	if end <= s.zeroed {
		return end
	}
	step := min(max(s.zeroed, minZeroAhead), maxZeroAhead)
	return max(end, min(s.zeroed+step, l.maxBytes+l.maxBytes/16))
}

// roll starts a new last segment, in a spare file if there is one.
func (l *segLog) roll() error {
	seq := uint64(1)
	if len(l.segs) > 0 {
		seq = l.segs[len(l.segs)-1].seq + 1
	}
	name := l.fs.PathJoin(l.dir, segmentName(l.gen, seq))
	if n := len(l.spares); n > 0 {
		if err := l.fs.Rename(l.spares[n-1], name); err != nil {
			return fmt.Errorf("recycle log segment: %w", err)
		}
		l.spares = l.spares[:n-1]
	} else {
		f, err := l.fs.Create(name, vfs.WriteCategoryUnspecified)
		if err != nil {
			return fmt.Errorf("create log segment: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("create log segment: %w", err)
		}
	}
	if err := l.syncDir(); err != nil {
		return err
	}
	f, err := l.fs.OpenReadWrite(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("open log segment: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat log segment %s: %w", name, err)
	}
	l.segs = append(l.segs, &segment{name: name, seq: seq, f: f, zeroed: st.Size()})
	return nil
}

func (l *segLog) syncDir() error { return syncDir(l.fs, l.dir) }

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("sync log dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync log dir: %w", err)
	}
	return nil
}

// commit makes w's entries the log's, once w is written. Nothing may
// change the log between prepare, which checked that the entries follow
// it, and commit.
func (l *segLog) commit(w *segWrite) {
	w.seg.size = w.end
	w.seg.zeroed = max(w.seg.zeroed, w.off+int64(len(w.buf)))
	for i, p := range w.pos {
		w.seg.last = max(w.seg.last, w.idx+uint64(i))
		l.place(w.idx+uint64(i), p)
	}
	if cap(w.buf) <= maxSpareBuffer {
		l.spare = w.buf[:0]
	}
	w.buf = nil
}

// append prepares, writes and syncs, and commits ents at once.
func (l *segLog) append(ents []*pb.Entry) error {
	w, err := l.prepare(ents)
	if err != nil {
		return err
	}
	if err := w.write(); err != nil {
		return err
	}
	l.commit(w)
	return nil
}

// entry reads entry i, which the log holds.
func (l *segLog) entry(i uint64) (*pb.Entry, error) {
	p := l.pos[i-l.first]
	b := make([]byte, p.n)
	if _, err := p.seg.f.ReadAt(b, p.off); err != nil {
		return nil, fmt.Errorf("read log entry %d: %w", i, err)
	}
	e := &pb.Entry{}
	if err := proto.Unmarshal(b, e); err != nil {
		return nil, fmt.Errorf("decode log entry %d: %w", i, err)
	}
	if e.GetIndex() != i {
		return nil, fmt.Errorf("replica: log entry %d found where %d expected", e.GetIndex(), i)
	}
	return e, nil
}

// term returns the term of entry i, which the log holds.
func (l *segLog) term(i uint64) uint64 { return l.pos[i-l.first].term }

// compact forgets the entries up to to and removes the segments that hold
// nothing after it (never the last), keeping up to maxSpares of them for
// reuse. The caller has made the log's new start durable. The directory
// is synced after a removal, as the file system may persist it at any
// time anyway (and a crash-clone test then sees it).
func (l *segLog) compact(to uint64) error {
	if to >= l.first {
		drop := min(to+1-l.first, uint64(len(l.pos)))
		clear(l.pos[:drop])
		l.pos = l.pos[drop:]
		l.first = to + 1
	}
	if len(l.segs) < 2 || l.segs[0].last > to {
		return nil
	}
	for len(l.segs) > 1 && l.segs[0].last <= to {
		s := l.segs[0]
		s.f.Close()
		l.segs = l.segs[1:]
		if len(l.spares) < maxSpares {
			spare := l.fs.PathJoin(l.dir, spareName(newLogGen()))
			if err := l.fs.Rename(s.name, spare); err != nil {
				return fmt.Errorf("keep log segment for reuse: %w", err)
			}
			l.spares = append(l.spares, spare)
			continue
		}
		if err := l.fs.Remove(s.name); err != nil {
			return fmt.Errorf("remove log segment: %w", err)
		}
	}
	return l.syncDir()
}

// close closes the segment files.
func (l *segLog) close() {
	for _, s := range l.segs {
		if s.f != nil {
			s.f.Close()
		}
	}
	l.segs, l.pos = nil, nil
}
