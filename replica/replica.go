package replica

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/cleavefs/cleave/internal/durable"
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
// Send is called from the replica's loop goroutine, or from its writer
// goroutine while the loop has a write in flight (and sends nothing
// itself), never from both at once; always after the state the messages
// depend on is durable. g is the sender's group: every message
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

// Replica is one member of a Raft group. Its methods are safe for
// concurrent use.
//
// Its fields fall in three groups by who may touch them: set once by Open
// and read-only after; shared with any goroutine, through channels, atomics
// or recvMu; and owned by the loop goroutine (run), which alone reads and
// writes them — no lock guards them.
type Replica struct {
	// Set by Open, read-only after.
	cfg        Config
	log        *slog.Logger
	db         *pebble.DB
	sm         StateMachine
	tr         Transport
	snapTr     SnapshotTransport // nil if the transport cannot stream snapshots
	tmpSnapDir string            // SnapshotDir made by Open, removed at Close
	idBase     uint64
	hand       *handDriver   // nil unless a test drives the loop by hand
	handSteps  chan handStep // hand.steps, or nil

	// Inputs to the loop, from any goroutine.
	propc     chan *proposal
	recvc     chan *pb.Message
	readc     chan *readWaiter
	unreachc  chan uint64
	campaignc chan struct{}
	wakec     chan struct{} // Wake
	confc     chan *confReq
	restorec  chan *restoreReq
	snapDonec chan snapDone    // from the snapshot sender goroutines
	writtenc  chan *readyWrite // from the writer goroutine: a batch committed
	stopc     chan struct{}
	closeOnce sync.Once // closes stopc

	// Outputs of the loop, read by any goroutine.
	loopDone chan struct{} // closed when the loop returns, before donec
	donec    chan struct{} // closed when the loop goroutine ends
	fatalErr error         // set by the loop before donec is closed; read after
	status   atomic.Pointer[Status]
	group    atomic.Pointer[Group] // set at Open and by a snapshot install; CAS by accepts
	stats    loopStats
	idNext   atomic.Uint64 // proposal ids, by Propose

	// The snapshot sender goroutines the loop starts.
	sendCtx    context.Context // cancelled when the loop stops
	sendCancel context.CancelFunc
	wg         sync.WaitGroup

	recvMu sync.Mutex    // guards recv; a leaf lock
	recv   *snapReceiver // the incoming snapshot stream (ReceiveSnapshot)

	// Owned by the loop goroutine.
	writec         chan *readyWrite // to the writer goroutine; closed when the loop ends
	writing        *readyWrite      // the Ready whose batch the writer is committing, or nil
	ready          readyWrite       // the record behind writing (one Ready at a time)
	held           heldNotices      // a leader's notices held back (notice.go)
	arrived        int              // inputs folded in while writing was in flight
	loaded         bool             // the last synced write saw more inputs arrive than lightLoad
	rn             *raft.RawNode
	store          *logStore
	applied        uint64
	ticks          int
	ticker         *time.Ticker    // the loop's ticker; nil while driven by hand
	idle           bool            // ticking at IdleTickInterval (idle.go)
	quiet          int             // ticks since the last activity (idle.go)
	hsTerm, hsVote uint64          // term and vote of the last HardState written
	hsCommit       uint64          // commit of the last HardState written
	props          proposalTracker // own proposals, Propose to answer
	reads          readRounds      // ReadIndex rounds
	lease          readLease       // the read lease while leading (lease.go)
	fresh          bool            // a new group's member: it answered no leader before this Open
	now            func() time.Time

	// Membership, owned by the loop goroutine.
	members       map[uint64]bool // from the last applied ConfState
	learner       bool
	addrs         map[uint64]string // member addresses (replicated)
	confStepped   *proposal         // conf change stepped, not yet seen in a Ready
	lastConfIndex uint64            // highest index of a conf-change entry in the log
	membersDirty  bool              // the member list changed since it was last published
	acked         map[uint64]bool   // members seen acting on durable state (acked.go)
	ackedNew      []uint64          // of those, the marks not written yet
	membersTick   int               // r.ticks when the member list was last computed

	// Snapshots, owned by the loop goroutine.
	outgoing       map[uint64]*SnapshotStream
	inflight       map[uint64]inflightSnap // stream id → snapshot being sent
	snapSeq        uint64
	pendingRestore *restoreReq

	// Log segment files, owned by the loop goroutine (maybeCompactFiles).
	filesTo      uint64          // the segment files hold no entry up to it
	filesFlush   <-chan struct{} // a flush whose end allows dropping files up to filesFlushTo
	filesFlushTo uint64

	drops dropLog // rate limit of the log of dropped frames; loop goroutine
}

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
	st, addrs, group, err := openState(cfg, db, lg)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			st.close() // the loop did not start to close it
		}
	}()
	acked, err := st.loadAcked(db)
	if err != nil {
		return nil, fmt.Errorf("replica: open: load member marks: %w", err)
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
	rn, err := newRawNode(cfg, st, lg)
	if err != nil {
		return nil, err
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
		wakec:         make(chan struct{}, 1),
		confc:         make(chan *confReq),
		restorec:      make(chan *restoreReq),
		snapDonec:     make(chan snapDone, 16),
		writec:        make(chan *readyWrite, 1),
		writtenc:      make(chan *readyWrite, 1),
		stopc:         make(chan struct{}),
		loopDone:      make(chan struct{}),
		donec:         make(chan struct{}),
		tmpSnapDir:    tmpSnapDir,
		idBase:        rand.Uint64(),
		rn:            rn,
		store:         st,
		applied:       st.applied,
		props:         newProposalTracker(),
		addrs:         addrs,
		acked:         acked,
		outgoing:      make(map[uint64]*SnapshotStream),
		inflight:      make(map[uint64]inflightSnap),
		snapSeq:       rand.Uint64() >> 1,
		lastConfIndex: st.lastIndex, // conservatively: a conf change may be pending in the log
		hsTerm:        st.hs.GetTerm(),
		hsVote:        st.hs.GetVote(),
		hsCommit:      st.hs.GetCommit(),
		hand:          hand,
		// Term 1 is a new group's (bootstrapped or forked): no leader was
		// ever elected in it, so this member answered none (refusesVotes).
		fresh: st.hs.GetTerm() <= 1 && !cfg.Join,
		now:   cfg.clock,
	}
	if r.now == nil {
		r.now = time.Now
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
	started = true
	go r.run()
	return r, nil
}

// openState loads the raft state under cfg.Prefix in db, first
// bootstrapping a new group if db holds none and cfg has Peers, and
// returns the log store, the members' addresses and the group.
func openState(cfg Config, db *pebble.DB, lg *slog.Logger) (_ *logStore, _ map[uint64]string, _ Group, err error) {
	st := newLogStore(db, cfg.Prefix)
	st.fs, st.dir, st.segBytes = cfg.FS, cfg.LogDir, cfg.LogSegmentBytes
	defer func() {
		if err != nil {
			st.close()
		}
	}()
	found, err := st.load()
	if err != nil {
		return nil, nil, Group{}, fmt.Errorf("replica: open: load raft state: %w", err)
	}
	switch {
	case found:
	case cfg.Join:
		lg.Info("empty node joining: waiting for a leader's snapshot")
	case len(cfg.Peers) == 0:
		return nil, nil, Group{}, errors.New("replica: open: no raft state in db and no Peers to bootstrap (set Join to join an existing group)")
	default:
		if err := st.bootstrap(Group{Name: cfg.Group, Epoch: 1}, cfg.Peers, cfg.PeerAddrs); err != nil {
			return nil, nil, Group{}, fmt.Errorf("replica: open: bootstrap: %w", err)
		}
		lg.Info("bootstrapped new group", "peers", cfg.Peers)
	}
	addrs, err := st.loadMembers(db)
	if err != nil {
		return nil, nil, Group{}, fmt.Errorf("replica: open: load members: %w", err)
	}
	group, err := LoadGroup(db, cfg.Prefix)
	if err != nil {
		return nil, nil, Group{}, fmt.Errorf("replica: open: %w", err)
	}
	if group.IsZero() && found {
		// Raft state written before groups were recorded: it is the
		// configured group's first epoch.
		group = Group{Name: cfg.Group, Epoch: 1}
		if err := durable.Set(db, st.keyGroup, encodeGroup(group)); err != nil {
			return nil, nil, Group{}, fmt.Errorf("replica: open: record group: %w", err)
		}
	}
	return st, addrs, group, nil
}

// newRawNode makes the raft node over st with cfg's settings.
func newRawNode(cfg Config, st *logStore, lg *slog.Logger) (*raft.RawNode, error) {
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
	return rn, nil
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
	p := r.newProposal(cmd)
	if err := enqueue(ctx, r, r.propc, p); err != nil {
		return nil, 0, err
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

// ProposeFunc is Propose for a caller that does not wait: it queues cmd
// and returns at once, and then is told what Propose would return,
// exactly once, on the replica's loop goroutine — so it must be quick and
// must not block or call the replica. It returns false, and then is never
// called, when the queue is full or the replica has stopped; Propose
// waits in that case. A proposal queued just as the replica stops may be
// answered by no one: a caller keeps its own deadline.
func (r *Replica) ProposeFunc(cmd []byte, then func(result any, index uint64, err error)) bool {
	select {
	case <-r.donec:
		return false
	default:
	}
	p := r.newProposal(cmd)
	p.then = then
	select {
	case r.propc <- p:
		return true
	default:
		return false
	}
}

// newProposal is cmd with a fresh proposal id before it.
func (r *Replica) newProposal(cmd []byte) *proposal {
	data := make([]byte, idLen+len(cmd))
	binary.BigEndian.PutUint64(data, r.idBase+r.idNext.Add(1))
	copy(data[idLen:], cmd)
	return &proposal{id: binary.BigEndian.Uint64(data), data: data, done: make(chan proposalResult, 1), made: time.Now()}
}

// ReadIndexFunc is ReadIndex for a caller that does not wait: it queues
// the read and returns at once, and then is told what ReadIndex would
// return, exactly once. The reads that share a round are told one after
// another on one goroutine of the replica's (not the loop), in one
// ReadScope, so then may read the state machine but delays the rest of
// its round while it runs. It returns false, and then is never called, when the queue is full or
// the replica has stopped. A read queued just as the replica stops may be
// answered by no one: a caller keeps its own deadline.
func (r *Replica) ReadIndexFunc(then func(*ReadScope, error)) bool {
	select {
	case <-r.donec:
		return false
	default:
	}
	select {
	case r.readc <- &readWaiter{then: then}:
		return true
	default:
		return false
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
	if err := enqueue(ctx, r, r.readc, w); err != nil {
		return err
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

// ReportUnreachable tells raft that the last messages to id were not
// delivered, so the leader probes it instead of streaming. Never blocks.
func (r *Replica) ReportUnreachable(id uint64) {
	select {
	case r.unreachc <- id:
	default:
	}
}

// Status returns the latest published status. It is cheap and safe for
// concurrent use. It is published before any proposal is answered, so it
// covers every write this replica has answered.
func (r *Replica) Status() Status { return *r.status.Load() }

// Stats returns the loop's cumulative counters. Safe for concurrent use.
func (r *Replica) Stats() Stats {
	s := &r.stats
	return Stats{
		Readies: s.readies.Load(), Syncs: s.syncs.Load(), Handoffs: s.handoffs.Load(), SyncTime: time.Duration(s.syncNanos.Load()), SyncBuckets: s.syncHist.buckets(),
		LogSyncTime: time.Duration(s.logSyncNanos.Load()),
		Proposals:   s.proposals.Load(), Queued: time.Duration(s.queuedNanos.Load()), Replicated: time.Duration(s.replicatedNanos.Load()),
		Sent: s.sent.Load(), Superseded: s.superseded.Load(),
		Appended: s.appended.Load(), Applied: s.applied.Load(), ReadRounds: s.readRounds.Load(), LeaseReads: s.leaseReads.Load(), RefusedVotes: s.refusedVotes.Load(),
		Foreign: s.foreign.Load(), BadCommit: s.badCommit.Load(), Invalid: s.invalid.Load(),
		Ticks: s.ticks.Load(), Wakes: s.wakes.Load(),
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

// enqueue hands v to the loop through ch. It fails with ctx's error if ctx
// ends first, or ErrStopped if the replica stops first.
func enqueue[T any](ctx context.Context, r *Replica, ch chan<- T, v T) error {
	select {
	case ch <- v:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-r.donec:
		return ErrStopped
	}
}

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
