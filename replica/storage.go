package replica

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cleavefs/cleave/internal/durable"
)

// Key layout under Config.Prefix (p):
//
//	p+"logid"            → be64(generation) of the log's segment files in
//	                       Config.LogDir (logfile.go), which hold its entries
//	p+"log/"+be64(index) → proto-marshalled raftpb.Entry: where stores
//	                       written before the segment files kept the log;
//	                       moved into a segment at open (migrateLog)
//	p+"hs"               → proto-marshalled raftpb.HardState
//	p+"cs"               → proto-marshalled raftpb.ConfState
//	p+"applied"          → be64(applied index); written in the same batch as
//	                       the state machine writes that produced it
//	p+"trunc"            → be64(index) be64(term) of the last entry removed
//	                       from the log (the log's first index is index+1)
//	p+"member/"+be64(id) → the member's address (from bootstrap's PeerAddrs
//	                       or a membership change's context)
//	p+"group"            → be64(epoch) name: the raft group (group.go)
//
// A new group bootstraps with trunc = (1, 1), HardState {Term: 1, Commit: 1}
// and applied = 1: the initial state (ConfState, member addresses, whatever
// the caller wrote into the state machine before Open) counts as a snapshot
// at index 1 that every bootstrapped member holds. A node that joins with an
// empty DB has none of it, and since no log holds index 1 the leader must
// send it a snapshot (snapshot.go).
//
// Compaction to index i sets trunc to (i, term(i)) in a synced batch, then
// deletes the segments that hold nothing after i. "Replica-owned" keys are
// the ones above except member/: a snapshot carries every other key of the
// DB, member addresses included.

const (
	// cacheMaxEntries and cacheMaxBytes bound the in-memory tail of the log
	// that spares Pebble reads when applying and replicating recent entries.
	cacheMaxEntries = 4096
	cacheMaxBytes   = 16 << 20
)

// logStore is raft.Storage over the log's segment files (logfile.go) and
// the replica's keys in Pebble. It is used only from the replica's loop
// goroutine (raft calls it from within RawNode methods), so it has no
// lock. Reads see only synced writes: the loop finishes a Ready's write
// before calling Advance, which is when raft starts to read those entries
// from storage.
type logStore struct {
	db *pebble.DB

	fs       vfs.FS  // where the segment files are: Config.FS
	dir      string  // Config.LogDir
	segBytes int64   // Config.LogSegmentBytes
	log      *segLog // the entries after truncIndex; open between load and close

	logPrefix  []byte
	logEnd     []byte // exclusive upper bound of log keys
	keyLogID   []byte
	keyHS      []byte
	keyCS      []byte
	keyApplied []byte
	keyTrunc   []byte
	keyGroup   []byte
	memberPfx  []byte
	ackedPfx   []byte // this replica's marks of members that acted on durable state (acked.go)

	// makeSnapshot, set by the replica, implements Snapshot.
	makeSnapshot func() (*pb.Snapshot, error)

	hs         *pb.HardState
	cs         *pb.ConfState
	applied    uint64
	truncIndex uint64
	truncTerm  uint64
	lastIndex  uint64

	// cache holds the entries (cacheFirst .. lastIndex], contiguous;
	// cache[i].Index == cacheFirst+i. Entries are never mutated.
	cache      []*pb.Entry
	cacheBytes int
}

var _ raft.Storage = (*logStore)(nil)

func newLogStore(db *pebble.DB, prefix []byte) *logStore {
	key := func(s string) []byte { return append(append([]byte{}, prefix...), s...) }
	lp := key("log/")
	end := append(append([]byte{}, lp...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	return &logStore{
		db:         db,
		logPrefix:  lp,
		logEnd:     end,
		keyLogID:   key("logid"),
		keyHS:      key("hs"),
		keyCS:      key("cs"),
		keyApplied: key("applied"),
		keyTrunc:   key("trunc"),
		keyGroup:   key("group"),
		memberPfx:  key("member/"),
		ackedPfx:   key("acked/"),
	}
}

func (s *logStore) memberKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte{}, s.memberPfx...), id)
}

// owned reports whether k is one of the replica's own keys that a snapshot
// does not carry: the log and its generation, HardState, ConfState, applied, trunc, group
// and the marks of members seen acting on durable state.
func (s *logStore) owned(k []byte) bool {
	if bytes.HasPrefix(k, s.logPrefix) || bytes.HasPrefix(k, s.ackedPfx) {
		return true
	}
	return bytes.Equal(k, s.keyLogID) || bytes.Equal(k, s.keyHS) || bytes.Equal(k, s.keyCS) || bytes.Equal(k, s.keyApplied) ||
		bytes.Equal(k, s.keyTrunc) || bytes.Equal(k, s.keyGroup)
}

// loadMembers reads the persisted member addresses.
func (s *logStore) loadMembers(r pebble.Reader) (map[uint64]string, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: s.memberPfx, UpperBound: append(append([]byte{}, s.memberPfx...), 0xff)})
	if err != nil {
		return nil, err
	}
	m := map[uint64]string{}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(s.memberPfx)+8 {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return nil, err
		}
		m[binary.BigEndian.Uint64(k[len(s.memberPfx):])] = string(v)
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	return m, nil
}

// compact records (to, term(to)) as truncated: raft sees the log start
// after to. The caller ensures truncIndex < to <= applied.
//
// The segment files stay until compactFiles: the state machine's batches
// and this record are committed without fsync, and the DB may run without
// a write-ahead log (the log replays what its state lost), so a crash may
// bring back an older record, and state from before to. The entries after
// either must then still be in the log.
func (s *logStore) compact(to uint64) error {
	term, err := s.Term(to)
	if err != nil {
		return fmt.Errorf("term of %d: %w", to, err)
	}
	if err := s.db.Set(s.keyTrunc, truncValue(to, term), pebble.NoSync); err != nil {
		return fmt.Errorf("commit compaction: %w", err)
	}
	s.truncIndex, s.truncTerm = to, term
	if cf := s.cacheFirst(); len(s.cache) > 0 && cf <= to {
		drop := min(to+1-cf, uint64(len(s.cache)))
		for _, e := range s.cache[:drop] {
			s.cacheBytes -= proto.Size(e)
		}
		clear(s.cache[:drop])
		s.cache = s.cache[drop:]
	}
	return nil
}

// compactFiles removes the segment files that hold no entry after to.
// The caller ensures that a record of truncation at to or later, and the
// state of every entry up to to, are durable: a flush of the DB began
// after both were committed, and ended.
func (s *logStore) compactFiles(to uint64) error {
	return s.log.compact(to)
}

func truncValue(index, term uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, index), term)
}

func (s *logStore) logKey(i uint64) []byte {
	k := make([]byte, len(s.logPrefix)+8)
	copy(k, s.logPrefix)
	binary.BigEndian.PutUint64(k[len(s.logPrefix):], i)
	return k
}

// get returns a copy of the value at key, or nil, false if absent.
func (s *logStore) get(key []byte) ([]byte, bool, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	return out, true, closer.Close()
}

// loadProto decodes the value at key into m, if there is one, and reports
// whether there was. what names it in errors.
func (s *logStore) loadProto(key []byte, m proto.Message, what string) (bool, error) {
	v, ok, err := s.get(key)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", what, err)
	}
	if !ok {
		return false, nil
	}
	if err := proto.Unmarshal(v, m); err != nil {
		return false, fmt.Errorf("decode %s: %w", what, err)
	}
	return true, nil
}

// loadFixed returns the value at key, if there is one, having checked that
// it is size bytes long. what names it in errors.
func (s *logStore) loadFixed(key []byte, size int, what string) ([]byte, bool, error) {
	v, ok, err := s.get(key)
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", what, err)
	}
	if ok && len(v) != size {
		return nil, false, fmt.Errorf("%s: bad length %d", what, len(v))
	}
	return v, ok, nil
}

// load reads the persisted raft state. It reports whether any exists.
func (s *logStore) load() (bool, error) {
	s.hs = &pb.HardState{}
	foundHS, err := s.loadProto(s.keyHS, s.hs, "hard state")
	if err != nil {
		return false, err
	}
	s.cs = &pb.ConfState{}
	foundCS, err := s.loadProto(s.keyCS, s.cs, "conf state")
	if err != nil {
		return false, err
	}
	found := foundHS || foundCS
	if v, ok, err := s.loadFixed(s.keyApplied, 8, "applied index"); err != nil {
		return false, err
	} else if ok {
		s.applied = binary.BigEndian.Uint64(v)
	}
	if v, ok, err := s.loadFixed(s.keyTrunc, 16, "truncated state"); err != nil {
		return false, err
	} else if ok {
		s.truncIndex = binary.BigEndian.Uint64(v)
		s.truncTerm = binary.BigEndian.Uint64(v[8:])
	}
	if err := s.openLog(); err != nil {
		return false, err
	}
	s.lastIndex = max(s.truncIndex, s.log.lastIndex())
	found = found || s.lastIndex > s.truncIndex
	if s.applied > s.hs.GetCommit() {
		if s.applied != s.truncIndex {
			return false, fmt.Errorf("applied index %d beyond commit %d", s.applied, s.hs.GetCommit())
		}
		// A snapshot was ingested (it replaces applied and trunc but keeps
		// the HardState) and the node stopped before the next HardState
		// was written. What a snapshot holds is committed.
		s.hs.Commit = new(s.applied)
	}
	if s.applied < s.truncIndex {
		return false, fmt.Errorf("applied index %d below truncated index %d", s.applied, s.truncIndex)
	}
	return found, nil
}

// bootstrap durably writes the initial membership of a new cluster: an
// empty log whose ConfState has peers as voters. Every member of a new
// cluster bootstraps identically, so their logs agree from index 1.
func (s *logStore) bootstrap(g Group, peers []uint64, addrs map[uint64]string) error {
	cs := &pb.ConfState{Voters: append([]uint64(nil), peers...)}
	hs := &pb.HardState{Term: new(uint64(1)), Commit: new(uint64(1))}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(s.keyGroup, encodeGroup(g), nil); err != nil {
		return err
	}
	if err := s.setConfState(b, cs); err != nil {
		return err
	}
	if err := s.setHardState(b, hs); err != nil {
		return err
	}
	if err := b.Set(s.keyTrunc, truncValue(1, 1), nil); err != nil {
		return err
	}
	if err := s.setApplied(b, 1); err != nil {
		return err
	}
	for id, addr := range addrs {
		if err := b.Set(s.memberKey(id), []byte(addr), nil); err != nil {
			return err
		}
	}
	if err := durable.Commit(s.db, b); err != nil {
		return fmt.Errorf("commit bootstrap: %w", err)
	}
	s.cs, s.hs = cs, hs
	s.truncIndex, s.truncTerm, s.lastIndex, s.applied = 1, 1, 1, 1
	return s.log.compact(1)
}

// InitialState implements raft.Storage.
func (s *logStore) InitialState() (*pb.HardState, *pb.ConfState, error) {
	return proto.CloneOf(s.hs), proto.CloneOf(s.cs), nil
}

// FirstIndex implements raft.Storage.
func (s *logStore) FirstIndex() (uint64, error) { return s.truncIndex + 1, nil }

// LastIndex implements raft.Storage.
func (s *logStore) LastIndex() (uint64, error) { return s.lastIndex, nil }

// Snapshot implements raft.Storage: raft calls it on the leader when a
// follower needs entries that are compacted. It returns only metadata (and
// a stream id in Data); the state itself is streamed by snapshot.go.
func (s *logStore) Snapshot() (*pb.Snapshot, error) {
	if s.makeSnapshot == nil {
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	return s.makeSnapshot()
}

func (s *logStore) cacheFirst() uint64 { return s.lastIndex + 1 - uint64(len(s.cache)) }

// Term implements raft.Storage.
func (s *logStore) Term(i uint64) (uint64, error) {
	switch {
	case i == s.truncIndex:
		return s.truncTerm, nil
	case i < s.truncIndex:
		return 0, raft.ErrCompacted
	case i > s.lastIndex:
		return 0, raft.ErrUnavailable
	}
	if cf := s.cacheFirst(); i >= cf {
		return s.cache[i-cf].GetTerm(), nil
	}
	return s.log.term(i), nil
}

// Entries implements raft.Storage.
func (s *logStore) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	if lo <= s.truncIndex {
		return nil, raft.ErrCompacted
	}
	if hi > s.lastIndex+1 {
		return nil, raft.ErrUnavailable
	}
	if lo >= hi {
		return nil, nil
	}
	var ents []*pb.Entry
	var size uint64
	cf := s.cacheFirst()
	for i := lo; i < hi; i++ {
		var e *pb.Entry
		if i >= cf {
			e = s.cache[i-cf]
		} else {
			var err error
			if e, err = s.log.entry(i); err != nil {
				return nil, err
			}
		}
		size += uint64(proto.Size(e))
		if len(ents) > 0 && size > maxSize {
			break
		}
		ents = append(ents, e)
	}
	return ents, nil
}

// writeEntries encodes ents for the log's last segment; an entry at an
// index the log holds replaces it and every later one. It returns nil for
// no entries. The in-memory view changes only in commitEntries, after
// the write is synced.
func (s *logStore) writeEntries(ents []*pb.Entry) (*segWrite, error) {
	if len(ents) == 0 {
		return nil, nil
	}
	first := ents[0].GetIndex()
	if first <= s.truncIndex {
		return nil, fmt.Errorf("replica: append at %d below truncated index %d", first, s.truncIndex)
	}
	return s.log.prepare(ents)
}

// commitEntries updates the in-memory view after w, writeEntries(ents),
// is synced.
func (s *logStore) commitEntries(ents []*pb.Entry, w *segWrite) {
	if len(ents) == 0 {
		return
	}
	s.log.commit(w)
	first := ents[0].GetIndex()
	if cf := s.cacheFirst(); first >= cf {
		for _, e := range s.cache[first-cf:] {
			s.cacheBytes -= proto.Size(e)
		}
		s.cache = s.cache[:first-cf]
	} else {
		s.cache, s.cacheBytes = nil, 0
	}
	for _, e := range ents {
		s.cache = append(s.cache, e)
		s.cacheBytes += proto.Size(e)
	}
	s.lastIndex = ents[len(ents)-1].GetIndex()
	drop := 0
	for len(s.cache)-drop > cacheMaxEntries || (s.cacheBytes > cacheMaxBytes && len(s.cache)-drop > 1) {
		s.cacheBytes -= proto.Size(s.cache[drop])
		drop++
	}
	clear(s.cache[:drop]) // the array behind the slice must not keep dropped entries alive
	s.cache = s.cache[drop:]
}

func (s *logStore) setHardState(b *pebble.Batch, hs *pb.HardState) error {
	v, err := proto.Marshal(hs)
	if err != nil {
		return err
	}
	return b.Set(s.keyHS, v, nil)
}

func (s *logStore) setConfState(b *pebble.Batch, cs *pb.ConfState) error {
	v, err := proto.Marshal(cs)
	if err != nil {
		return err
	}
	return b.Set(s.keyCS, v, nil)
}

func (s *logStore) setApplied(b *pebble.Batch, i uint64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], i)
	return b.Set(s.keyApplied, v[:], nil)
}

// openLog opens the log's segment files (closing any open before), first
// moving a log the DB holds into them (migrateLog).
func (s *logStore) openLog() error {
	if s.log != nil {
		s.log.close()
		s.log = nil
	}
	v, ok, err := s.loadFixed(s.keyLogID, 8, "log generation")
	if err != nil {
		return err
	}
	if !ok {
		return s.migrateLog()
	}
	l, stale, err := openSegLog(s.fs, s.dir, binary.BigEndian.Uint64(v), s.truncIndex, s.segBytes)
	if err != nil {
		return err
	}
	s.log = l
	return s.removeStale(stale)
}

// migrateLog starts the log's first generation of segment files, with the
// entries the DB holds (a store written before the segment files; none
// for a new one), and then deletes those from the DB in the batch that
// records the generation. A crash in between leaves the DB as it was, and
// the next open starts again; the segment it wrote is stale by then.
func (s *logStore) migrateLog() error {
	gen := newLogGen()
	l, stale, err := openSegLog(s.fs, s.dir, gen, s.truncIndex, s.segBytes)
	if err != nil {
		return err
	}
	s.log = l
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: s.logKey(s.truncIndex + 1), UpperBound: s.logEnd})
	if err != nil {
		return err
	}
	var ents []*pb.Entry
	var size int
	flush := func() error {
		if len(ents) == 0 {
			return nil
		}
		if err := l.append(ents); err != nil {
			return err
		}
		ents, size = ents[:0], 0
		return nil
	}
	next := s.truncIndex + 1
	for ok := it.First(); ok; ok = it.Next() {
		e := &pb.Entry{}
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			it.Close()
			return fmt.Errorf("decode log entry %d: %w", next, err)
		}
		if e.GetIndex() != next {
			it.Close()
			return fmt.Errorf("replica: log entry %d found where %d expected", e.GetIndex(), next)
		}
		ents = append(ents, e)
		size += proto.Size(e)
		next++
		if size >= 4<<20 {
			if err := flush(); err != nil {
				it.Close()
				return err
			}
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(s.keyLogID, binary.BigEndian.AppendUint64(nil, gen), nil); err != nil {
		return err
	}
	if err := b.DeleteRange(s.logPrefix, s.logEnd, nil); err != nil {
		return err
	}
	if err := durable.Commit(s.db, b); err != nil {
		return fmt.Errorf("record log generation: %w", err)
	}
	return s.removeStale(stale)
}

// removeStale removes the segment files of generations the DB no longer
// records, once the record of the current one is durable: a flush makes
// everything the DB holds durable, whichever way it was written.
func (s *logStore) removeStale(stale []string) error {
	if len(stale) == 0 {
		return nil
	}
	if err := durable.Flush(s.db); err != nil {
		return fmt.Errorf("before removing stale log segments: %w", err)
	}
	for _, name := range stale {
		if err := s.fs.Remove(name); err != nil {
			return fmt.Errorf("remove stale log segment: %w", err)
		}
	}
	return nil
}

// close closes the segment files.
func (s *logStore) close() {
	if s.log != nil {
		s.log.close()
		s.log = nil
	}
}
