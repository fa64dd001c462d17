package replica

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/cleavefs/cleave/internal/eventually"
)

// stateSum is a checksum over every key a snapshot carries (everything but
// the replica-owned keys), and their count.
func stateSum(t testing.TB, db *pebble.DB) (string, int) {
	t.Helper()
	st := newLogStore(db, DefaultConfig().Prefix)
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	h := sha256.New()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if st.owned(it.Key()) {
			continue
		}
		fmt.Fprintf(h, "%q=%q\n", it.Key(), it.Value())
		n++
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// logKeys counts the log entries stored in db.
// segmentsOnDisk reads every log segment in dir and returns, per file,
// the indexes of its records. Spare files are skipped.
func segmentsOnDisk(t testing.TB, dir string) map[string][]uint64 {
	t.Helper()
	out, err := readSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name := range out {
		if _, _, ok := parseSegmentName(name); !ok {
			t.Errorf("unexpected file %s in the log directory", name)
			delete(out, name)
		}
	}
	return out
}

// readSegments returns the entry indexes each segment file in dir holds,
// and every other file but spares with no indexes.
func readSegments(dir string) (map[string][]uint64, error) {
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string][]uint64{}
	for _, n := range names {
		gen, seq, ok := parseSegmentName(n.Name())
		if !ok {
			if !isSpareName(n.Name()) {
				out[n.Name()] = nil
			}
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, n.Name()))
		if err != nil {
			return nil, err
		}
		out[n.Name()] = []uint64{}
		for off := 0; off < len(data); {
			e, size, err := readRecord(data[off:], gen, seq)
			if err != nil {
				break // the end of what the segment holds
			}
			out[n.Name()] = append(out[n.Name()], e.GetIndex())
			off += size
		}
	}
	return out, nil
}

// logKeys counts the log entries in db (where stores kept the log before
// the segment files).
func logKeys(t testing.TB, db *pebble.DB) int {
	st := newLogStore(db, DefaultConfig().Prefix)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: st.logPrefix, UpperBound: st.logEnd})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n
}

func withRetention(c *testCluster, n uint64, chunk int) {
	base := c.cfg
	c.cfg = func(id uint64) Config {
		cfg := base(id)
		cfg.LogRetention = n
		cfg.SnapshotChunk = chunk
		cfg.ElectionTicks = 60 // fewer spurious elections on busy CI cores
		return cfg
	}
}

func proposeN(c *testCluster, _ uint64, prefix string, n int) uint64 {
	var last uint64
	for i := range n {
		last = proposeRetry(c, fmt.Sprintf("%s-%d-%s", prefix, i, strings.Repeat("x", 200)))
	}
	return last
}

// proposeRetry proposes cmd on whichever node leads, retrying when a leader
// change (likely on 2 busy cores with 100 ms election timeouts) refuses or
// loses it; those outcomes mean "not applied", so counts stay exact.
func proposeRetry(c *testCluster, cmd string) uint64 {
	c.t.Helper()
	var idx uint64
	eventually.Holds(c.t, 20*time.Second, fmt.Sprintf("propose %.20q", cmd), func() error {
		lead := anyLeader(c)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, i, err := c.rep(lead).Propose(ctx, []byte(cmd))
		if err != nil && !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrProposalLost) && !errors.Is(err, ErrProposalDropped) {
			c.t.Fatalf("propose %.20q: %v", cmd, err)
		}
		idx = i
		return err
	})
	return idx
}

func TestCompactionKeepsConfiguredTail(t *testing.T) {
	c := newTestCluster(t, 3)
	withRetention(c, 32, 0)
	base := c.cfg
	c.cfg = func(id uint64) Config {
		cfg := base(id)
		cfg.LogSegmentBytes = 512 // a few entries each: compaction removes whole segments
		return cfg
	}
	c.startAll()
	lead := c.waitLeader()
	last := proposeN(c, lead, "w", 150)
	c.waitApplied(c.ids, last)
	for _, id := range c.ids {
		waitFor(t, 5*time.Second, "compaction", func() bool {
			st := c.rep(id).Status()
			return st.FirstIndex > 1
		})
		st := c.rep(id).Status()
		kept := st.Applied - st.FirstIndex + 1
		if kept < 32 || kept > 32+2+1 { // retention plus at most one compaction step (32/16)
			t.Errorf("node %d keeps %d applied entries [%d, %d], want 32..35", id, kept, st.FirstIndex, st.Applied)
		}
		if n := logKeys(t, c.db(id)); n != 0 {
			t.Errorf("node %d has %d log keys in its DB, want none", id, n)
		}
		// Every entry of the log is in a segment, and no segment holds
		// only entries the log dropped more than LogRetention/4 entries
		// before its first: the files follow the log's start once a
		// flush has made the state of the entries they hold durable.
		oldest := func(segs map[string][]uint64) (string, []uint64) {
			for name, idxs := range segs {
				if len(idxs) == 0 || slices.Max(idxs) < st.FirstIndex-32/4 {
					return name, idxs
				}
			}
			return "", nil
		}
		waitFor(t, 5*time.Second, "segment files to follow the log's start", func() bool {
			segs, err := readSegments(c.cfg(id).LogDir)
			name, _ := oldest(segs)
			return err == nil && name == ""
		})
		segs := segmentsOnDisk(t, c.cfg(id).LogDir)
		if name, idxs := oldest(segs); name != "" {
			t.Errorf("node %d keeps segment %s with entries %v, all before %d, LogRetention/4 before the log's first", id, name, idxs, st.FirstIndex-32/4)
		}
		held := map[uint64]bool{}
		for _, idxs := range segs {
			for _, i := range idxs {
				held[i] = true
			}
		}
		for i := st.FirstIndex; i <= st.LastIndex; i++ {
			if !held[i] {
				t.Errorf("node %d: entry %d of [%d, %d] is in no segment", id, i, st.FirstIndex, st.LastIndex)
			}
		}
	}
	// The compacted log survives a restart.
	c.stop(lead)
	c.start(lead)
	lead = c.waitLeader()
	c.waitApplied(c.ids, proposeRetry(c, "after-restart"))
	if c.count(lead) != 151 {
		t.Errorf("leader applied %d commands, want 151", c.count(lead))
	}
}

func TestLaggingFollowerCatchesUpBySnapshot(t *testing.T) {
	c := newTestCluster(t, 3)
	withRetention(c, 16, 4096) // small chunks: many frames per snapshot
	c.startAll()
	lead := c.waitLeader()
	f := others(c.ids, lead)[0]
	proposeRetry(c, "before")
	c.stop(f)
	last := proposeN(c, lead, "while-down", 300)
	waitFor(t, 5*time.Second, "leader compaction past the follower", func() bool {
		return c.rep(lead).Status().FirstIndex > 50
	})
	c.start(f)
	c.waitApplied([]uint64{f}, last)
	waitFor(t, 5*time.Second, "the snapshot's send to complete", func() bool { return c.net.snaps.Load() > 0 })
	c.waitApplied(c.ids, proposeRetry(c, "after"))
	assertSameState(t, c, c.ids...)
	if got := c.count(f); got != 302 {
		t.Errorf("follower count %d, want 302", got)
	}
	// The restored follower restarts from its snapshot and log.
	c.stop(f)
	c.start(f)
	c.waitApplied(c.ids, proposeRetry(c, "after-restart"))
	assertSameState(t, c, c.ids...)
}

// anyLeader waits until a running node believes it leads.
func anyLeader(c *testCluster) uint64 {
	c.t.Helper()
	var lead uint64
	waitFor(c.t, 10*time.Second, "a leader", func() bool {
		for _, id := range c.running() {
			if r := c.rep(id); r != nil && r.Status().Role == "leader" {
				lead = id
				return true
			}
		}
		return false
	})
	return lead
}

// onLeader runs f on the current leader, again on the next one if
// leadership moved.
func onLeader(c *testCluster, what string, f func(r *Replica) error) {
	c.t.Helper()
	for range 20 {
		err := f(c.rep(anyLeader(c)))
		if err == nil {
			return
		}
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrProposalLost) && !errors.Is(err, ErrProposalDropped) && !errors.Is(err, ErrConfChangeInProgress) {
			c.t.Fatalf("%s: %v", what, err)
		}
	}
	c.t.Fatalf("%s: leadership kept moving", what)
}

func assertSameState(t *testing.T, c *testCluster, ids ...uint64) {
	t.Helper()
	want, n := stateSum(t, c.db(ids[0]))
	for _, id := range ids[1:] {
		if got, m := stateSum(t, c.db(id)); got != want {
			t.Errorf("node %d state %s (%d keys) differs from node %d %s (%d keys)", id, got, m, ids[0], want, n)
		}
	}
}

func TestEmptyNodeJoinsByLearnerSnapshotPromote(t *testing.T) {
	c := newTestCluster(t, 3)
	withRetention(c, 16, 1<<10)
	c.startAll()
	lead := c.waitLeader()
	proposeN(c, lead, "w", 100)
	c.addJoiner(4)
	c.start(4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	onLeader(c, "AddLearner", func(r *Replica) error { return r.AddLearner(ctx, 4, "addr-4") })
	onLeader(c, "AddLearner again (no-op)", func(r *Replica) error { return r.AddLearner(ctx, 4, "addr-4") })
	onLeader(c, "Promote", func(r *Replica) error { return r.Promote(ctx, 4) })
	all := append(c.ids, 4)
	last := proposeRetry(c, "after-promote")
	c.waitApplied(all, last)
	lead = c.waitLeader(all...)
	waitFor(t, 5*time.Second, "the snapshot's send to complete", func() bool { return c.net.snaps.Load() > 0 })
	assertSameState(t, c, all...)
	// The leader publishes its members' Match at most once per tick.
	var ms []Member
	waitFor(t, 5*time.Second, "node 4 a voter matching the last entry on the leader", func() bool {
		ms = c.rep(lead).Members()
		return len(ms) == 4 && ms[3].Voter && ms[3].Addr == "addr-4" && ms[3].Match >= last
	})
	for _, id := range all {
		waitFor(t, 5*time.Second, "node 4 a voter everywhere", func() bool {
			ms := c.rep(id).Members()
			return len(ms) == 4 && ms[3].Voter && ms[0].Addr == "addr-1"
		})
	}

	// Membership and addresses survive restarts, including the joined node's.
	c.stop(4)
	c.start(4)
	c.stop(lead)
	c.start(lead)
	lead = c.waitLeader(all...)
	c.waitApplied(all, proposeRetry(c, "after-restarts"))
	for _, id := range all {
		ms := c.rep(id).Members()
		if len(ms) != 4 || ms[3].Addr != "addr-4" || ms[0].Addr != "addr-1" {
			t.Errorf("node %d members after restart: %+v", id, ms)
		}
	}

	// Remove a follower: the rest keep committing without it.
	gone := others(all, lead)[0]
	onLeader(c, "RemoveMember", func(r *Replica) error { return r.RemoveMember(ctx, gone) })
	c.stop(gone)
	rest := others(all, gone)
	c.waitApplied(rest, proposeRetry(c, "after-remove"))
	for _, id := range rest {
		if len(c.rep(id).Members()) != 3 {
			t.Errorf("node %d members after remove: %+v", id, c.rep(id).Members())
		}
	}
	onLeader(c, "RemoveMember again (no-op)", func(r *Replica) error { return r.RemoveMember(ctx, gone) })
}

func TestPromoteWaitsForLearner(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	lead := c.waitLeader()
	c.addJoiner(4) // never started: cannot catch up
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.rep(lead).AddLearner(ctx, 4, "addr-4"); err != nil {
		t.Fatalf("AddLearner: %v", err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer pcancel()
	err := c.rep(lead).Promote(pctx, 4)
	if !errors.Is(err, ErrLearnerBehind) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Promote of a learner that is down: %v, want ErrLearnerBehind and a deadline", err)
	}
	if err := c.rep(lead).Promote(ctx, 9); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("Promote of a non-member: %v", err)
	}
	if err := c.rep(others(c.ids, lead)[0]).AddLearner(ctx, 5, "x"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("AddLearner on a follower: %v", err)
	}
}

func TestLeaderHoldsLogForInFlightSnapshot(t *testing.T) {
	c := newTestCluster(t, 3)
	withRetention(c, 16, 1<<10)
	c.startAll()
	lead := c.waitLeader()
	f := others(c.ids, lead)[0]
	c.stop(f)
	proposeN(c, lead, "a", 100)

	// Hold the snapshot to f until released.
	started := make(chan uint64, 8)
	release := make(chan struct{})
	c.net.mu.Lock()
	c.net.snapHook = func(ctx context.Context, from, to, index uint64) error {
		started <- index
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.net.mu.Unlock()
	c.start(f)
	var index uint64
	select {
	case index = <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no snapshot started")
	}
	last := proposeN(c, lead, "b", 100) // far beyond the retention
	lead = c.waitLeader(c.running()...)
	c.waitApplied([]uint64{lead}, last)
	st := c.rep(lead).Status()
	if st.FirstIndex > index+1 {
		t.Fatalf("leader compacted to first index %d while a snapshot at %d was in flight", st.FirstIndex, index)
	}
	if st.Snapshots != 1 {
		t.Fatalf("leader reports %d snapshots in flight, want 1", st.Snapshots)
	}
	close(release)
	c.net.mu.Lock()
	c.net.snapHook = nil
	c.net.mu.Unlock()
	c.waitApplied(c.ids, proposeRetry(c, "after"))
	assertSameState(t, c, c.ids...)
	waitFor(t, 5*time.Second, "compaction resumes", func() bool {
		st := c.rep(lead).Status()
		return st.Snapshots == 0 && st.FirstIndex > index+1
	})
}

// A transfer that fails midway, or whose data is corrupt, leaves the old
// state intact and no file behind; the next transfer succeeds.
func TestFailedTransferLeavesOldState(t *testing.T) {
	c := newTestCluster(t, 3)
	withRetention(c, 16, 512)
	c.startAll()
	lead := c.waitLeader()
	f := others(c.ids, lead)[0]
	proposeRetry(c, "before")
	c.waitApplied(c.ids, proposeRetry(c, "before-2"))
	c.stop(f)
	last := proposeN(c, lead, "w", 100)
	// Reference: the follower's state before any transfer.
	db, err := pebble.Open(c.dirs[f], &pebble.Options{Logger: quietPebble{}, DisableWAL: true})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := stateSum(t, db)
	db.Close()

	// Fail transfers: first by aborting midway (the sender gives up after
	// the first chunk), then by corrupting a chunk.
	var attemptsN atomic.Int64
	c.net.mu.Lock()
	c.net.snapHook = func(ctx context.Context, from, to, index uint64) error {
		c.net.mu.Lock()
		r := c.net.nodes[to]
		c.net.mu.Unlock()
		if r == nil {
			// The follower is stopped between the two failed transfers:
			// the leader's retry finds no one, as over a network.
			return fmt.Errorf("test: node %d is not running", to)
		}
		attempts := attemptsN.Add(1)
		if attempts > 2 {
			return nil
		}
		m := &pb.Message{Type: pb.MsgSnap.Enum(), From: new(from), To: new(to),
			Snapshot: &pb.Snapshot{Data: []byte("12345678"), Metadata: &pb.SnapshotMetadata{
				Index: new(index), Term: new(uint64(1)), ConfState: &pb.ConfState{Voters: c.ids}}}}
		id := uint64(1000 + attempts)
		rec := append([]byte{4}, "k/aa"...)
		rec = append(rec, 1, 'v')
		if err := r.ReceiveSnapshot(ctx, SnapshotChunk{Group: r.Group(), From: from, ID: id, Msg: m, Data: rec}); err != nil {
			return err
		}
		if attempts == 1 {
			return errors.New("test: sender gives up midway")
		}
		return r.ReceiveSnapshot(ctx, SnapshotChunk{Group: r.Group(), From: from, ID: id, Offset: uint64(len(rec)), Done: true, CRC: 12345})
	}
	c.net.mu.Unlock()
	// Close the follower while it holds a partial stream, then check its
	// state on disk.
	c.start(f)
	waitFor(t, 10*time.Second, "a failed transfer", func() bool { return attemptsN.Load() >= 1 })
	c.stop(f)
	db, err = pebble.Open(c.dirs[f], &pebble.Options{Logger: quietPebble{}, DisableWAL: true})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := stateSum(t, db)
	db.Close()
	if after != before {
		t.Fatal("a failed transfer changed the follower's state")
	}
	c.start(f)
	c.waitApplied([]uint64{f}, last)
	c.waitApplied(c.ids, proposeRetry(c, "after"))
	assertSameState(t, c, c.ids...)
	if attempts := attemptsN.Load(); attempts < 3 {
		t.Errorf("caught up after %d transfer attempts, want the third to succeed", attempts)
	}
	ents, _ := os.ReadDir(c.cfg(f).SnapshotDir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".sst") {
			t.Errorf("snapshot file %s left behind", filepath.Join(c.cfg(f).SnapshotDir, e.Name()))
		}
	}
}

// A follower behind the leader's log catches up by snapshot while the
// leader is under constant write load, so that almost every message it
// steps arrives while one of its Readies is being written: a snapshot
// raft prepares then must still be sent when the next Ready carries it.
func TestLaggingFollowerCatchesUpBySnapshotUnderLoad(t *testing.T) {
	c := newTestCluster(t, 3)
	withRetention(c, 16, 4096)
	errs := &errorCounter{}
	base := c.cfg
	c.cfg = func(id uint64) Config {
		cfg := base(id)
		cfg.Logger = slog.New(errs)
		return cfg
	}
	c.startAll()
	lead := c.waitLeader()
	f := others(c.ids, lead)[0]
	proposeRetry(c, "before")
	c.stop(f)
	proposeN(c, lead, "while-down", 300)
	waitFor(t, 5*time.Second, "leader compaction past the follower", func() bool {
		return c.rep(lead).Status().FirstIndex > 50
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	r := c.rep(lead)
	for w := range 8 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := r.Propose(ctx, fmt.Appendf(nil, "load-%d-%d", w, i)); err != nil {
					return
				}
			}
		})
	}
	c.start(f)
	target := c.rep(lead).Status().Commit
	waitFor(t, 10*time.Second, "the follower caught up by snapshot under load", func() bool {
		return c.rep(f).Applied() >= target && c.net.snaps.Load() > 0
	})
	close(stop)
	wg.Wait()
	c.waitApplied(c.ids, proposeRetry(c, "after"))
	assertSameState(t, c, c.ids...)
	if n := errs.n.Load(); n != 0 {
		t.Errorf("%d errors logged, the first: %s", n, *errs.first.Load())
	}
}

// errorCounter is a slog.Handler that counts error records and keeps the
// first one's message.
type errorCounter struct {
	n     atomic.Int64
	first atomic.Pointer[string]
}

func (h *errorCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h *errorCounter) Handle(_ context.Context, r slog.Record) error {
	if h.n.Add(1) == 1 {
		msg := r.Message
		h.first.Store(&msg)
	}
	return nil
}
func (h *errorCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *errorCounter) WithGroup(string) slog.Handler      { return h }
