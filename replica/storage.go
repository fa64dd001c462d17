package replica

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Key layout under Config.Prefix (p):
//
//	p+"log/"+be64(index) → proto-marshalled raftpb.Entry
//	p+"hs"               → proto-marshalled raftpb.HardState
//	p+"cs"               → proto-marshalled raftpb.ConfState
//	p+"applied"          → be64(applied index); written in the same batch as
//	                       the state machine writes that produced it
//	p+"trunc"            → be64(index) be64(term) of the last entry removed
//	                       from the log (0,0 until compaction exists)
//
// TODO(DESIGN §5, catch-up by snapshot): log compaction and snapshots.
// Compacting to index i deletes log keys <= i and sets trunc to (i, term(i))
// in one batch; Snapshot then returns a Pebble checkpoint's metadata at the
// applied index and a follower behind trunc is sent that checkpoint in
// chunks. FirstIndex and Term already honour trunc, so only the writer and
// the snapshot path are missing.

const (
	// cacheMaxEntries and cacheMaxBytes bound the in-memory tail of the log
	// that spares Pebble reads when applying and replicating recent entries.
	cacheMaxEntries = 4096
	cacheMaxBytes   = 16 << 20
)

// logStore is raft.Storage over Pebble. It is used only from the replica's
// loop goroutine (raft calls it from within RawNode methods), so it has no
// lock. Reads see only committed batches: the loop commits a Ready's batch
// before calling Advance, which is when raft starts to read those entries
// from storage.
type logStore struct {
	db *pebble.DB

	logPrefix  []byte
	logEnd     []byte // exclusive upper bound of log keys
	keyHS      []byte
	keyCS      []byte
	keyApplied []byte
	keyTrunc   []byte

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
		keyHS:      key("hs"),
		keyCS:      key("cs"),
		keyApplied: key("applied"),
		keyTrunc:   key("trunc"),
	}
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

// load reads the persisted raft state. It reports whether any exists.
func (s *logStore) load() (bool, error) {
	found := false
	s.hs = &pb.HardState{}
	if v, ok, err := s.get(s.keyHS); err != nil {
		return false, fmt.Errorf("read hard state: %w", err)
	} else if ok {
		found = true
		if err := proto.Unmarshal(v, s.hs); err != nil {
			return false, fmt.Errorf("decode hard state: %w", err)
		}
	}
	s.cs = &pb.ConfState{}
	if v, ok, err := s.get(s.keyCS); err != nil {
		return false, fmt.Errorf("read conf state: %w", err)
	} else if ok {
		found = true
		if err := proto.Unmarshal(v, s.cs); err != nil {
			return false, fmt.Errorf("decode conf state: %w", err)
		}
	}
	if v, ok, err := s.get(s.keyApplied); err != nil {
		return false, fmt.Errorf("read applied index: %w", err)
	} else if ok {
		if len(v) != 8 {
			return false, fmt.Errorf("applied index: bad length %d", len(v))
		}
		s.applied = binary.BigEndian.Uint64(v)
	}
	if v, ok, err := s.get(s.keyTrunc); err != nil {
		return false, fmt.Errorf("read truncated state: %w", err)
	} else if ok {
		if len(v) != 16 {
			return false, fmt.Errorf("truncated state: bad length %d", len(v))
		}
		s.truncIndex = binary.BigEndian.Uint64(v)
		s.truncTerm = binary.BigEndian.Uint64(v[8:])
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: s.logPrefix, UpperBound: s.logEnd})
	if err != nil {
		return false, err
	}
	s.lastIndex = s.truncIndex
	if it.Last() {
		k := it.Key()
		if len(k) != len(s.logPrefix)+8 {
			it.Close()
			return false, fmt.Errorf("bad log key %q", k)
		}
		found = true
		s.lastIndex = binary.BigEndian.Uint64(k[len(s.logPrefix):])
	}
	if err := it.Close(); err != nil {
		return false, err
	}
	if s.applied > s.hs.GetCommit() {
		return false, fmt.Errorf("applied index %d beyond commit %d", s.applied, s.hs.GetCommit())
	}
	if s.applied < s.truncIndex {
		return false, fmt.Errorf("applied index %d below truncated index %d", s.applied, s.truncIndex)
	}
	return found, nil
}

// bootstrap durably writes the initial membership of a new cluster: an
// empty log whose ConfState has peers as voters. Every member of a new
// cluster bootstraps identically, so their logs agree from index 1.
func (s *logStore) bootstrap(peers []uint64) error {
	cs := &pb.ConfState{Voters: append([]uint64(nil), peers...)}
	b := s.db.NewBatch()
	defer b.Close()
	if err := s.setConfState(b, cs); err != nil {
		return err
	}
	if err := b.Set(s.keyTrunc, make([]byte, 16), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("commit bootstrap: %w", err)
	}
	s.cs = cs
	return nil
}

// InitialState implements raft.Storage.
func (s *logStore) InitialState() (*pb.HardState, *pb.ConfState, error) {
	return proto.CloneOf(s.hs), proto.CloneOf(s.cs), nil
}

// FirstIndex implements raft.Storage.
func (s *logStore) FirstIndex() (uint64, error) { return s.truncIndex + 1, nil }

// LastIndex implements raft.Storage.
func (s *logStore) LastIndex() (uint64, error) { return s.lastIndex, nil }

// Snapshot implements raft.Storage. Without log compaction no follower can
// be behind the retained log, so raft never needs a snapshot; returning an
// empty one would make raft panic, so this reports it as temporarily
// unavailable. TODO(DESIGN §5): snapshots from Pebble checkpoints.
func (s *logStore) Snapshot() (*pb.Snapshot, error) {
	return nil, raft.ErrSnapshotTemporarilyUnavailable
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
	v, ok, err := s.get(s.logKey(i))
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("replica: log entry %d missing (first %d, last %d)", i, s.truncIndex+1, s.lastIndex)
	}
	e := &pb.Entry{}
	if err := proto.Unmarshal(v, e); err != nil {
		return 0, fmt.Errorf("decode log entry %d: %w", i, err)
	}
	return e.GetTerm(), nil
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
	if cf := s.cacheFirst(); lo >= cf {
		for _, e := range s.cache[lo-cf : hi-cf] {
			size += uint64(proto.Size(e))
			if len(ents) > 0 && size > maxSize {
				break
			}
			ents = append(ents, e)
		}
		return ents, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: s.logKey(lo), UpperBound: s.logKey(hi)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	next := lo
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		size += uint64(len(v))
		if len(ents) > 0 && size > maxSize {
			break
		}
		e := &pb.Entry{}
		if err := proto.Unmarshal(v, e); err != nil {
			return nil, fmt.Errorf("decode log entry %d: %w", next, err)
		}
		if e.GetIndex() != next {
			return nil, fmt.Errorf("replica: log entry %d found where %d expected", e.GetIndex(), next)
		}
		ents = append(ents, e)
		next++
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if len(ents) == 0 {
		return nil, fmt.Errorf("replica: log entries [%d,%d) missing", lo, hi)
	}
	return ents, nil
}

// writeEntries adds ents to b, deleting any conflicting suffix of the log.
// The in-memory view changes only in commitEntries, after b is committed.
func (s *logStore) writeEntries(b *pebble.Batch, ents []*pb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	first := ents[0].GetIndex()
	if first <= s.truncIndex {
		return fmt.Errorf("replica: append at %d below truncated index %d", first, s.truncIndex)
	}
	if first > s.lastIndex+1 {
		return fmt.Errorf("replica: append at %d leaves a gap after %d", first, s.lastIndex)
	}
	last := ents[len(ents)-1].GetIndex()
	if last < s.lastIndex {
		// Entries past the new tail conflict and must go; the ones
		// overlapping ents are overwritten by the Sets below.
		if err := b.DeleteRange(s.logKey(last+1), s.logKey(s.lastIndex+1), nil); err != nil {
			return err
		}
	}
	for _, e := range ents {
		v, err := proto.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode log entry %d: %w", e.GetIndex(), err)
		}
		if err := b.Set(s.logKey(e.GetIndex()), v, nil); err != nil {
			return err
		}
	}
	return nil
}

// commitEntries updates the in-memory view after the batch written by
// writeEntries(ents) is committed.
func (s *logStore) commitEntries(ents []*pb.Entry) {
	if len(ents) == 0 {
		return
	}
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
