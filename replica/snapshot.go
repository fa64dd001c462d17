package replica

// Snapshots: "discard and full sync".
//
// Sending (leader). When raft needs to send a snapshot it calls
// logStore.Snapshot on the loop goroutine. makeSnapshot opens a Pebble
// snapshot (a consistent, read-only view of the DB at that instant; the loop
// and its writer goroutine are the DB's only writers and commit whole
// Readies, one at a time, so the view is exactly the state at the applied
// index it holds — whether or not the loop has seen the last commit end) and returns raft only metadata: the
// applied index and its term, the ConfState, both read from that view, and
// an 8-byte stream id in Data. When the MsgSnap appears in a Ready the loop
// hands it and the stream to SnapshotTransport.SendSnapshot on a goroutine
// of its own, records the snapshot's index as in flight (compaction never
// passes it, so the entries after it stay in the log until the follower can
// fetch them), and reports the outcome to raft (ReportSnapshot) when the
// send returns.
//
// Stream format. The stream is every key of the view except the
// replica-owned keys (log, HardState, ConfState, applied, trunc; see
// storage.go), in key order, each as uvarint(len(key)) key
// uvarint(len(value)) value. SnapshotStream.Next cuts it into chunks of
// Config.SnapshotChunk bytes regardless of record boundaries, so the sender
// holds at most one chunk plus one record in memory whatever the state's
// size; a CRC-32C of the whole stream travels with the last chunk.
//
// Receiving (follower). ReceiveSnapshot checks that chunks arrive in order
// and writes the records into one SST file in Config.SnapshotDir as they
// arrive (memory: one chunk plus one partial record). The first chunk
// carries the MsgSnap, so the receiver knows the index, term and ConfState
// up front and writes, in key order among the streamed keys, the
// replica-owned keys the restored node must have: applied = index,
// trunc = (index, term), cs = ConfState. The SST also holds two range
// deletions covering every key except the HardState key: ["", p+"hs") and
// (p+"hs", maxKey) (Pebble wants a non-empty start: "\x00"). After the last chunk (CRC checked) the file is synced
// and the MsgSnap is stepped into raft; when raft hands the snapshot back in
// a Ready, the loop ingests the file (pebble.DB.Ingest).
//
// Atomicity. An ingest is one version edit at one sequence number: the range
// deletions in the file hide every older key (the old state, log, member
// addresses, applied index, ConfState) and the file's own keys, having the
// same sequence number, are not hidden by them. So before the ingest the DB
// is the old state, after it the new one, never a mix: a crash during the
// transfer leaves a stray SST file (removed at the next Open) and the old
// state; a crash after it leaves the new state with an empty log starting
// after the snapshot's index. The HardState (term, vote) is kept; if the
// node stops before the next HardState is written its commit index may be
// below the snapshot's index, which load repairs (what a snapshot holds is
// committed).
//
// The empty key and keys at or above maxKey (16 bytes of 0xff) must not be
// written by the state machine: the range deletions do not cover them.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cleavefs/cleave/internal/durable"
)

// SnapshotTransport is implemented by a Transport that can stream snapshots.
// Without it the replica cannot bring a follower back that is behind the
// retained log (raft keeps retrying).
type SnapshotTransport interface {
	// SendSnapshot delivers the stream s to m.To: it calls s.Next until
	// io.EOF, sends each chunk in order, m (the MsgSnap) with the first
	// chunk and s.CRC() with the last, and returns nil once the receiver's
	// ReceiveSnapshot returned nil for the last chunk. It is called on a
	// goroutine of its own, may block, and must return soon after ctx ends.
	// The transport must not modify m and must not use s after returning.
	SendSnapshot(ctx context.Context, m *pb.Message, s *SnapshotStream) error
}

// Restorer is an optional interface for a StateMachine that caches state:
// Restored is called on the loop goroutine right after a snapshot replaced
// the DB's state with the state at index. It must not block. An error (the
// new state does not load) is fatal, as from Apply: the replica stops
// before it applies another entry, with ErrApplyFault.
type Restorer interface {
	Restored(index uint64) error
}

// minKey and maxKey bound the range deletions of a restore; see the
// comment at the top of this file.
var (
	minKey = []byte{0}
	maxKey = bytes.Repeat([]byte{0xff}, 16)
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SnapshotStream is the data of one outgoing snapshot. It is used by one
// goroutine at a time.
type SnapshotStream struct {
	group           Group
	id, index, term uint64
	snap            *pebble.Snapshot
	it              *pebble.Iterator
	store           *logStore
	chunk           int
	started, valid  bool
	eof             bool
	buf             []byte
	crc             uint32
	sent            uint64
}

// ID returns the stream id (also in the MsgSnap's Snapshot.Data).
func (s *SnapshotStream) ID() uint64 { return s.id }

// Group is the sender's group; every chunk carries it (SnapshotChunk.Group).
func (s *SnapshotStream) Group() Group { return s.group }

// Index returns the log index the snapshot is an image of.
func (s *SnapshotStream) Index() uint64 { return s.index }

// Sent returns the stream bytes returned by Next so far.
func (s *SnapshotStream) Sent() uint64 { return s.sent }

// CRC returns the CRC-32C of the bytes returned by Next so far.
func (s *SnapshotStream) CRC() uint32 { return s.crc }

// Next returns the next chunk of the stream, at most Config.SnapshotChunk
// bytes, or io.EOF after the last. The caller owns the returned slice.
func (s *SnapshotStream) Next() ([]byte, error) {
	if !s.started {
		it, err := s.snap.NewIter(&pebble.IterOptions{UpperBound: maxKey})
		if err != nil {
			return nil, err
		}
		s.it, s.started = it, true
		s.valid = it.First()
	}
	for len(s.buf) < s.chunk && s.valid {
		k := s.it.Key()
		if s.store.owned(k) {
			if bytes.HasPrefix(k, s.store.logPrefix) {
				s.valid = s.it.SeekGE(s.store.logEnd)
			} else {
				s.valid = s.it.Next()
			}
			continue
		}
		v, err := s.it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		s.buf = binary.AppendUvarint(s.buf, uint64(len(k)))
		s.buf = append(s.buf, k...)
		s.buf = binary.AppendUvarint(s.buf, uint64(len(v)))
		s.buf = append(s.buf, v...)
		s.valid = s.it.Next()
	}
	if !s.valid {
		if err := s.it.Error(); err != nil {
			return nil, err
		}
	}
	if len(s.buf) == 0 {
		return nil, io.EOF
	}
	n := min(len(s.buf), s.chunk)
	out := bytes.Clone(s.buf[:n])
	s.buf = s.buf[:copy(s.buf, s.buf[n:])]
	s.crc = crc32.Update(s.crc, castagnoli, out)
	s.sent += uint64(n)
	return out, nil
}

func (s *SnapshotStream) close() {
	if s.it != nil {
		s.it.Close()
		s.it = nil
	}
	if s.snap != nil {
		s.snap.Close()
		s.snap = nil
	}
}

// makeSnapshot implements logStore.Snapshot on the loop goroutine.
func (r *Replica) makeSnapshot() (*pb.Snapshot, error) {
	if r.snapTr == nil || len(r.outgoing)+len(r.inflight) >= r.cfg.MaxSnapshotSends {
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	ps := r.db.NewSnapshot()
	fail := func(what string, err error) (*pb.Snapshot, error) {
		ps.Close()
		r.log.Warn("cannot make snapshot", "what", what, "err", err)
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	av, c, err := ps.Get(r.store.keyApplied)
	if err != nil {
		return fail("read applied index", err)
	}
	if len(av) != 8 {
		c.Close()
		return fail("read applied index", fmt.Errorf("bad length %d", len(av)))
	}
	index := binary.BigEndian.Uint64(av)
	c.Close()
	cs := &pb.ConfState{}
	cv, c, err := ps.Get(r.store.keyCS)
	if err != nil {
		return fail("read conf state", err)
	}
	err = proto.Unmarshal(cv, cs)
	c.Close()
	if err != nil {
		return fail("decode conf state", err)
	}
	term, err := r.store.Term(index)
	if err != nil || index == 0 {
		return fail("term of applied index", fmt.Errorf("index %d: %v", index, err))
	}
	r.snapSeq++
	st := &SnapshotStream{group: r.Group(), id: r.snapSeq, index: index, term: term, snap: ps, store: r.store, chunk: r.cfg.SnapshotChunk}
	r.outgoing[st.id] = st
	return &pb.Snapshot{
		Data:     binary.BigEndian.AppendUint64(nil, st.id),
		Metadata: &pb.SnapshotMetadata{ConfState: cs, Index: new(index), Term: new(term)},
	}, nil
}

// inflightSnap is an outgoing snapshot being sent.
type inflightSnap struct {
	to, index uint64
}

type snapDone struct {
	id, to uint64
	err    error
}

// sendSnapshot starts streaming the snapshot of MsgSnap m. Loop goroutine.
func (r *Replica) sendSnapshot(m *pb.Message) {
	var st *SnapshotStream
	if d := m.GetSnapshot().GetData(); len(d) == 8 {
		id := binary.BigEndian.Uint64(d)
		st = r.outgoing[id]
		delete(r.outgoing, id)
	}
	if st == nil {
		r.log.Error("MsgSnap without a prepared stream", "to", m.GetTo())
		r.rn.ReportSnapshot(m.GetTo(), raft.SnapshotFailure)
		return
	}
	r.inflight[st.id] = inflightSnap{to: m.GetTo(), index: st.index}
	r.log.Info("sending snapshot", "to", m.GetTo(), "index", st.index, "term", st.term, "stream", st.id)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		err := r.snapTr.SendSnapshot(r.sendCtx, m, st)
		sent := st.sent
		st.close()
		if err == nil {
			r.log.Info("snapshot sent", "to", m.GetTo(), "index", st.index, "bytes", sent)
		} else {
			r.log.Warn("snapshot send failed", "to", m.GetTo(), "index", st.index, "bytes", sent, "err", err)
		}
		select {
		case r.snapDonec <- snapDone{id: st.id, to: m.GetTo(), err: err}:
		case <-r.loopDone:
		}
	}()
}

// snapshotDone reports a finished send to raft. Loop goroutine.
func (r *Replica) snapshotDone(d snapDone) {
	delete(r.inflight, d.id)
	status := raft.SnapshotFinish
	if d.err != nil {
		status = raft.SnapshotFailure
	}
	r.rn.ReportSnapshot(d.to, status)
}

// dropUnsentSnapshots closes streams raft asked for but did not send.
func (r *Replica) dropUnsentSnapshots() {
	for id, st := range r.outgoing {
		st.close()
		delete(r.outgoing, id)
	}
}

// SnapshotChunk is one frame of an incoming snapshot stream, as the
// transport received it.
type SnapshotChunk struct {
	Group  Group       // sender's group; a chunk of another group is refused
	From   uint64      // sender's raft id
	ID     uint64      // stream id
	Offset uint64      // stream offset of Data
	Data   []byte      // stream bytes; ReceiveSnapshot does not retain it
	Msg    *pb.Message // first chunk (Offset 0): the MsgSnap
	Done   bool        // last chunk
	CRC    uint32      // last chunk: CRC-32C of the whole stream
}

// snapReceiver builds the SST of one incoming stream.
type snapReceiver struct {
	fs       vfs.FS
	group    Group // the sender's; the installed state belongs to it
	from, id uint64
	msg      *pb.Message
	path     string
	w        *sstable.Writer
	off      uint64
	crc      uint32
	pending  []byte   // an incomplete record carried to the next chunk
	own      [][]byte // replica-owned keys still to write, sorted; values in ownVal
	ownVal   [][]byte
	last     []byte
	keys     uint64
}

func (rc *snapReceiver) abort() {
	if rc.w != nil {
		rc.w.Close()
		rc.w = nil
	}
	rc.fs.Remove(rc.path)
}

// ReceiveSnapshot feeds one chunk of an incoming snapshot stream. Chunks of
// a stream must come in order; a first chunk (Offset 0) from any sender
// aborts the stream being received. For the last chunk it returns once the
// snapshot is installed (or raft declined it because it is not needed), or
// an error: the sender then reports the snapshot failed, and raft retries.
// Safe for concurrent use; streams are handled one at a time.
func (r *Replica) ReceiveSnapshot(ctx context.Context, c SnapshotChunk) error {
	if !r.accepts(c.Group) {
		return fmt.Errorf("%w: snapshot chunk of %v at a replica of %v", ErrForeignGroup, c.Group, r.Group())
	}
	r.recvMu.Lock()
	select {
	case <-r.loopDone: // run aborts r.recv after closing loopDone
		r.recvMu.Unlock()
		return ErrStopped
	default:
	}
	rc, err := r.receiveChunk(c)
	if err != nil {
		if r.recv != nil {
			r.recv.abort()
			r.recv = nil
		}
		r.recvMu.Unlock()
		return err
	}
	if !c.Done {
		r.recvMu.Unlock()
		return nil
	}
	r.recv = nil
	r.recvMu.Unlock()

	req := &restoreReq{msg: rc.msg, path: rc.path, done: make(chan error, 1)}
	r.log.Info("snapshot received", "from", c.From, "index", rc.msg.GetSnapshot().GetMetadata().GetIndex(), "bytes", rc.off, "keys", rc.keys)
	select {
	case r.restorec <- req:
	case <-ctx.Done():
		r.cfg.FS.Remove(rc.path)
		return ctx.Err()
	case <-r.donec:
		r.cfg.FS.Remove(rc.path)
		return ErrStopped
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err() // the loop still installs or removes the file
	case <-r.donec:
		return ErrStopped
	}
}

// receiveChunk handles one chunk under recvMu. On error the caller aborts
// the stream.
func (r *Replica) receiveChunk(c SnapshotChunk) (*snapReceiver, error) {
	if c.Offset == 0 {
		if r.recv != nil {
			r.log.Info("snapshot stream replaced by a new one", "old_from", r.recv.from, "old_stream", r.recv.id, "from", c.From, "stream", c.ID)
			r.recv.abort()
			r.recv = nil
		}
		rc, err := r.newReceiver(c)
		if err != nil {
			return nil, err
		}
		r.recv = rc
	}
	rc := r.recv
	if rc == nil || rc.from != c.From || rc.id != c.ID || rc.off != c.Offset || rc.group != c.Group {
		return nil, fmt.Errorf("%w: chunk %d@%d from %d does not continue the stream being received", ErrSnapshotAborted, c.ID, c.Offset, c.From)
	}
	rc.crc = crc32.Update(rc.crc, castagnoli, c.Data)
	rc.off += uint64(len(c.Data))
	rc.pending = append(rc.pending, c.Data...)
	used := 0
	for {
		k, v, n := decodeRecord(rc.pending[used:])
		if n == 0 {
			break
		}
		used += n
		if err := r.addKey(rc, k, v); err != nil {
			return nil, err
		}
	}
	rc.pending = rc.pending[:copy(rc.pending, rc.pending[used:])]
	if !c.Done {
		return rc, nil
	}
	if len(rc.pending) != 0 {
		return nil, fmt.Errorf("replica: snapshot stream ends inside a record (%d bytes left)", len(rc.pending))
	}
	if rc.crc != c.CRC {
		return nil, fmt.Errorf("replica: snapshot stream checksum %08x, sender says %08x", rc.crc, c.CRC)
	}
	for i := range rc.own {
		if err := rc.w.Set(rc.own[i], rc.ownVal[i]); err != nil {
			return nil, err
		}
	}
	rc.own = nil
	err := rc.w.Close() // syncs the file
	rc.w = nil
	if err != nil {
		return nil, fmt.Errorf("replica: finish snapshot file: %w", err)
	}
	return rc, nil
}

// decodeRecord decodes one record from the front of p; n == 0 if p does not
// hold a whole one yet.
func decodeRecord(p []byte) (k, v []byte, n int) {
	kl, a := binary.Uvarint(p)
	if a <= 0 || uint64(len(p)-a) < kl {
		return nil, nil, 0
	}
	k = p[a : a+int(kl)]
	rest := p[a+int(kl):]
	vl, b := binary.Uvarint(rest)
	if b <= 0 || uint64(len(rest)-b) < vl {
		return nil, nil, 0
	}
	v = rest[b : b+int(vl)]
	return k, v, a + int(kl) + b + int(vl)
}

func (r *Replica) addKey(rc *snapReceiver, k, v []byte) error {
	if rc.last != nil && bytes.Compare(k, rc.last) <= 0 {
		return fmt.Errorf("replica: snapshot key %q out of order", k)
	}
	if r.store.owned(k) || len(k) == 0 || bytes.Compare(k, maxKey) >= 0 {
		return fmt.Errorf("replica: snapshot carries key %q, which a snapshot must not", k)
	}
	for len(rc.own) > 0 && bytes.Compare(rc.own[0], k) < 0 {
		if err := rc.w.Set(rc.own[0], rc.ownVal[0]); err != nil {
			return err
		}
		rc.own, rc.ownVal = rc.own[1:], rc.ownVal[1:]
	}
	if err := rc.w.Set(k, v); err != nil {
		return err
	}
	rc.last = append(rc.last[:0], k...)
	rc.keys++
	return nil
}

func (r *Replica) newReceiver(c SnapshotChunk) (*snapReceiver, error) {
	m := c.Msg
	md := m.GetSnapshot().GetMetadata()
	switch {
	case m == nil || m.GetType() != pb.MsgSnap:
		return nil, errors.New("replica: snapshot stream does not start with a MsgSnap")
	case m.GetTo() != r.cfg.ID || m.GetFrom() != c.From:
		return nil, fmt.Errorf("replica: snapshot from %d to %d arrived at %d from %d", m.GetFrom(), m.GetTo(), r.cfg.ID, c.From)
	case md.GetIndex() == 0 || md.GetConfState() == nil:
		return nil, errors.New("replica: snapshot without index or ConfState")
	}
	// The membership and the log are the loop's: stepRestore checks the
	// sender against them. Here, before a file is made, only the frame.
	if err := validateMessage(m, peerView{self: r.cfg.ID, lastIndex: MaxIndex}, true); err != nil {
		return nil, fmt.Errorf("replica: snapshot stream: %w", err)
	}
	fs := r.cfg.FS
	if err := fs.MkdirAll(r.cfg.SnapshotDir, 0o755); err != nil {
		return nil, fmt.Errorf("replica: snapshot dir: %w", err)
	}
	path := fs.PathJoin(r.cfg.SnapshotDir, fmt.Sprintf("snap-%d-%d-%d.sst", c.From, c.ID, md.GetIndex()))
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("replica: create snapshot file: %w", err)
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), sstable.WriterOptions{TableFormat: r.db.TableFormat()})
	rc := &snapReceiver{fs: fs, group: c.Group, from: c.From, id: c.ID, msg: m, path: path, w: w}
	hsNext := append(append([]byte{}, r.store.keyHS...), 0)
	for _, span := range [][2][]byte{{minKey, r.store.keyHS}, {hsNext, maxKey}} {
		if err := w.DeleteRange(span[0], span[1]); err != nil {
			rc.abort()
			return nil, err
		}
	}
	csv, err := proto.Marshal(md.GetConfState())
	if err != nil {
		rc.abort()
		return nil, err
	}
	own := map[string][]byte{
		string(r.store.keyApplied): binary.BigEndian.AppendUint64(nil, md.GetIndex()),
		string(r.store.keyCS):      csv,
		string(r.store.keyTrunc):   truncValue(md.GetIndex(), md.GetTerm()),
		string(r.store.keyGroup):   encodeGroup(c.Group),
		string(r.store.keyLogID):   binary.BigEndian.AppendUint64(nil, newLogGen()),
	}
	for _, k := range []string{string(r.store.keyApplied), string(r.store.keyCS), string(r.store.keyTrunc), string(r.store.keyGroup), string(r.store.keyLogID)} {
		rc.own = append(rc.own, []byte(k))
	}
	sortKeys(rc.own)
	for _, k := range rc.own {
		rc.ownVal = append(rc.ownVal, own[string(k)])
	}
	return rc, nil
}

func sortKeys(ks [][]byte) {
	for i := 1; i < len(ks); i++ {
		for j := i; j > 0 && bytes.Compare(ks[j], ks[j-1]) < 0; j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
}

// restoreReq hands a received snapshot to the loop.
type restoreReq struct {
	msg  *pb.Message
	path string
	done chan error
}

// stepRestore steps a received MsgSnap into raft; the next Ready carries
// the snapshot if raft accepts it. Loop goroutine.
func (r *Replica) stepRestore(req *restoreReq) {
	r.declineRestore()
	if err := validateMessage(req.msg, r.peerView(), true); err != nil {
		r.dropped(req.msg, err)
		r.cfg.FS.Remove(req.path)
		req.done <- err
		return
	}
	r.pendingRestore = req
	if err := r.rn.Step(req.msg); err != nil {
		r.log.Warn("raft rejected snapshot message", "from", req.msg.GetFrom(), "err", err)
	}
}

// declineRestore answers a received snapshot raft did not ask to install
// (it is not needed): the sender reports it finished and raft probes.
func (r *Replica) declineRestore() {
	if req := r.pendingRestore; req != nil {
		r.pendingRestore = nil
		r.cfg.FS.Remove(req.path)
		req.done <- nil
	}
}

// restore installs the snapshot raft handed over in a Ready. Loop goroutine.
func (r *Replica) restore(snap *pb.Snapshot) error {
	req := r.pendingRestore
	md := snap.GetMetadata()
	if req == nil || !bytes.Equal(req.msg.GetSnapshot().GetData(), snap.GetData()) ||
		req.msg.GetSnapshot().GetMetadata().GetIndex() != md.GetIndex() {
		return fmt.Errorf("raft asked to install snapshot %d that was not received", md.GetIndex())
	}
	r.pendingRestore = nil
	// The loop is the DB's only writer (no Ready is being written while a
	// snapshot is installed), so nothing at or above maxKey can
	// appear between this check and the ingest.
	if err := r.checkKeysBelowMax(); err != nil {
		req.done <- err
		r.cfg.FS.Remove(req.path)
		return err
	}
	if err := r.db.Ingest(context.Background(), []string{req.path}); err != nil {
		err = fmt.Errorf("ingest snapshot %d: %w", md.GetIndex(), err)
		req.done <- err
		r.cfg.FS.Remove(req.path)
		return err
	}
	r.cfg.FS.Remove(req.path)
	// An ingest that overlaps the memtable waits behind it, in the DB's
	// write-ahead log if it has one; a flush makes it durable either way,
	// before raft learns of it and the log drops what the snapshot covers.
	if err := durable.Flush(r.db); err != nil {
		err = fmt.Errorf("flush snapshot %d: %w", md.GetIndex(), err)
		req.done <- err
		return err
	}
	st := r.store
	if _, err := st.load(); err != nil {
		req.done <- err
		return fmt.Errorf("reload after snapshot %d: %w", md.GetIndex(), err)
	}
	if st.applied != md.GetIndex() || st.truncIndex != md.GetIndex() || st.lastIndex != md.GetIndex() {
		err := fmt.Errorf("after snapshot %d: applied %d, trunc %d, last %d", md.GetIndex(), st.applied, st.truncIndex, st.lastIndex)
		req.done <- err
		return err
	}
	st.cache, st.cacheBytes = nil, 0
	g, err := LoadGroup(r.db, r.cfg.Prefix)
	if err != nil {
		req.done <- err
		return fmt.Errorf("after snapshot %d: %w", md.GetIndex(), err)
	}
	r.group.Store(&g)
	r.applied = md.GetIndex()
	r.setMembers(st.cs)
	addrs, err := st.loadMembers(r.db)
	if err != nil {
		req.done <- err
		return err
	}
	r.addrs = addrs
	r.rewriteAcked()
	// Own entries the snapshot covers may or may not be the entries it
	// committed at their indexes: their outcome is unknown here.
	for _, p := range r.props.snapshotted(r.applied) {
		p.finish(proposalResult{err: ErrOutcomeUnknown})
	}
	if rs, ok := r.sm.(Restorer); ok {
		if err := rs.Restored(r.applied); err != nil {
			err = fmt.Errorf("%w: after snapshot %d: %w", ErrApplyFault, r.applied, err)
			req.done <- err
			return err
		}
	}
	r.log.Info("installed snapshot", "index", md.GetIndex(), "term", md.GetTerm(), "from", req.msg.GetFrom(),
		"voters", st.cs.GetVoters(), "learners", st.cs.GetLearners())
	req.done <- nil
	return nil
}

func (r *Replica) checkKeysBelowMax() error {
	if _, c, err := r.db.Get(nil); err == nil {
		c.Close()
		return errors.New("replica: DB holds the empty key, which a snapshot cannot replace")
	}
	it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: maxKey})
	if err != nil {
		return err
	}
	defer it.Close()
	if it.First() {
		return fmt.Errorf("replica: DB holds key %q at or above the snapshot bound", it.Key())
	}
	return it.Error()
}

// cleanSnapshotDir removes snapshot files a crash left behind.
func cleanSnapshotDir(fs vfs.FS, dir string) {
	names, err := fs.List(dir)
	if err != nil {
		return
	}
	for _, name := range names {
		if strings.HasPrefix(name, "snap-") && strings.HasSuffix(name, ".sst") {
			fs.Remove(fs.PathJoin(dir, name))
		}
	}
}
