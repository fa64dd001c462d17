package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/cleavefs/cleave/replica"
	"github.com/cleavefs/cleave/wire"
)

// The meta group: the routing table replicated with Raft among the routers,
// on the same replication core as the clusters. Every router is
// a member; any router serves clients from its applied copy of the table;
// only the meta leader changes it. A change is committed before any router
// routes with it.

// metaTableKey holds the current table (msgpack) in the meta state machine.
var metaTableKey = []byte("m/table")

// metaCommand is the replicated form of a table change: it applies only if
// the table is still at version Expect, so two concurrent updates never
// silently overwrite each other.
//
// Kind tells commands apart: "" (every entry written before splits
// existed) is a table change; "split" records a split's phase and may carry
// a table change applied in the same entry (split.go); "user" changes a
// user (users.go).
type metaCommand struct {
	Expect uint64            `msgpack:"expect"`
	Table  *wire.TableInfo   `msgpack:"table"`
	Kind   string            `msgpack:"kind,omitempty"`
	Split  *wire.SplitStatus `msgpack:"split,omitempty"`
	User   *userCommand      `msgpack:"user,omitempty"` // Kind "user" (users.go)
}

// metaFSM is the meta group's state machine: one key, the table. Apply runs
// on the replica's loop; cur is read by every request.
type metaFSM struct {
	db     *pebble.DB
	cur    atomic.Pointer[wire.TableInfo]
	splits atomic.Pointer[[]wire.SplitStatus] // split.go
	users  atomic.Pointer[[]userRecord]       // users.go
}

// Apply implements replica.StateMachine. The table's commands read nothing
// but the command and the state in memory, so every answer is a result
// (nil on success, or an error that is the proposer's answer) and Apply
// never fails the replica.
func (f *metaFSM) Apply(b *pebble.Batch, index uint64, cmd []byte) (any, error) {
	return f.apply(b, index, cmd), nil
}

func (f *metaFSM) apply(b *pebble.Batch, index uint64, cmd []byte) any {
	var c metaCommand
	if err := msgpack.Unmarshal(cmd, &c); err == nil {
		switch c.Kind {
		case metaKindSplit:
			return f.applySplit(b, &c)
		case metaKindUser:
			return f.applyUser(b, c.User)
		}
	}
	if err := msgpack.Unmarshal(cmd, &c); err != nil || c.Table == nil {
		return fmt.Errorf("%w: undecodable meta command at index %d", ErrInvalidTable, index)
	}
	if err := f.checkTable(&c); err != nil {
		return err
	}
	if err := b.Set(metaTableKey, cmd, nil); err != nil {
		return err
	}
	// Committed in the log already (a majority has it), so routing with it
	// before this batch is flushed locally is safe.
	f.cur.Store(c.Table)
	return nil
}

// checkTable checks the table change c carries against the applied table:
// errStaleUpdate if the table moved past c.Expect, else an error wrapping
// ErrInvalidTable unless c.Table is a valid next version.
func (f *metaFSM) checkTable(c *metaCommand) error {
	if f.cur.Load().Version != c.Expect {
		return errStaleUpdate
	}
	if c.Table.Version != c.Expect+1 {
		return fmt.Errorf("%w: version %d does not follow %d", ErrInvalidTable, c.Table.Version, c.Expect)
	}
	return ValidateTable(c.Table)
}

// Restored reloads the table and the split records after a snapshot
// replaced the state. A state that does not load (a local read fault, or a
// table or records that do not decode) is fatal: going on would route with,
// and drive splits from, state the meta group no longer has, and apply the
// next entries on top of it. The replica stops on the error; the router
// stops with it (Router.Failed), and on restart OpenMetaTable loads the
// same state and refuses to start while it is unreadable.
func (f *metaFSM) Restored(index uint64) error {
	t, err := loadMetaTable(f.db)
	if err == nil && t == nil {
		err = errors.New("it holds no routing table")
	}
	if err == nil {
		err = f.loadSplits()
	}
	if err == nil {
		err = f.loadUsers()
	}
	if err != nil {
		return fmt.Errorf("router: meta state after snapshot %d does not load: %w", index, err)
	}
	f.cur.Store(t)
	return nil
}

func loadMetaTable(db *pebble.DB) (*wire.TableInfo, error) {
	v, closer, err := db.Get(metaTableKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	var c metaCommand
	if err := msgpack.Unmarshal(v, &c); err != nil || c.Table == nil {
		return nil, fmt.Errorf("%w: stored meta table does not decode: %v", ErrInvalidTable, err)
	}
	if err := ValidateTable(c.Table); err != nil {
		return nil, err
	}
	return c.Table, nil
}

// MetaTable is a Table replicated in the routers' meta group. Current is
// this router's applied copy (it may lag the leader briefly; WRONG_RANGE
// answers make the router call Refresh). Update and RecordSplit work on
// the meta leader only. Safe for concurrent use, and it holds no lock:
// concurrent changes are serialised by the log, each checked when applied
// against the version it was built on (metaCommand.Expect) and rebuilt on
// the newer table when another landed first.
type MetaTable struct {
	fsm *metaFSM
	rep *replica.Replica
	db  *pebble.DB
}

var (
	_ Table     = (*MetaTable)(nil)
	_ Refresher = (*MetaTable)(nil)
)

// MetaConfig configures this router's member of the meta group.
type MetaConfig struct {
	RaftID    uint64            // this router's raft id, nonzero
	Peers     map[uint64]string // raft id → router's peer address, or client and peer address as wire.JoinAddrs writes them; every initial member
	Dir       string            // Pebble directory of the meta group
	Bootstrap *wire.TableInfo   // the table of a new deployment; identical on every router
	// Join starts a router added to a running meta group (its leader adds
	// it as a learner): an empty store is not bootstrapped, and the table,
	// splits and users arrive with the leader's snapshot. Until then the
	// table is empty (version 0). Ignored when the store holds state.
	Join   bool
	Logger *slog.Logger
	// Replica tuning; zero values take replica.DefaultConfig's.
	TickInterval  time.Duration
	ElectionTicks int
	// IdleTickInterval is the meta group's tick once it has been quiet
	// (replica.Config.IdleTickInterval). Default replica.IdleTickFactor (10)
	// × TickInterval;
	// negative: never idle.
	IdleTickInterval time.Duration
}

// OpenMetaTable opens (or bootstraps) this router's meta group member. tr
// carries raft messages to the other routers.
func OpenMetaTable(cfg MetaConfig, tr replica.Transport) (*MetaTable, error) {
	if cfg.RaftID == 0 || len(cfg.Peers) == 0 {
		return nil, errors.New("router: meta group needs a raft id and peers")
	}
	if _, ok := cfg.Peers[cfg.RaftID]; !ok {
		return nil, fmt.Errorf("router: meta peers do not include this router's raft id %d", cfg.RaftID)
	}
	db, err := pebble.Open(cfg.Dir, &pebble.Options{Logger: replica.PebbleLogger(cfg.Logger)})
	if err != nil {
		return nil, fmt.Errorf("router: open meta store %s: %w", cfg.Dir, err)
	}
	fsm := &metaFSM{db: db}
	t, err := loadMetaTable(db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("router: meta store %s: %w", cfg.Dir, err)
	}
	joining := t == nil && cfg.Join
	switch {
	case joining:
		t = &wire.TableInfo{} // until the leader's snapshot brings the table
	case t == nil:
		// A new router: every member bootstraps the same table at index 0.
		if cfg.Bootstrap == nil {
			db.Close()
			return nil, errors.New("router: meta store is empty and no bootstrap table was given")
		}
		t = normalBootstrap(cfg.Bootstrap)
		if err := ValidateTable(t); err != nil {
			db.Close()
			return nil, fmt.Errorf("router: bootstrap table: %w", err)
		}
		v, _ := msgpack.Marshal(&metaCommand{Expect: t.Version - 1, Table: t})
		if err := db.Set(metaTableKey, v, pebble.Sync); err != nil {
			db.Close()
			return nil, err
		}
	}
	fsm.cur.Store(t)
	if err := errors.Join(fsm.loadSplits(), fsm.loadUsers()); err != nil {
		db.Close()
		return nil, err
	}
	rc := replica.DefaultConfig()
	rc.ID = cfg.RaftID
	rc.Group = "meta"
	for id := range cfg.Peers {
		rc.Peers = append(rc.Peers, id)
	}
	rc.PeerAddrs = cfg.Peers
	rc.Join = joining
	if cfg.TickInterval > 0 {
		rc.TickInterval = cfg.TickInterval
	}
	if cfg.ElectionTicks > 0 {
		rc.ElectionTicks = cfg.ElectionTicks
	}
	rc.IdleTickInterval = max(cfg.IdleTickInterval, 0)
	if cfg.IdleTickInterval == 0 {
		rc.IdleTickInterval = replica.IdleTickFactor * rc.TickInterval
	}
	// A router answers listings (users, grants, the routing table) from
	// its own copy of the meta state: its followers learn each commit at
	// once, so a change acknowledged through one router shows on the
	// others within a round trip, not a heartbeat interval.
	rc.SendNotices = true
	rc.Logger = cfg.Logger.With("group", "meta")
	// Beside the DB, on its file system (ingesting links the file).
	rc.SnapshotDir = filepath.Clean(cfg.Dir) + ".snap"
	rc.LogDir = filepath.Clean(cfg.Dir) + ".log"
	rep, err := replica.Open(rc, db, fsm, tr)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("router: meta group: %w", err)
	}
	return &MetaTable{fsm: fsm, rep: rep, db: db}, nil
}

// Current returns this router's applied table.
func (m *MetaTable) Current() *wire.TableInfo { return m.fsm.cur.Load() }

// Replica returns the meta group member, for status and raft traffic.
func (m *MetaTable) Replica() *replica.Replica { return m.rep }

// IsLeader reports whether this member leads the meta group.
func (m *MetaTable) IsLeader() bool {
	return m.rep.Leader() != 0 && m.rep.Leader() == m.rep.Status().ID
}

// Update proposes a new table version through the meta group; it returns
// once the change is committed and applied here. On a follower it fails
// with an error matching ErrNotMetaLeader.
func (m *MetaTable) Update(ctx context.Context, fn func(*wire.TableInfo) error) error {
	return m.propose(ctx, func() (*metaCommand, string, error) {
		old := m.Current()
		t, err := nextTable(old, fn)
		if err != nil {
			return nil, "", err
		}
		return &metaCommand{Expect: old.Version, Table: t}, fmt.Sprintf("update routing table to version %d", t.Version), nil
	})
}

// propose proposes the command build makes and waits until it has applied
// here; when another change landed first (errStaleUpdate) it builds the
// command again on the newer state. what names the change in errors.
func (m *MetaTable) propose(ctx context.Context, build func() (c *metaCommand, what string, err error)) error {
	for {
		c, what, err := build()
		if err != nil {
			return err
		}
		cmd, err := msgpack.Marshal(c)
		if err != nil {
			return err
		}
		res, _, err := m.rep.Propose(ctx, cmd)
		if errors.Is(err, replica.ErrNotLeader) {
			return errors.Join(ErrNotMetaLeader, err)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if res == errStaleUpdate {
			continue // another change landed first: redo on top of it
		}
		if e, ok := res.(error); ok && e != nil {
			return e
		}
		return nil
	}
}

// Refresh waits until this router has applied everything the meta group
// committed before the call, then reports whether it reached version seen.
func (m *MetaTable) Refresh(ctx context.Context, seen uint64) error {
	if err := m.rep.ReadIndex(ctx); err != nil {
		return err
	}
	if v := m.Current().Version; v < seen {
		return fmt.Errorf("router: table at version %d after catching up, node reported %d", v, seen)
	}
	return nil
}

// Close stops the member and closes its store.
func (m *MetaTable) Close() error {
	m.rep.Close()
	return m.db.Close()
}
