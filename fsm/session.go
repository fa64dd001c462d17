package fsm

// Exactly-once mutations.
//
// A mutating request carries (Session, Seq). Session 0 means "no
// deduplication". For a nonzero session the replicated state keeps a window
// of the results of the most recently applied sequence numbers:
//
//   - a command whose (session, seq) is in the window is not applied again:
//     Apply returns the stored result, byte for byte;
//   - a command with seq at or below the session's low-water mark (and not
//     in the window) is refused: INVALID "stale sequence";
//   - otherwise it is applied and its result stored. When the window holds
//     more than sessionWindow results, the lowest seq is dropped and becomes
//     the low-water mark.
//
// Because the window is a set, not "the last seq", a client may pipeline
// requests on one session and the leader may apply them in any order, as
// long as a request is not overtaken by more than sessionWindow later ones.
// Results of WRONG_RANGE (the router retries elsewhere), INTERNAL (storage
// failure) and a prepared write's retryable conflict (Result.Retry: the
// leader proposes it again) are not stored.
//
// A session expires when no command used it for the session TTL
// (Command.SessionTTL, default 10 minutes) of entry time: every Apply first
// removes up to sessionsExpiredPerEntry expired sessions, in the order of
// their last use. A request of an expired session starts a fresh window, so
// a retry that arrives after the TTL can be applied twice: clients must
// not retry longer than the TTL.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cleavefs/cleave/wire"
	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"
)

const (
	sessionPrefix     = prefix + "s/"
	sessionTimePrefix = prefix + "t/"

	// sessionWindow is how many results a session keeps.
	sessionWindow = 1024
	// DefaultSessionTTL is the idle time after which a session expires, in
	// nanoseconds of entry time.
	DefaultSessionTTL = int64(10 * 60e9)
	// sessionsExpiredPerEntry bounds the expiry work of one Apply.
	sessionsExpiredPerEntry = 8
)

// sessionMeta is the bookkeeping of one session; field names are part of the
// on-disk format.
type sessionMeta struct {
	Low   uint64 `msgpack:"l,omitempty"` // seqs ≤ Low not in the window are stale
	Count int    `msgpack:"n,omitempty"` // results in the window
	Last  int64  `msgpack:"t,omitempty"` // entry time of the last command of the session
	Index int64  `msgpack:"i,omitempty"` // the time in the session's "s/t/" key: Last rounded down to the granule
	// High is the largest seq whose result the session stores, so a
	// command above it needs no read to learn it is not a retry; 0 when
	// not known (records written before the field, and their sessions
	// until they expire), and then the stored results are read.
	High uint64 `msgpack:"h,omitempty"`
}

// mayHold reports whether the session may store a result for seq: false
// only when High proves it does not.
func (m *sessionMeta) mayHold(seq uint64) bool { return m.High == 0 || seq <= m.High }

// granule is the resolution of the expiry index: a session's "s/t/" key is
// rewritten only when its last use moves to a new granule, not on every
// request (each rewrite leaves a tombstone that later scans must skip).
func granule(ttl int64) int64 { return max(ttl/16, 1) }

func sessionKey(s uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, len(sessionPrefix)+16), sessionPrefix...), s)
}

func sessionResultKey(s, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(sessionKey(s), seq)
}

func sessionTimeKey(t int64, s uint64) []byte {
	k := binary.BigEndian.AppendUint64([]byte(sessionTimePrefix), uint64(t))
	return binary.BigEndian.AppendUint64(k, s)
}

// applySession runs c with exactly-once bookkeeping, after the bounded
// expiry of sessions and collection of chunks.
func (f *FSM) applySession(b *pebble.Batch, index uint64, c *Command) (*Result, error) {
	if err := f.expireSessions(b, c); err != nil {
		return nil, err
	}
	if err := f.collectChunks(b, c); err != nil {
		return nil, err
	}
	if c.Session == 0 {
		return f.apply(b, index, c)
	}
	if c.Seq == 0 {
		return failf(wire.Invalid, "session %d: sequence numbers start at 1 (got seq 0)", c.Session), nil
	}
	m, err := f.session(b, c.Session)
	if err != nil {
		return nil, err
	}
	w, err := f.storedSeqs(b, c.Session, m)
	if err != nil {
		return nil, err
	}
	if m != nil && mayStore(w, m, c.Seq) {
		v, err := getValue(b, sessionResultKey(c.Session, c.Seq))
		switch {
		case err == nil:
			var r Result
			if err := msgpack.Unmarshal(v, &r); err != nil {
				return nil, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("corrupt result of session %d seq %d: %v", c.Session, c.Seq, err)}
			}
			return &r, f.touchSession(b, c, m, false)
		case !errors.Is(err, pebble.ErrNotFound):
			return nil, storageErr("read session", err)
		}
	}
	if m != nil && c.Seq <= m.Low {
		return failf(wire.Invalid, "stale sequence: session %d seq %d is at or below %d, the oldest the cluster remembers; it may have been applied (window of %d)", c.Session, c.Seq, m.Low, sessionWindow), nil
	}
	isNew := m == nil
	if isNew {
		m = &sessionMeta{}
	}
	res, err := f.apply(b, index, c)
	if err != nil {
		var we *wire.Error
		if !errors.As(err, &we) || we.Code == wire.Internal || we.Code == wire.WrongRange {
			return nil, err
		}
		res = &Result{Code: we.Code, Message: we.Message}
	}
	if res.Code == wire.WrongRange || res.Code == wire.Internal || res.Retry {
		return res, nil
	}
	if err := f.putResult(b, c.Session, c.Seq, res, w); err != nil {
		return nil, err
	}
	if isNew || m.High != 0 {
		m.High = max(m.High, c.Seq)
	}
	m.Count++
	if m.Count > sessionWindow {
		low, err := oldestStored(b, c.Session, m, w)
		if err != nil {
			return nil, err
		}
		if err := f.dropResult(b, c.Session, low, w); err != nil {
			return nil, err
		}
		m.Count--
		m.Low = max(m.Low, low)
	}
	return res, f.touchSession(b, c, m, isNew)
}

func getSession(rd reader, s uint64) (*sessionMeta, error) {
	return getRecord[sessionMeta](rd, sessionKey(s), func() (string, string) {
		return "session", fmt.Sprintf("session %d", s)
	})
}

// touchSession records m as the session's state, used at the entry's time.
// isNew tells a session that has no "s/t/" key yet.
func (f *FSM) touchSession(b *pebble.Batch, c *Command, m *sessionMeta, isNew bool) error {
	m.Last = c.expiryTime()
	g := granule(orDefault(c.SessionTTL, DefaultSessionTTL))
	idx := m.Last - ((m.Last%g)+g)%g // round down, also for negative times
	if isNew || idx != m.Index {
		if !isNew {
			if err := b.Delete(sessionTimeKey(m.Index, c.Session), nil); err != nil {
				return storageErr("write session", err)
			}
		}
		m.Index = idx
		f.noteWrite(sessionLow, m.Index)
		if err := b.Set(sessionTimeKey(m.Index, c.Session), nil, nil); err != nil {
			return storageErr("write session", err)
		}
	}
	return f.putSession(b, c.Session, m)
}

// mayStore reports whether the session whose record is m and whose
// stored seqs are w (nil when not kept in memory) may store a result for
// seq: exactly, when w is known, else as far as m tells.
func mayStore(w *seqWindow, m *sessionMeta, seq uint64) bool {
	if w != nil {
		return w.has(seq)
	}
	return m.mayHold(seq)
}

// oldestStored returns the lowest seq that session s (record m, stored
// seqs w or nil) stores: from w when it is known, else as m.oldest finds
// it.
func oldestStored(rd reader, s uint64, m *sessionMeta, w *seqWindow) (uint64, error) {
	if w == nil {
		return m.oldest(rd, s)
	}
	seq, ok := w.oldest()
	if !ok {
		return 0, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("integrity: session %d counts results but has none", s)}
	}
	return seq, nil
}

// seqWindow is the set of seqs whose results one session stores, in
// increasing order: at most sessionWindow+1 of them (the trim follows the
// store that passes the window).
type seqWindow struct{ seqs []uint64 }

func (w *seqWindow) has(seq uint64) bool {
	_, ok := slices.BinarySearch(w.seqs, seq)
	return ok
}

func (w *seqWindow) add(seq uint64) {
	if n := len(w.seqs); n == 0 || seq > w.seqs[n-1] {
		w.seqs = append(w.seqs, seq) // the common case: seqs rise
		return
	}
	if i, ok := slices.BinarySearch(w.seqs, seq); !ok {
		w.seqs = slices.Insert(w.seqs, i, seq)
	}
}

func (w *seqWindow) remove(seq uint64) {
	i, ok := slices.BinarySearch(w.seqs, seq)
	switch {
	case !ok:
	case i == 0:
		w.seqs = w.seqs[1:] // the common case: the oldest goes
	default:
		w.seqs = slices.Delete(w.seqs, i, i+1)
	}
}

func (w *seqWindow) oldest() (uint64, bool) {
	if len(w.seqs) == 0 {
		return 0, false
	}
	return w.seqs[0], true
}

// loadSeqs returns the seqs whose results session s, whose record is m,
// stores in rd. They lie above m.Low, so the scan starts there (below lie
// the tombstones of the dropped results); there must be m.Count of them.
func loadSeqs(rd reader, s uint64, m *sessionMeta) (*seqWindow, error) {
	pfx := sessionKey(s)
	it, err := rd.NewIter(&pebble.IterOptions{LowerBound: sessionResultKey(s, m.Low+1), UpperBound: upperBound(pfx)})
	if err != nil {
		return nil, storageErr("read session", err)
	}
	w := &seqWindow{seqs: make([]uint64, 0, max(m.Count, 0)+1)}
	for valid := it.First(); valid; valid = it.Next() {
		if k := it.Key(); len(k) == len(pfx)+8 {
			w.seqs = append(w.seqs, binary.BigEndian.Uint64(k[len(pfx):]))
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, storageErr("read session", err)
	}
	if len(w.seqs) != m.Count {
		return nil, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("integrity: session %d counts %d results but stores %d", s, m.Count, len(w.seqs))}
	}
	return w, nil
}

// oldest returns the lowest seq that session s, whose record m is,
// stores. Every stored seq lies in (Low, High] and Count of them are
// stored, so when Count is High-Low all of them are, and Low+1 is the
// answer without a read; otherwise oldestResult looks.
func (m *sessionMeta) oldest(rd reader, s uint64) (uint64, error) {
	if m.High != 0 && uint64(m.Count) == m.High-m.Low {
		return m.Low + 1, nil
	}
	return oldestResult(rd, s, m.Low)
}

// oldestResult returns the lowest seq stored for session s, whose
// low-water mark is low. No result at or below low is stored (they were
// dropped, or refused as stale), so low+1, when stored, is the answer: a
// session whose seqs rise one by one finds it with a point read. Otherwise
// the scan starts above low: below lie only the tombstones of the dropped
// results, one per command of a busy session, which an iterator would
// otherwise step over one by one.
func oldestResult(rd reader, s, low uint64) (uint64, error) {
	switch _, c, err := rd.Get(sessionResultKey(s, low+1)); {
	case err == nil:
		if err := c.Close(); err != nil {
			return 0, storageErr("read session", err)
		}
		return low + 1, nil
	case !errors.Is(err, pebble.ErrNotFound):
		return 0, storageErr("read session", err)
	}
	pfx := sessionKey(s)
	it, err := rd.NewIter(&pebble.IterOptions{LowerBound: sessionResultKey(s, low+1), UpperBound: upperBound(pfx)})
	if err != nil {
		return 0, storageErr("read session", err)
	}
	var seq uint64
	ok := it.First()
	if ok && len(it.Key()) == len(pfx)+8 {
		seq = binary.BigEndian.Uint64(it.Key()[len(pfx):])
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return 0, storageErr("read session", err)
	}
	if !ok {
		return 0, &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("integrity: session %d counts results but has none", s)}
	}
	return seq, nil
}

// expireSessions deletes sessions unused for the session TTL at the
// entry's time, looking at up to sessionsExpiredPerEntry candidates. It
// does not scan when the cached bound proves no candidate exists.
func (f *FSM) expireSessions(b *pebble.Batch, c *Command) error {
	ttl := orDefault(c.SessionTTL, DefaultSessionTTL)
	if c.expiryTime()-ttl < 0 {
		return nil // nothing can be that old
	}
	if !f.mayHaveBelow(sessionLow, c.expiryTime()-ttl) {
		return nil
	}
	// The upper bound keeps the scan away from the tombstones that recent
	// index moves leave behind.
	it, err := b.NewIter(&pebble.IterOptions{LowerBound: []byte(sessionTimePrefix), UpperBound: sessionTimeKey(c.expiryTime()-ttl+1, 0)})
	if err != nil {
		return storageErr("scan sessions", err)
	}
	var due [][]byte
	low, found := uint64(0), false
	for valid := it.First(); valid && len(due) < sessionsExpiredPerEntry; valid = it.Next() {
		k := it.Key()
		if len(k) != len(sessionTimePrefix)+16 {
			_ = it.Close()
			return &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("corrupt session time key %q", k)}
		}
		if !found {
			low, found = binary.BigEndian.Uint64(k[len(sessionTimePrefix):]), true // the first key
		}
		if idx := int64(binary.BigEndian.Uint64(k[len(sessionTimePrefix):])); c.expiryTime() < idx+ttl {
			break
		}
		due = append(due, bytes.Clone(k))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return storageErr("scan sessions", err)
	}
	if !found {
		if low, err = firstTimeFrom(b, sessionTimePrefix, sessionTimeKey(c.expiryTime()-ttl+1, 0)); err != nil {
			return storageErr("scan sessions", err)
		}
	}
	f.learnBound(sessionLow, low)
	for _, k := range due {
		s := binary.BigEndian.Uint64(k[len(sessionTimePrefix)+8:])
		// The key holds the granule of the last use; the exact time decides.
		m, err := f.session(b, s)
		if err != nil {
			return err
		}
		if m != nil && c.expiryTime() < m.Last+ttl {
			continue
		}
		f.forgetSession(s)
		dels := [][]byte{k}
		err = scanPrefix(b, sessionKey(s), func(k, _ []byte) error {
			dels = append(dels, bytes.Clone(k))
			return nil
		})
		if err != nil {
			return err
		}
		for _, d := range dels {
			if err := b.Delete(d, nil); err != nil {
				return storageErr("expire session", err)
			}
		}
	}
	return nil
}
