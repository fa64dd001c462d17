package replica

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Config configures a Replica. Start from DefaultConfig and set ID, Group,
// Peers and LogDir. Every optional field names its default; a zero value there
// means that default, so a Config literal that sets only the required
// fields is valid too (Open fills the rest, and Validate accepts them).
type Config struct {
	// ID is this node's raft id. Required, nonzero.
	ID uint64
	// Group names the raft group a new group bootstraps as (epoch 1): the
	// cluster id, or "meta" for the routers' group. Every member of a new
	// group must pass the same name. Ignored when the DB already holds raft
	// state, whose recorded group wins, and for Join (a snapshot brings the
	// group). See group.go.
	Group string
	// Peers are the initial voters, including ID. They are used only to
	// bootstrap an empty DB; every member of a new cluster must pass the same
	// set. Ignored when the DB already holds raft state.
	Peers []uint64
	// TickInterval is the duration of one raft tick. Default 100ms: every
	// tick and heartbeat wakes an idle process, so the default is as long
	// as the election timeout below allows.
	TickInterval time.Duration
	// ElectionTicks is the election timeout in ticks; raft randomizes the
	// actual timeout in [ElectionTicks, 2*ElectionTicks). Default 5
	// (500ms–1s with the default TickInterval, five heartbeats).
	ElectionTicks int
	// HeartbeatTicks is the leader's heartbeat interval in ticks. Default 1.
	HeartbeatTicks int
	// MaxSizePerMsg caps the bytes of entries in one append message.
	// Default 1 MiB.
	MaxSizePerMsg uint64
	// MaxInflight caps in-flight append messages per follower. Default 256.
	MaxInflight int
	// MaxInflightBytes caps the entry bytes in flight to one follower, so a
	// stream of 1 MiB chunks does not keep MaxInflight megabytes in memory
	// per follower. Default 8 MiB.
	MaxInflightBytes uint64
	// MaxUncommittedBytes caps the payload bytes of proposals appended by the
	// leader but not yet committed; proposals beyond it fail with
	// ErrProposalDropped. Default 64 MiB.
	MaxUncommittedBytes uint64
	// MaxBatch caps the number of queued proposals, messages and reads folded
	// into one loop iteration (one Ready, one fsync). Default 1024.
	MaxBatch int
	// Prefix is prepended to every key the replica writes in the DB. The state
	// machine must not write keys under it. Default "r/".
	Prefix []byte
	// Logger receives the replica's and raft's logs. Default slog.Default();
	// the replica adds "component"="replica" and "id"=ID.
	Logger *slog.Logger

	// PeerAddrs optionally gives the address of each of Peers. It is
	// recorded in replicated state at bootstrap, next to the addresses that
	// membership changes carry, so Members knows every member's address
	// after restarts. Ignored when the DB already holds raft state.
	PeerAddrs map[uint64]string
	// Join starts a node with an empty DB without bootstrapping: it has no
	// log and no members until the leader (which added it with AddLearner)
	// sends it a snapshot. Ignored when the DB already holds raft state.
	Join bool
	// LogRetention is how many applied entries the log keeps behind the
	// applied index; older ones are compacted away in steps of
	// LogRetention/16 (at least 1), so the log holds between LogRetention
	// and about 1.07*LogRetention applied entries. A follower that needs a
	// compacted entry gets a snapshot instead. Compaction never passes the
	// index of a snapshot still being sent. Default 10000.
	LogRetention uint64
	// SnapshotChunk is the number of stream bytes in one snapshot frame.
	// Default 1 MiB; keep it well below the transport's frame limit.
	SnapshotChunk int
	// SnapshotDir holds snapshots being received (one SST file at a time)
	// until they are ingested. It should be on the DB's file system so
	// ingesting hard-links instead of copying. Files left there by a crash
	// are removed at Open. Default: a new directory under os.TempDir()
	// that Open makes and Close removes (never shared with another
	// replica: Open clears the directory it is given).
	SnapshotDir string
	// LogDir holds the log's segment files (logfile.go). Required: it
	// must be durable storage, like the DB's (best beside it), and no
	// other replica's; Open removes any segment there that the DB does
	// not record. A DB whose log is still inside it (written before the
	// segment files) has it moved here at Open.
	LogDir string
	// LogSegmentBytes is the size past which the log starts a new segment
	// file; compaction removes whole segments. Default 4 MiB.
	LogSegmentBytes int64
	// FS is the file system the DB was opened on (pebble.Options.FS):
	// snapshots being received are written to SnapshotDir through it, and
	// ingesting one links the file into the DB, so both must be the same
	// file system. Default vfs.Default (the OS's).
	FS vfs.FS
	// MaxSnapshotSends caps concurrent outgoing snapshot streams; raft
	// retries later when the cap is reached. Default 2.
	MaxSnapshotSends int
	// PromoteMaxLag is how far (in entries) a learner's match index may
	// trail the leader's last index for Promote to make it a voter.
	// Default 100.
	PromoteMaxLag uint64
	// IdleTickInterval, if set, is the tick interval of a replica whose
	// group has been quiet (idle.go): heartbeats and election timeouts
	// stretch by IdleTickInterval/TickInterval, so an idle group wakes its
	// processes that much less often, and any activity brings
	// TickInterval back. At least TickInterval. Default 0: the replica
	// always ticks at TickInterval.
	IdleTickInterval time.Duration
	// NoReadLease makes every linearizable read on the leader wait for a
	// ReadIndex round. By default a leader that every member answered
	// within the last (ElectionTicks-2.5)·TickInterval serves reads on
	// that lease, without a round (lease.go); every member of a group must
	// then run with the same TickInterval and ElectionTicks.
	NoReadLease bool
	// SendNotices makes a leader send each append without entries (a
	// commit notice) at once instead of holding it for the next message
	// to that follower or the next tick (notice.go). Set it where a
	// follower answers reads from its own state without a read index,
	// as a router answers from the meta group's: held notices let such a
	// read miss a write just acknowledged for up to a heartbeat interval.
	SendNotices bool

	clock func() time.Time // the lease's clock: time.Now unless a test sets it
}

// IdleTickFactor is how much slower than TickInterval cleave's groups
// tick once idle (Config.IdleTickInterval), unless configured otherwise.
const IdleTickFactor = 10

// DefaultConfig returns a Config with every default set and ID, Group and
// Peers empty. Open treats a zero optional field as its default too (see
// withDefaults), so starting from a zero Config is equally valid.
func DefaultConfig() Config {
	return Config{
		TickInterval:        100 * time.Millisecond, // one raft tick
		ElectionTicks:       5,                      // 500ms–1s election timeout
		HeartbeatTicks:      1,                      // a heartbeat every tick
		MaxSizePerMsg:       1 << 20,                // 1 MiB of entries per append
		MaxInflight:         256,                    // append messages in flight per follower
		MaxInflightBytes:    8 << 20,                // 8 MiB of entries in flight per follower
		MaxUncommittedBytes: 64 << 20,               // 64 MiB appended but not committed
		MaxBatch:            1024,                   // inputs folded into one Ready
		Prefix:              []byte("r/"),           // the replica's keys in the DB
		Logger:              slog.Default(),         // the process's logger
		LogRetention:        10000,                  // applied entries kept behind the applied index
		SnapshotChunk:       1 << 20,                // 1 MiB snapshot frames
		FS:                  vfs.Default,            // the OS's file system
		MaxSnapshotSends:    2,                      // outgoing snapshot streams at once
		PromoteMaxLag:       100,                    // entries a learner may trail to be promoted
		LogSegmentBytes:     segmentBytes,           // 4 MiB log segment files
	}
}

// withDefaults returns c with every zero optional field set to its
// DefaultConfig value: zero means default, for each field whose doc names
// one. Open applies it before Validate.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	orDefault(&c.TickInterval, d.TickInterval)
	orDefault(&c.ElectionTicks, d.ElectionTicks)
	orDefault(&c.HeartbeatTicks, d.HeartbeatTicks)
	orDefault(&c.MaxSizePerMsg, d.MaxSizePerMsg)
	orDefault(&c.MaxInflight, d.MaxInflight)
	orDefault(&c.MaxInflightBytes, d.MaxInflightBytes)
	orDefault(&c.MaxUncommittedBytes, d.MaxUncommittedBytes)
	orDefault(&c.MaxBatch, d.MaxBatch)
	if len(c.Prefix) == 0 {
		c.Prefix = d.Prefix
	}
	orDefault(&c.Logger, d.Logger)
	orDefault(&c.LogRetention, d.LogRetention)
	orDefault(&c.SnapshotChunk, d.SnapshotChunk)
	orDefault(&c.MaxSnapshotSends, d.MaxSnapshotSends)
	orDefault(&c.PromoteMaxLag, d.PromoteMaxLag)
	orDefault(&c.LogSegmentBytes, d.LogSegmentBytes)
	orDefault(&c.FS, d.FS)
	return c
}

// orDefault sets *v to d if *v is the zero value.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Validate reports what is wrong with c, or nil. Zero-valued optional fields
// are accepted (Open fills in their defaults).
func (c Config) Validate() error {
	var errs []error
	if c.ID == 0 {
		errs = append(errs, errors.New("ID must be nonzero"))
	}
	if c.LogDir == "" {
		errs = append(errs, errors.New("LogDir must be set"))
	}
	if c.LogSegmentBytes < 0 {
		errs = append(errs, fmt.Errorf("LogSegmentBytes %d is negative", c.LogSegmentBytes))
	}
	seen := make(map[uint64]bool, len(c.Peers))
	for _, p := range c.Peers {
		if p == 0 {
			errs = append(errs, errors.New("Peers contains id 0"))
		}
		if seen[p] {
			errs = append(errs, fmt.Errorf("Peers contains %d twice", p))
		}
		seen[p] = true
	}
	if len(c.Peers) > 0 && !seen[c.ID] {
		errs = append(errs, fmt.Errorf("Peers %v does not contain ID %d", c.Peers, c.ID))
	}
	if c.TickInterval < 0 {
		errs = append(errs, fmt.Errorf("TickInterval %v is negative", c.TickInterval))
	}
	if c.IdleTickInterval < 0 || c.IdleTickInterval > 0 && c.IdleTickInterval < c.withDefaults().TickInterval {
		errs = append(errs, fmt.Errorf("IdleTickInterval %v must be 0 (never idle) or at least TickInterval", c.IdleTickInterval))
	}
	if c.ElectionTicks < 0 || c.HeartbeatTicks < 0 {
		errs = append(errs, fmt.Errorf("ElectionTicks %d and HeartbeatTicks %d must not be negative", c.ElectionTicks, c.HeartbeatTicks))
	}
	if c.ElectionTicks > 0 && c.HeartbeatTicks > 0 && c.ElectionTicks <= c.HeartbeatTicks {
		errs = append(errs, fmt.Errorf("ElectionTicks %d must be greater than HeartbeatTicks %d", c.ElectionTicks, c.HeartbeatTicks))
	}
	if c.ElectionTicks == 0 && c.HeartbeatTicks >= DefaultConfig().ElectionTicks {
		errs = append(errs, fmt.Errorf("HeartbeatTicks %d must be less than the default ElectionTicks %d", c.HeartbeatTicks, DefaultConfig().ElectionTicks))
	}
	if c.MaxInflight < 0 {
		errs = append(errs, fmt.Errorf("MaxInflight %d is negative", c.MaxInflight))
	}
	if c.MaxBatch < 0 {
		errs = append(errs, fmt.Errorf("MaxBatch %d is negative", c.MaxBatch))
	}
	if c.SnapshotChunk < 0 || c.MaxSnapshotSends < 0 {
		errs = append(errs, fmt.Errorf("SnapshotChunk %d and MaxSnapshotSends %d must not be negative", c.SnapshotChunk, c.MaxSnapshotSends))
	}
	for id, addr := range c.PeerAddrs {
		if !seen[id] {
			errs = append(errs, fmt.Errorf("PeerAddrs names %d (%s), which is not in Peers", id, addr))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("replica: invalid config: %w", err)
	}
	return nil
}
