package replica

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// StateMachine is applied to committed entries. Its methods are called only
// from the replica's loop goroutine, one at a time.
type StateMachine interface {
	// Apply applies the command of the committed normal entry at index,
	// writing through b (an indexed batch: reads through b see earlier writes
	// of the same batch). The batch also carries the log entries, HardState
	// and applied index of the same Ready, and is committed after Apply
	// returns; Apply must not commit or close it. It must be deterministic
	// (no clocks, no randomness, no map iteration order) and must not block.
	// cmd is shared with the raft log: Apply must not modify it.
	// The returned value is handed to the proposer of this entry, if it is
	// waiting on this node.
	//
	// A non-nil error says that this node cannot apply the entry correctly
	// (a local read or decode fault): applying it anyway would make this
	// replica's state differ from its peers'. The replica then stops
	// without committing b — the entry, and everything else of its Ready,
	// stays unapplied, so a restart replays it — and Close and Err return
	// an error wrapping err. An answer that is the same on every replica
	// (INVALID input, a failed precondition) is a result, not an error.
	Apply(b *pebble.Batch, index uint64, cmd []byte) (any, error)
}

// Transport carries raft messages to peers.
//
// Send is called only from the replica's loop goroutine, after the state the
// messages depend on is durable. g is the sender's group: every message
// must reach the receiver's Replica.Step with it, so that a replica of
// another group drops it. It must not block: when a peer's queue is
// full it drops messages (raft retransmits). The transport takes ownership
// of msgs and may retain them, but must not modify the messages: their
// entries are shared with the replica's log. A transport that delivers in
// process must therefore hand the receiver a copy (proto.Clone).
type Transport interface {
	Send(g Group, msgs []*pb.Message)
}

// PeerForgetter is implemented by a Transport that keeps per-peer state
// (a queue, a goroutine): Forget is called on the loop goroutine when a
// member leaves the group, and must not block.
type PeerForgetter interface {
	Forget(id uint64)
}

// Status is a point-in-time view of a replica.
type Status struct {
	ID         uint64
	Role       string // "leader", "follower", "candidate", "pre-candidate" or "learner"
	Term       uint64
	Leader     uint64 // 0 if unknown
	Commit     uint64
	Applied    uint64
	FirstIndex uint64   // first index still in the local log
	LastIndex  uint64   // last index in the local log
	Members    []Member // sorted by id; Match set on the leader only
	Snapshots  int      // outgoing snapshot streams in flight
}

// Stats are cumulative counters of a replica's loop, for metrics.
type Stats struct {
	Readies    uint64        // Ready batches handled
	Syncs      uint64        // Ready batches committed with fsync
	SyncTime   time.Duration // total time of the synced commits
	Appended   uint64        // log entries written
	Applied    uint64        // committed entries applied (all types)
	ReadRounds uint64        // ReadIndex rounds issued
	// Foreign counts raft frames and snapshot streams dropped because they
	// named another group (or an earlier epoch of this one).
	Foreign uint64
	// BadCommit counts heartbeats dropped because they declared a commit
	// index beyond this node's log (raft would panic on them).
	BadCommit uint64
}

// loopStats are the loop's counters; written only by the loop goroutine,
// read by Stats from any goroutine.
type loopStats struct {
	readies, syncs, syncNanos, appended, applied, readRounds atomic.Uint64
	foreign, badCommit                                       atomic.Uint64
}

// Replica is one member of a Raft group. Its methods are safe for
// concurrent use.
type Replica struct {
	cfg Config
	log *slog.Logger
	db  *pebble.DB
	sm  StateMachine
	tr  Transport

	propc     chan *proposal
	recvc     chan *pb.Message
	readc     chan *readWaiter
	unreachc  chan uint64
	campaignc chan struct{}
	confc     chan *confReq
	restorec  chan *restoreReq
	snapDonec chan snapDone
	stopc     chan struct{}
	loopDone  chan struct{} // closed when the loop returns, before donec
	donec     chan struct{}

	snapTr     SnapshotTransport // nil if the transport cannot stream snapshots
	sendCtx    context.Context   // cancelled when the loop stops
	sendCancel context.CancelFunc
	wg         sync.WaitGroup // snapshot sender goroutines
	tmpSnapDir string         // SnapshotDir made by Open, removed at Close

	recvMu sync.Mutex // guards recv; a leaf lock
	recv   *snapReceiver

	closeOnce sync.Once
	fatalErr  error // set by the loop before donec is closed
	status    atomic.Pointer[Status]
	group     atomic.Pointer[Group] // set at Open and by a snapshot install
	stats     loopStats

	idBase uint64
	idNext atomic.Uint64

	hand      *handDriver   // nil unless a test drives the loop by hand
	handSteps chan handStep // hand.steps, or nil

	// Owned by the loop goroutine.
	rn       *raft.RawNode
	store    *logStore
	members  map[uint64]bool // from the last applied ConfState
	learner  bool
	applied  uint64
	ticks    int
	propBuf  []*proposal
	unlanded map[uint64]*proposal // proposal id → proposal stepped but not yet seen in Ready.Entries
	landed   map[uint64]*proposal // log index → own proposal appended there
	readSeq  uint64
	readBuf  []*readWaiter // joined, waiting for the next round
	readReqs []*readRound  // rounds waiting for their ReadState, oldest first (at most maxReadRounds)
	readWait []*readRound  // rounds waiting for applied >= index

	addrs          map[uint64]string // member addresses (replicated)
	outgoing       map[uint64]*SnapshotStream
	inflight       map[uint64]inflightSnap // stream id → snapshot being sent
	snapSeq        uint64
	pendingRestore *restoreReq
	confStepped    *proposal // conf change stepped, not yet seen in a Ready
	lastConfIndex  uint64    // highest index of a conf-change entry in the log
	membersDirty   bool      // the member list changed since it was last published
	membersTick    int       // r.ticks when the member list was last computed
	hsTerm, hsVote uint64    // term and vote of the last HardState written
}

type proposal struct {
	id    uint64
	data  []byte // 8-byte id + cmd
	done  chan proposalResult
	index uint64
	term  uint64
}

type proposalResult struct {
	result any
	index  uint64
	err    error
}

type readWaiter struct{ done chan error }

type readRound struct {
	ctx     []byte
	waiters []*readWaiter
	started int    // r.ticks when the current attempt was issued
	lead    uint64 // leader known when the current attempt was issued
	index   uint64
}

const idLen = 8

// Open starts a replica over db. If db holds no raft state under
// cfg.Prefix, it bootstraps a new group whose voters are cfg.Peers (every
// member of a new cluster must bootstrap with the same Peers). Otherwise it
// resumes from the persisted HardState, ConfState, log and applied index:
// committed entries after the applied index are re-applied exactly once.
// Open starts the loop goroutine; Close stops it. The caller keeps ownership
// of db and must close it after Close.
func Open(cfg Config, db *pebble.DB, sm StateMachine, tr Transport) (*Replica, error) {
	return open(cfg, db, sm, tr, nil)
}

// open is Open; hand, if not nil, drives the loop instead of a ticker.
func open(cfg Config, db *pebble.DB, sm StateMachine, tr Transport, hand *handDriver) (*Replica, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if db == nil || sm == nil || tr == nil {
		return nil, errors.New("replica: open: db, state machine and transport are required")
	}
	lg := cfg.Logger.With("component", "replica", "id", cfg.ID)
	st := newLogStore(db, cfg.Prefix)
	found, err := st.load()
	if err != nil {
		return nil, fmt.Errorf("replica: open: load raft state: %w", err)
	}
	switch {
	case found:
	case cfg.Join:
		lg.Info("empty node joining: waiting for a leader's snapshot")
	case len(cfg.Peers) == 0:
		return nil, errors.New("replica: open: no raft state in db and no Peers to bootstrap (set Join to join an existing group)")
	default:
		if err := st.bootstrap(Group{Name: cfg.Group, Epoch: 1}, cfg.Peers, cfg.PeerAddrs); err != nil {
			return nil, fmt.Errorf("replica: open: bootstrap: %w", err)
		}
		lg.Info("bootstrapped new group", "peers", cfg.Peers)
	}
	addrs, err := st.loadMembers(db)
	if err != nil {
		return nil, fmt.Errorf("replica: open: load members: %w", err)
	}
	group, err := LoadGroup(db, cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("replica: open: %w", err)
	}
	if group.IsZero() && found {
		// Raft state written before groups were recorded: it is the
		// configured group's first epoch.
		group = Group{Name: cfg.Group, Epoch: 1}
		if err := db.Set(st.keyGroup, encodeGroup(group), pebble.Sync); err != nil {
			return nil, fmt.Errorf("replica: open: record group: %w", err)
		}
	}
	tmpSnapDir := ""
	if cfg.SnapshotDir == "" {
		if cfg.FS != vfs.Default {
			return nil, errors.New("replica: open: SnapshotDir must be set when FS is not the OS file system")
		}
		if cfg.SnapshotDir, err = os.MkdirTemp("", "cleave-snap-"); err != nil {
			return nil, fmt.Errorf("replica: open: snapshot dir: %w", err)
		}
		tmpSnapDir = cfg.SnapshotDir
	} else {
		cleanSnapshotDir(cfg.FS, cfg.SnapshotDir)
	}
	rc := &raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   st,
		Applied:                   st.applied,
		MaxSizePerMsg:             cfg.MaxSizePerMsg,
		MaxUncommittedEntriesSize: cfg.MaxUncommittedBytes,
		MaxInflightMsgs:           cfg.MaxInflight,
		MaxInflightBytes:          cfg.MaxInflightBytes,
		CheckQuorum:               true,
		PreVote:                   true,
		DisableProposalForwarding: true,
		StepDownOnRemoval:         true,
		Logger:                    raftLogger{lg},
	}
	rn, err := raft.NewRawNode(rc)
	if err != nil {
		return nil, fmt.Errorf("replica: open: %w", err)
	}
	r := &Replica{
		cfg:           cfg,
		log:           lg,
		db:            db,
		sm:            sm,
		tr:            tr,
		propc:         make(chan *proposal, cfg.MaxBatch),
		recvc:         make(chan *pb.Message, 4096),
		readc:         make(chan *readWaiter, cfg.MaxBatch),
		unreachc:      make(chan uint64, 64),
		campaignc:     make(chan struct{}, 1),
		confc:         make(chan *confReq),
		restorec:      make(chan *restoreReq),
		snapDonec:     make(chan snapDone, 16),
		stopc:         make(chan struct{}),
		loopDone:      make(chan struct{}),
		donec:         make(chan struct{}),
		tmpSnapDir:    tmpSnapDir,
		idBase:        rand.Uint64(),
		rn:            rn,
		store:         st,
		applied:       st.applied,
		unlanded:      make(map[uint64]*proposal),
		landed:        make(map[uint64]*proposal),
		addrs:         addrs,
		outgoing:      make(map[uint64]*SnapshotStream),
		inflight:      make(map[uint64]inflightSnap),
		snapSeq:       rand.Uint64() >> 1,
		lastConfIndex: st.lastIndex, // conservatively: a conf change may be pending in the log
		hsTerm:        st.hs.GetTerm(),
		hsVote:        st.hs.GetVote(),
		hand:          hand,
	}
	if hand != nil {
		r.handSteps = hand.steps
	}
	r.group.Store(&group)
	r.snapTr, _ = tr.(SnapshotTransport)
	r.sendCtx, r.sendCancel = context.WithCancel(context.Background())
	st.makeSnapshot = r.makeSnapshot
	r.setMembers(st.cs)
	r.publishStatus()
	lg.Info("opened", "group", group.String(), "term", st.hs.GetTerm(), "commit", st.hs.GetCommit(), "applied", st.applied,
		"first", st.truncIndex+1, "last", st.lastIndex, "voters", st.cs.GetVoters())
	go r.run()
	return r, nil
}

// Propose replicates cmd and waits until it is committed and applied on
// this node, returning Apply's result and the entry's log index. Only the
// leader accepts proposals; elsewhere it returns *NotLeaderError at once.
// Concurrent callers share one Ready and one fsync.
//
// Errors: *NotLeaderError, ErrProposalDropped and ErrStopped (not
// applied; retry elsewhere or later), ErrProposalLost (the entry was
// overwritten by another leader: not applied), ErrOutcomeUnknown and
// ctx.Err() (outcome unknown).
func (r *Replica) Propose(ctx context.Context, cmd []byte) (result any, index uint64, err error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	data := make([]byte, idLen+len(cmd))
	binary.BigEndian.PutUint64(data, r.idBase+r.idNext.Add(1))
	copy(data[idLen:], cmd)
	p := &proposal{id: binary.BigEndian.Uint64(data), data: data, done: make(chan proposalResult, 1)}
	select {
	case r.propc <- p:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	case <-r.donec:
		return nil, 0, ErrStopped
	}
	select {
	case res := <-p.done:
		return res.result, res.index, res.err
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	case <-r.donec:
		select {
		case res := <-p.done:
			return res.result, res.index, res.err
		default:
			return nil, 0, ErrStopped
		}
	}
}

// ReadIndex is a linearizable read barrier that works on the leader and on
// followers: it returns nil once this node's applied state includes every
// write committed before the call. Concurrent callers share one raft
// ReadIndex round. It returns a *NotLeaderError if no leader is known, and
// ctx.Err() if ctx ends first.
func (r *Replica) ReadIndex(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w := &readWaiter{done: make(chan error, 1)}
	select {
	case r.readc <- w:
	case <-ctx.Done():
		return ctx.Err()
	case <-r.donec:
		return ErrStopped
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-r.donec:
		select {
		case err := <-w.done:
			return err
		default:
			return ErrStopped
		}
	}
}

// Step hands a message received from a peer of group g to the loop. It
// never blocks: when the loop's inbox is full the message is dropped (raft
// retransmits), and a message of another group than this replica's is
// dropped and counted (Stats.Foreign). The replica takes ownership of m.
func (r *Replica) Step(g Group, m *pb.Message) {
	if m == nil || !r.accepts(g) {
		return
	}
	select {
	case r.recvc <- m:
	case <-r.donec:
	default:
		r.log.Debug("inbox full, dropping message", "type", m.GetType(), "from", m.GetFrom())
	}
}

// Campaign asks this member to start an election now instead of after an
// election timeout: a group that has just been formed (the new cluster of a
// split) elects its first leader without waiting. It does not block; a
// member that already knows a leader ignores it.
func (r *Replica) Campaign() {
	select {
	case r.campaignc <- struct{}{}:
	default:
	}
}

// campaign runs on the loop.
func (r *Replica) campaign() {
	if r.rn.BasicStatus().Lead != 0 {
		return
	}
	if err := r.rn.Campaign(); err != nil {
		r.log.Debug("campaign", "err", err)
	}
}

// ReportUnreachable tells raft that the last messages to id were not
// delivered, so the leader probes it instead of streaming. Never blocks.
func (r *Replica) ReportUnreachable(id uint64) {
	select {
	case r.unreachc <- id:
	default:
	}
}

// Status returns the latest published status. It is cheap and safe for
// concurrent use.
func (r *Replica) Status() Status { return *r.status.Load() }

// Stats returns the loop's cumulative counters. Safe for concurrent use.
func (r *Replica) Stats() Stats {
	s := &r.stats
	return Stats{
		Readies: s.readies.Load(), Syncs: s.syncs.Load(), SyncTime: time.Duration(s.syncNanos.Load()),
		Appended: s.appended.Load(), Applied: s.applied.Load(), ReadRounds: s.readRounds.Load(),
		Foreign: s.foreign.Load(), BadCommit: s.badCommit.Load(),
	}
}

// Applied returns the index of the last entry applied on this node.
func (r *Replica) Applied() uint64 { return r.status.Load().Applied }

// Leader returns the id of the leader this node knows of, or 0.
func (r *Replica) Leader() uint64 { return r.status.Load().Leader }

// Close stops the loop; pending and later calls get ErrStopped. It does not
// close the DB. It returns the fatal error that stopped the replica, if any.
// Close is idempotent.
func (r *Replica) Close() error {
	r.closeOnce.Do(func() { close(r.stopc) })
	<-r.donec
	return r.fatalErr
}

// Done is closed when the loop has stopped, after Close or a fatal error.
func (r *Replica) Done() <-chan struct{} { return r.donec }

// Err returns the fatal error that stopped the replica (a storage failure,
// or ErrApplyFault), or nil while it runs and after a plain Close.
func (r *Replica) Err() error {
	select {
	case <-r.donec:
		return r.fatalErr
	default:
		return nil
	}
}

// run is the loop goroutine: it owns the RawNode, the log store and all
// loop-owned fields of r.
func (r *Replica) run() {
	var tickc <-chan time.Time
	if r.hand != nil {
		tickc = r.hand.tick
	} else {
		ticker := time.NewTicker(r.cfg.TickInterval)
		defer ticker.Stop()
		tickc = ticker.C
	}
	err := r.loop(tickc)
	if err != nil {
		r.log.Error("replica stopped on fatal error", "err", err)
		r.fatalErr = err
	}
	close(r.loopDone)
	r.sendCancel()
	r.wg.Wait()
	r.dropUnsentSnapshots()
	if req := r.pendingRestore; req != nil {
		r.pendingRestore = nil
		r.cfg.FS.Remove(req.path)
		req.done <- ErrStopped
	}
	r.recvMu.Lock()
	if r.recv != nil {
		r.recv.abort()
		r.recv = nil
	}
	r.recvMu.Unlock()
	if r.confStepped != nil {
		r.confStepped.done <- proposalResult{err: ErrOutcomeUnknown}
		r.confStepped = nil
	}
	r.failAll()
	r.publishStatus()
	if r.tmpSnapDir != "" {
		os.RemoveAll(r.tmpSnapDir)
	}
	close(r.donec)
}

func (r *Replica) loop(tickc <-chan time.Time) error {
	for {
		var handDone chan struct{}
		select {
		case <-tickc:
			r.tick()
		case p := <-r.propc:
			r.propBuf = append(r.propBuf, p)
		case m := <-r.recvc:
			r.step(m)
		case w := <-r.readc:
			r.readJoin(w)
		case id := <-r.unreachc:
			r.rn.ReportUnreachable(id)
		case <-r.campaignc:
			r.campaign()
		case req := <-r.confc:
			r.proposeConf(req)
		case req := <-r.restorec:
			r.stepRestore(req)
		case d := <-r.snapDonec:
			r.snapshotDone(d)
		case s := <-r.handSteps:
			if s.before != nil {
				s.before()
			}
			handDone = s.done
		case <-r.stopc:
			return nil
		}
		r.drain()
		r.flushProposals()
		r.maybeStartRead()
		for r.rn.HasReady() {
			if err := r.handleReady(); err != nil {
				return err
			}
		}
		r.declineRestore()
		r.dropUnsentSnapshots()
		if err := r.maybeCompact(); err != nil {
			return err
		}
		r.publishStatus()
		if handDone != nil {
			close(handDone)
		}
	}
}

// drain folds up to MaxBatch already queued inputs into this iteration.
func (r *Replica) drain() {
	for range r.cfg.MaxBatch {
		select {
		case p := <-r.propc:
			r.propBuf = append(r.propBuf, p)
		case m := <-r.recvc:
			r.step(m)
		case w := <-r.readc:
			r.readJoin(w)
		case id := <-r.unreachc:
			r.rn.ReportUnreachable(id)
		case <-r.campaignc:
			r.campaign()
		case d := <-r.snapDonec:
			r.snapshotDone(d)
		default:
			return
		}
	}
}

func (r *Replica) tick() {
	r.rn.Tick()
	r.ticks++
	keep := r.readReqs[:0]
	for _, rr := range r.readReqs {
		if r.ticks-rr.started < r.cfg.ElectionTicks {
			keep = append(keep, rr)
			continue
		}
		// The round got no answer within an election timeout (lost
		// message or leader change): retry with a fresh context.
		if lead := r.rn.BasicStatus().Lead; lead == raft.None {
			for _, w := range rr.waiters {
				w.done <- &NotLeaderError{}
			}
			continue
		}
		r.issueRead(rr)
		keep = append(keep, rr)
	}
	clear(r.readReqs[len(keep):])
	r.readReqs = keep
}

// step hands a peer's message to raft after dropping what cannot be
// valid: messages for another node, local message types, proposals (never
// forwarded in this design), snapshots without their data, messages from
// nodes outside the configuration, and heartbeats that declare a commit
// index beyond this node's log. A leader's heartbeat commits at most what
// the follower acknowledged having persisted, so a larger one comes from a
// leader that confuses this node with another (a stale or foreign group);
// raft would panic on it ("tocommit is out of range").
func (r *Replica) step(m *pb.Message) {
	t := m.GetType()
	switch {
	case m.GetTo() != r.cfg.ID, m.GetFrom() == 0, m.GetFrom() == r.cfg.ID:
		r.log.Warn("dropping misaddressed message", "type", t, "from", m.GetFrom(), "to", m.GetTo())
		return
	case raft.IsLocalMsg(t), t == pb.MsgProp:
		r.log.Warn("dropping message of a type peers must not send", "type", t, "from", m.GetFrom())
		return
	case t == pb.MsgSnap:
		// Snapshots arrive through ReceiveSnapshot, with their data.
		r.log.Warn("dropping snapshot message that came without its data", "from", m.GetFrom())
		return
	case len(r.members) > 0 && !r.members[m.GetFrom()]:
		r.log.Debug("dropping message from unknown peer", "type", t, "from", m.GetFrom())
		return
	case t == pb.MsgHeartbeat && m.GetCommit() > r.store.lastIndex:
		r.stats.badCommit.Add(1)
		r.log.Warn("dropping heartbeat that commits beyond the local log", "from", m.GetFrom(), "commit", m.GetCommit(), "last", r.store.lastIndex)
		return
	}
	if err := r.rn.Step(m); err != nil {
		r.log.Debug("raft rejected message", "type", t, "from", m.GetFrom(), "err", err)
	}
}

// flushProposals steps all buffered proposals as one MsgProp.
func (r *Replica) flushProposals() {
	if len(r.propBuf) == 0 {
		return
	}
	props := r.propBuf
	r.propBuf = r.propBuf[:0]
	fail := func(err error) {
		for _, p := range props {
			p.done <- proposalResult{err: err}
		}
	}
	if st := r.rn.BasicStatus(); st.RaftState != raft.StateLeader {
		fail(&NotLeaderError{Leader: st.Lead})
		return
	}
	ents := make([]*pb.Entry, len(props))
	for i, p := range props {
		ents[i] = &pb.Entry{Data: p.data}
	}
	err := r.rn.Step(&pb.Message{Type: pb.MsgProp.Enum(), From: new(r.cfg.ID), Entries: ents})
	if err != nil {
		if st := r.rn.BasicStatus(); st.RaftState != raft.StateLeader {
			fail(&NotLeaderError{Leader: st.Lead})
		} else if errors.Is(err, raft.ErrProposalDropped) {
			fail(ErrProposalDropped)
		} else {
			fail(fmt.Errorf("replica: propose: %w", err))
		}
		return
	}
	for _, p := range props {
		r.unlanded[p.id] = p
	}
}

func (r *Replica) readJoin(w *readWaiter) {
	if r.rn.BasicStatus().Lead == raft.None {
		w.done <- &NotLeaderError{}
		return
	}
	r.readBuf = append(r.readBuf, w)
}

// maxReadRounds bounds the ReadIndex rounds in flight at once. Reads that
// arrive while a round is out start the next one at once instead of
// waiting for it to return, so a read waits for about one round trip to a
// quorum, not up to two; each round is one heartbeat per follower.
const maxReadRounds = 4

// maybeStartRead starts a ReadIndex round for the waiters that joined since
// the last round started, if fewer than maxReadRounds rounds are waiting
// for their ReadState.
func (r *Replica) maybeStartRead() {
	if len(r.readReqs) > 0 {
		// A leader change loses rounds in flight (raft resets its read-only
		// state); retry at once with the new leader instead of waiting for
		// the retry timeout.
		if lead := r.rn.BasicStatus().Lead; lead != raft.None {
			for _, rr := range r.readReqs {
				if lead != rr.lead {
					r.issueRead(rr)
				}
			}
		}
	}
	if len(r.readBuf) == 0 || len(r.readReqs) >= maxReadRounds {
		return
	}
	rr := &readRound{waiters: r.readBuf}
	r.readBuf = nil
	r.readReqs = append(r.readReqs, rr)
	r.issueRead(rr)
}

func (r *Replica) issueRead(rr *readRound) {
	r.readSeq++
	rr.ctx = binary.BigEndian.AppendUint64(nil, r.readSeq)
	rr.started = r.ticks
	rr.lead = r.rn.BasicStatus().Lead
	r.stats.readRounds.Add(1)
	r.rn.ReadIndex(rr.ctx)
}

// handleReady persists, applies, sends and advances one Ready. Everything it
// writes goes into one indexed batch, synced when raft requires it.
//
// A leader sends its messages (appends, heartbeats) before it persists:
// its followers then write the new entries while it writes them, instead
// of after (Raft thesis §10.2.1; etcd does the same). This is safe because
// a leader's messages do not depend on its own durable state: its
// HardState's term and vote do not change while it leads, and an entry
// counts as committed only once the followers' acknowledgements are
// stepped, in a later iteration of the loop, after this Ready's write has
// been synced; so no entry is applied or acknowledged to a client before
// the leader's copy is durable too. Followers and candidates send after
// persisting, as raft requires (their messages acknowledge entries and
// grant votes).
func (r *Replica) handleReady() error {
	leading := r.rn.BasicStatus().RaftState == raft.StateLeader
	rd := r.rn.Ready()
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := r.restore(rd.Snapshot); err != nil {
			return err
		}
	}
	msgs := rd.Messages
	var snaps []*pb.Message
	if slices.ContainsFunc(msgs, isSnap) {
		// Snapshots go their own way (sendSnapshot, after Advance).
		msgs = nil
		for _, m := range rd.Messages {
			if isSnap(m) {
				snaps = append(snaps, m)
			} else {
				msgs = append(msgs, m)
			}
		}
	}
	if hs := rd.HardState; leading && hs != nil && (hs.GetTerm() != r.hsTerm || hs.GetVote() != r.hsVote) {
		leading = false // cannot happen while leading; be conservative
	}
	if leading && len(msgs) > 0 {
		r.tr.Send(r.Group(), msgs)
		msgs = nil
	}
	b := r.db.NewIndexedBatch()
	defer b.Close()

	var delivered []proposalResult
	var deliverTo []*proposal
	lose := func(p *proposal) {
		delivered = append(delivered, proposalResult{err: ErrProposalLost})
		deliverTo = append(deliverTo, p)
	}

	if err := r.store.writeEntries(b, rd.Entries); err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	r.trackLanded(rd.Entries, lose)
	r.trackConf(rd.Entries)
	if rd.HardState != nil {
		if err := r.store.setHardState(b, rd.HardState); err != nil {
			return fmt.Errorf("write hard state: %w", err)
		}
		r.hsTerm, r.hsVote = rd.HardState.GetTerm(), rd.HardState.GetVote()
	}
	for _, e := range rd.CommittedEntries {
		idx := e.GetIndex()
		p := r.landed[idx]
		delete(r.landed, idx)
		var res any
		ours := false
		switch e.GetType() {
		case pb.EntryNormal:
			data := e.GetData()
			if len(data) == 0 {
				break // a new leader's empty entry
			}
			if len(data) < idLen {
				r.log.Error("skipping malformed entry", "index", idx, "len", len(data))
				break
			}
			id := binary.BigEndian.Uint64(data)
			var err error
			if res, err = r.sm.Apply(b, idx, data[idLen:]); err != nil {
				// b is not committed: nothing of this Ready is applied.
				return fmt.Errorf("%w: entry %d: %w", ErrApplyFault, idx, err)
			}
			if p == nil {
				// Raft did not show us where it landed; match by id.
				if q, ok := r.unlanded[id]; ok {
					delete(r.unlanded, id)
					p = q
				}
			}
			ours = p != nil && p.id == id
		case pb.EntryConfChange, pb.EntryConfChangeV2:
			if err := r.applyConfChange(b, e); err != nil {
				return err
			}
			ours = p != nil && e.GetType() == pb.EntryConfChange && confChangeID(e.GetData()) == p.id
		}
		if p != nil {
			if ours {
				delivered = append(delivered, proposalResult{result: res, index: idx})
				deliverTo = append(deliverTo, p)
			} else {
				lose(p)
			}
		}
		r.applied = idx
	}
	if len(rd.CommittedEntries) > 0 {
		if err := r.store.setApplied(b, r.applied); err != nil {
			return fmt.Errorf("write applied index: %w", err)
		}
	}
	if !b.Empty() {
		opts := pebble.NoSync
		var start time.Time
		if rd.MustSync {
			opts = pebble.Sync
			start = time.Now()
		}
		if err := b.Commit(opts); err != nil {
			return fmt.Errorf("commit ready: %w", err)
		}
		if rd.MustSync {
			r.stats.syncs.Add(1)
			r.stats.syncNanos.Add(uint64(time.Since(start)))
		}
	}
	r.stats.readies.Add(1)
	r.stats.appended.Add(uint64(len(rd.Entries)))
	r.stats.applied.Add(uint64(len(rd.CommittedEntries)))
	r.store.commitEntries(rd.Entries)
	if r.hand != nil && r.hand.afterReady != nil {
		r.hand.afterReady()
	}

	if len(msgs) > 0 {
		r.tr.Send(r.Group(), msgs)
	}
	for i, p := range deliverTo {
		p.done <- delivered[i]
	}
	for _, rs := range rd.ReadStates {
		i := slices.IndexFunc(r.readReqs, func(rr *readRound) bool { return string(rs.RequestCtx) == string(rr.ctx) })
		if i < 0 {
			continue // an answer to an attempt since retried
		}
		rr := r.readReqs[i]
		rr.index = rs.Index
		r.readWait = append(r.readWait, rr)
		r.readReqs = slices.Delete(r.readReqs, i, i+1)
	}
	r.releaseReads()
	r.rn.Advance(rd)
	for _, m := range snaps {
		r.sendSnapshot(m)
	}
	return nil
}

func isSnap(m *pb.Message) bool { return m.GetType() == pb.MsgSnap }

// maybeCompact drops applied log entries beyond Config.LogRetention, never
// past the index of a snapshot being sent (its follower needs the entries
// after it).
func (r *Replica) maybeCompact() error {
	ret := r.cfg.LogRetention
	if r.applied <= ret {
		return nil
	}
	to := r.applied - ret
	for _, s := range r.inflight {
		to = min(to, s.index)
	}
	if to < r.store.truncIndex+max(1, ret/16) {
		return nil
	}
	if err := r.store.compact(to); err != nil {
		return fmt.Errorf("compact log to %d: %w", to, err)
	}
	return nil
}

// trackLanded records the log index of own proposals appearing in ents and
// reports as lost own proposals whose index is overwritten or truncated.
func (r *Replica) trackLanded(ents []*pb.Entry, lose func(*proposal)) {
	if len(ents) == 0 {
		return
	}
	first, last := ents[0].GetIndex(), ents[len(ents)-1].GetIndex()
	for _, e := range ents {
		idx := e.GetIndex()
		if p := r.landed[idx]; p != nil && p.term != e.GetTerm() {
			delete(r.landed, idx)
			lose(p)
		}
		if len(r.unlanded) == 0 || e.GetType() != pb.EntryNormal || len(e.GetData()) < idLen {
			continue
		}
		id := binary.BigEndian.Uint64(e.GetData())
		if p, ok := r.unlanded[id]; ok {
			delete(r.unlanded, id)
			p.index, p.term = idx, e.GetTerm()
			r.landed[idx] = p
		}
	}
	if first <= r.store.lastIndex && last < r.store.lastIndex {
		// The log was truncated after last: own entries there are gone.
		var gone []uint64
		for idx := range r.landed {
			if idx > last {
				gone = append(gone, idx)
			}
		}
		slices.Sort(gone)
		for _, idx := range gone {
			lose(r.landed[idx])
			delete(r.landed, idx)
		}
	}
}

func (r *Replica) applyConfChange(b *pebble.Batch, e *pb.Entry) error {
	var cc pb.ConfChangeI
	if e.GetType() == pb.EntryConfChange {
		c := &pb.ConfChange{}
		if err := proto.Unmarshal(e.GetData(), c); err != nil {
			return fmt.Errorf("decode conf change at %d: %w", e.GetIndex(), err)
		}
		cc = c
	} else {
		c := &pb.ConfChangeV2{}
		if err := proto.Unmarshal(e.GetData(), c); err != nil {
			return fmt.Errorf("decode conf change at %d: %w", e.GetIndex(), err)
		}
		cc = c
	}
	if c, ok := cc.(*pb.ConfChange); ok {
		if err := r.recordMemberAddr(b, c); err != nil {
			return fmt.Errorf("write member address: %w", err)
		}
	}
	cs := r.rn.ApplyConfChange(cc)
	if err := r.store.setConfState(b, cs); err != nil {
		return fmt.Errorf("write conf state: %w", err)
	}
	r.store.cs = cs
	old := r.members
	r.setMembers(cs)
	if f, ok := r.tr.(PeerForgetter); ok {
		for id := range old {
			if !r.members[id] && id != r.cfg.ID {
				f.Forget(id)
			}
		}
	}
	r.log.Info("applied conf change", "index", e.GetIndex(), "voters", cs.GetVoters(), "learners", cs.GetLearners())
	return nil
}

func (r *Replica) setMembers(cs *pb.ConfState) {
	m := make(map[uint64]bool)
	for _, ids := range [][]uint64{cs.GetVoters(), cs.GetVotersOutgoing(), cs.GetLearners(), cs.GetLearnersNext()} {
		for _, id := range ids {
			m[id] = true
		}
	}
	r.members = m
	r.learner = slices.Contains(cs.GetLearners(), r.cfg.ID) || slices.Contains(cs.GetLearnersNext(), r.cfg.ID)
	r.membersDirty = true
}

// releaseReads answers the rounds whose read index is applied.
func (r *Replica) releaseReads() {
	keep := r.readWait[:0]
	for _, rr := range r.readWait {
		if rr.index > r.applied {
			keep = append(keep, rr)
			continue
		}
		for _, w := range rr.waiters {
			w.done <- nil
		}
	}
	clear(r.readWait[len(keep):])
	r.readWait = keep
}

// failAll answers every waiter when the loop stops: proposals not yet
// stepped into raft with ErrStopped (not applied), those raft has taken
// with ErrOutcomeUnknown, reads with ErrStopped.
func (r *Replica) failAll() {
	fail := func(p *proposal, err error) {
		select {
		case p.done <- proposalResult{err: err}:
		default:
		}
	}
	for _, p := range r.propBuf {
		fail(p, ErrStopped)
	}
	for _, p := range r.unlanded {
		fail(p, ErrOutcomeUnknown)
	}
	for _, p := range r.landed {
		fail(p, ErrOutcomeUnknown)
	}
	r.propBuf, r.unlanded, r.landed = nil, nil, nil
	var ws []*readWaiter
	ws = append(ws, r.readBuf...)
	for _, rr := range r.readReqs {
		ws = append(ws, rr.waiters...)
	}
	for _, rr := range r.readWait {
		ws = append(ws, rr.waiters...)
	}
	for _, w := range ws {
		select {
		case w.done <- ErrStopped:
		default:
		}
	}
	r.readBuf, r.readReqs, r.readWait = nil, nil, nil
}

// publishStatus publishes the loop's state for Status, if it changed. The
// member list is recomputed when the configuration or the role changed,
// and otherwise at most once per tick: on the leader it carries each
// member's Match, which moves with every write, and building it on every
// Ready cost more than the rest of the status together.
func (r *Replica) publishStatus() {
	bs := r.rn.BasicStatus()
	prev := r.status.Load()
	st := &Status{
		ID:         r.cfg.ID,
		Term:       bs.GetTerm(),
		Leader:     bs.Lead,
		Commit:     bs.GetCommit(),
		Applied:    r.applied,
		FirstIndex: r.store.truncIndex + 1,
		LastIndex:  r.store.lastIndex,
		Snapshots:  len(r.inflight),
	}
	switch bs.RaftState {
	case raft.StateLeader:
		st.Role = "leader"
	case raft.StateCandidate:
		st.Role = "candidate"
	case raft.StatePreCandidate:
		st.Role = "pre-candidate"
	default:
		st.Role = "follower"
		if r.learner {
			st.Role = "learner"
		}
	}
	if prev == nil || r.membersDirty || r.membersTick != r.ticks || prev.Role != st.Role {
		st.Members = r.memberList(bs.RaftState == raft.StateLeader)
		r.membersDirty, r.membersTick = false, r.ticks
	} else {
		st.Members = prev.Members // never modified once published
		if st.sameScalars(prev) {
			return
		}
	}
	r.status.Store(st)
}

// sameScalars reports whether s and o agree on everything but Members.
func (s *Status) sameScalars(o *Status) bool {
	return s.ID == o.ID && s.Role == o.Role && s.Term == o.Term && s.Leader == o.Leader &&
		s.Commit == o.Commit && s.Applied == o.Applied && s.FirstIndex == o.FirstIndex &&
		s.LastIndex == o.LastIndex && s.Snapshots == o.Snapshots
}
