package cluster

// The continuous cross-replica consistency check.
//
// Apply is deterministic, so every replica of a cluster holds the same
// state machine state at the same applied index. This file checks that it
// does, all the time, the way etcd's corruption check does:
//
//   - Every CheckInterval the leader proposes a check entry: one byte,
//     checkEntry, that no fsm.Command encoding starts with. It changes no
//     state.
//   - Every replica, when it applies that entry at index I, captures its
//     state at exactly I without reading it: a Pebble snapshot of the
//     committed state (the state after the previous Ready: the replica's
//     loop is the only writer and commits whole Readies) plus a copy of the
//     Ready's batch so far (the entries of this Ready up to I). That costs a
//     memory copy bounded by one Ready; the hash itself runs on a
//     background goroutine (fsm.HashOverlay), never inside apply. A replica
//     still hashing the previous check skips one (it just has no result at
//     that index).
//   - The hash is Checksum's (length-prefixed keys and values under "s/"),
//     except that a chunk's bytes are stood in for by their length: a chunk
//     key is the SHA-256 of its bytes, which the scrubber verifies, so the
//     name already commits to the content and a check never reads file
//     data. It therefore catches state that the log did not decide
//     (metadata, sessions, references, which chunks exist), not bit rot.
//   - Every node keeps its last results and, every CheckInterval, asks the
//     other members for their latest (STATUS) and compares at equal
//     indexes, with what they reported in earlier rounds (replicas reach
//     a check entry at different moments: a follower learns the commit
//     with the leader's next message). A hash held by a majority of the
//     voters is the cluster's; a replica with another one is diverged:
//     every node that sees it raises the alarm (NodeStatus.Alarm,
//     Diverged, the cleave_node_consistency_* metrics, an error log), and
//     the diverged node quarantines itself: it refuses reads, stale ones
//     included, with UNAVAILABLE, so the router reads elsewhere. The
//     alarm and the quarantine hold until a later check agrees again.
//
// Rebuilding a quarantined replica is not automatic yet: the operator
// replaces it (`cleave node replace`: a new id and an empty disk, which
// rejoins by snapshot). See docs/robustness.md.
//
// Lock order: checker.mu is a leaf.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/cleavefs/cleave/fsm"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cleavefs/cleave/wire"
)

// checkEntry is the whole command of a check entry. Every encoded fsm.Command
// starts with commandVersion, so the two never collide.
const checkEntry = 0xC5

// DefaultCheckInterval is how often the leader proposes a check entry.
const DefaultCheckInterval = time.Minute

// checkResults is how many of its latest results a node keeps to compare
// with peers that report an older index.
const checkResults = 32

// isCheckEntry reports whether cmd is a check entry.
func isCheckEntry(cmd []byte) bool { return len(cmd) == 1 && cmd[0] == checkEntry }

// checkJob is the state at one applied index, captured in Apply: the
// committed state under snap plus the batch's mutations in repr.
type checkJob struct {
	index uint64
	snap  *pebble.Snapshot
	repr  []byte
}

// checkResult is one hash of the state at an applied index.
type checkResult struct {
	index uint64
	hash  string
}

// checker runs the check on one node. Safe for concurrent use.
type checker struct {
	n        *Node
	log      *slog.Logger
	interval time.Duration
	jobs     chan checkJob
	stopc    chan struct{}
	ctx      context.Context // cancelled by stop
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once

	hashed     atomic.Uint64 // results computed
	skipped    atomic.Uint64 // check entries not hashed (busy, or a mutation the overlay does not model)
	mismatches atomic.Uint64 // compared indexes at which replicas differed

	mu          sync.Mutex
	results     []checkResult                // ascending index, at most checkResults
	reports     map[uint64]map[uint64]string // index -> peer id -> hash: the peers' reports not yet decided
	compared    uint64                       // highest index decided
	alarm       string
	alarmIndex  uint64
	diverged    []uint64
	quarantined bool
	diverge     string // the test-only fault's path, until done
}

func newChecker(n *Node) *checker {
	ctx, cancel := context.WithCancel(context.Background())
	return &checker{
		n: n, log: n.log.With("component", "consistency"), interval: n.cfg.CheckInterval,
		jobs: make(chan checkJob, 1), stopc: make(chan struct{}), ctx: ctx, cancel: cancel,
		diverge: n.cfg.UnsafeDivergePath,
	}
}

// start runs the hasher and the compare loop.
func (c *checker) start() {
	c.wg.Add(2)
	go c.hashLoop()
	go c.compareLoop()
}

// stop ends both goroutines and releases the snapshot of a job not
// hashed. Call it after the replica's loop stopped (no more Apply) and
// before the DB closes. Idempotent.
func (c *checker) stop() {
	c.stopOnce.Do(func() {
		close(c.stopc)
		c.cancel()
		c.wg.Wait()
		for {
			select {
			case j := <-c.jobs:
				j.snap.Close()
			default:
				return
			}
		}
	})
}

// take captures the state at index for hashing. Called from Apply on the
// replica's loop: it never blocks and costs a snapshot and one copy of the
// batch so far.
func (c *checker) take(b *pebble.Batch, index uint64) {
	select {
	case <-c.stopc:
		return
	default:
	}
	if len(c.jobs) == cap(c.jobs) { // still hashing an older one
		c.skipped.Add(1)
		return
	}
	j := checkJob{index: index, snap: c.n.db.NewSnapshot(), repr: bytes.Clone(b.Repr())}
	select {
	case c.jobs <- j:
	default:
		j.snap.Close()
		c.skipped.Add(1)
	}
}

func (c *checker) hashLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stopc:
			return
		case j := <-c.jobs:
			start := time.Now()
			sum, err := fsm.HashOverlay(j.snap, j.repr)
			j.snap.Close()
			if err != nil {
				c.skipped.Add(1)
				c.log.Warn("consistency check: state not hashed", "index", j.index, "err", err)
				continue
			}
			c.hashed.Add(1)
			c.record(j.index, sum)
			c.log.Debug("consistency check: state hashed", "index", j.index, "hash", sum, "took", time.Since(start))
		}
	}
}

func (c *checker) record(index uint64, sum string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.results); n > 0 && c.results[n-1].index >= index {
		// A restart or a restored snapshot replays indexes: keep one
		// result per index, in order.
		c.results = slices.DeleteFunc(c.results, func(r checkResult) bool { return r.index >= index })
	}
	c.results = append(c.results, checkResult{index, sum})
	if len(c.results) > checkResults {
		c.results = slices.Delete(c.results, 0, len(c.results)-checkResults)
	}
}

// compareLoop proposes a check entry when leading and compares the
// latest results with the peers', every interval.
func (c *checker) compareLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-c.stopc:
			return
		case <-t.C:
		}
		c.divergeOnce()
		ctx, cancel := context.WithTimeout(c.ctx, c.interval)
		c.compare(ctx)
		if c.n.rep.Leader() == c.n.cfg.NodeID {
			if _, _, err := c.n.rep.Propose(ctx, []byte{checkEntry}); err != nil {
				c.log.Debug("consistency check: proposing a check entry failed", "err", err)
			}
		}
		cancel()
	}
}

// peerCheck is what one member reported.
type peerCheck struct {
	id    uint64
	index uint64
	hash  string
}

// compare asks every other member for its latest result and decides the
// highest index not yet decided at which enough replicas reported.
func (c *checker) compare(ctx context.Context) {
	members := c.n.rep.Members()
	self := c.n.cfg.NodeID
	cluster := c.n.Status().Cluster
	var (
		mu    sync.Mutex
		peers []peerCheck
		wg    sync.WaitGroup
	)
	voters := map[uint64]bool{}
	for _, m := range members {
		if m.Voter {
			voters[m.ID] = true
		}
		if m.ID == self {
			continue
		}
		addr := c.n.peerAddrOf(m.ID)
		if addr == "" {
			continue
		}
		wg.Go(func() {
			st, err := c.peerStatus(ctx, addr)
			if err != nil {
				c.log.Debug("consistency check: peer status", "peer", m.ID, "err", err)
				return
			}
			if st.CheckIndex == 0 || st.Cluster != cluster {
				return
			}
			mu.Lock()
			peers = append(peers, peerCheck{m.ID, st.CheckIndex, st.CheckHash})
			mu.Unlock()
		})
	}
	wg.Wait()
	memberIDs := map[uint64]bool{}
	for _, m := range members {
		memberIDs[m.ID] = true
	}
	c.weigh(peers, voters, memberIDs)
}

// weigh decides, from this node's results and what the peers reported,
// this round and the earlier ones, the highest index not yet decided at
// which enough replicas reported. A peer reports only its latest result,
// and replicas reach a check entry at different moments (a follower
// learns a commit with the leader's next message), so one round may hold
// too few replicas at every index while a later one completes an earlier
// index; the reports are kept until their index is decided or older than
// every result this node keeps.
func (c *checker) weigh(peers []peerCheck, voters, members map[uint64]bool) {
	self := c.n.cfg.NodeID
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reports == nil {
		c.reports = map[uint64]map[uint64]string{}
	}
	for _, p := range peers {
		if c.reports[p.index] == nil {
			c.reports[p.index] = map[uint64]string{}
		}
		c.reports[p.index][p.id] = p.hash
	}
	defer c.pruneReports()
	// Candidate indexes: every reported one, newest first, that we hold a
	// result for and have not decided; only current members count.
	byIndex := map[uint64]map[uint64]string{}
	for _, r := range c.results {
		if r.index > c.compared {
			byIndex[r.index] = map[uint64]string{self: r.hash}
		}
	}
	for idx, reported := range c.reports {
		m, ok := byIndex[idx]
		if !ok {
			continue
		}
		for id, h := range reported {
			if members[id] && id != self {
				m[id] = h
			}
		}
	}
	idxs := make([]uint64, 0, len(byIndex))
	for i, m := range byIndex {
		if len(m) > 1 {
			idxs = append(idxs, i)
		}
	}
	sort.Slice(idxs, func(i, j int) bool { return idxs[i] > idxs[j] })
	// The newest index every member reported comes first: deciding a
	// newer one without a member that lags would pass over that member's
	// hash for good. Without one (a member down), the newest decidable.
	for _, idx := range idxs {
		if len(byIndex[idx]) == len(members) {
			v, _ := decide(byIndex[idx], voters, len(members))
			c.apply(idx, v)
			return
		}
	}
	for _, idx := range idxs {
		v, ok := decide(byIndex[idx], voters, len(members))
		if !ok {
			continue
		}
		c.apply(idx, v)
		return
	}
}

func (c *checker) peerStatus(ctx context.Context, addr string) (*wire.NodeStatus, error) {
	conn, err := c.n.pool.Get(ctx, addr)
	if err != nil {
		return nil, err
	}
	resp, err := conn.Call(ctx, &wire.Request{Op: wire.OpStatus})
	if err != nil {
		return nil, err
	}
	if resp.Node == nil {
		if err := resp.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("no node status in the answer")
	}
	return resp.Node, nil
}

// verdict is the outcome of comparing the replicas' hashes at one index.
type verdict struct {
	majority []uint64 // replicas holding the majority's hash, ascending
	diverged []uint64 // replicas holding another hash, ascending
	split    bool     // hashes differ and no majority of voters agrees
}

// decide compares the hashes reported at one index (raft id -> hash).
// voters are the group's voters and members how many members (voters and
// learners) it has. It decides once a hash is held by a majority of the
// voters (every other replica then diverged) or every member reported;
// otherwise it waits for more reports (ok false).
func decide(hashes map[uint64]string, voters map[uint64]bool, members int) (v verdict, ok bool) {
	votes := map[string]int{}
	for id, h := range hashes {
		if voters[id] {
			votes[h]++
		}
	}
	win := ""
	for h, n := range votes {
		if n > len(voters)/2 {
			win = h
		}
	}
	if win == "" && len(hashes) < members {
		return verdict{}, false
	}
	for id, h := range hashes {
		switch {
		case win == "":
			v.diverged = append(v.diverged, id)
		case h == win:
			v.majority = append(v.majority, id)
		default:
			v.diverged = append(v.diverged, id)
		}
	}
	slices.Sort(v.majority)
	slices.Sort(v.diverged)
	if win == "" {
		distinct := map[string]bool{}
		for _, h := range hashes {
			distinct[h] = true
		}
		if len(distinct) == 1 { // every member agrees; no voter majority among them (learners only)
			return verdict{majority: v.diverged}, true
		}
		v.split = true
	}
	return v, true
}

// pruneReports forgets the reports at decided indexes and at those older
// than every result this node keeps. c.mu is held.
func (c *checker) pruneReports() {
	oldest := c.compared + 1
	if len(c.results) > 0 {
		oldest = max(oldest, c.results[0].index)
	}
	for idx := range c.reports {
		if idx < oldest {
			delete(c.reports, idx)
		}
	}
}

// apply records the verdict at idx. c.mu is held.
func (c *checker) apply(idx uint64, v verdict) {
	c.compared = idx
	self := c.n.cfg.NodeID
	if len(v.diverged) == 0 {
		if c.alarm != "" {
			c.log.Info("consistency check: replicas agree again; alarm cleared", "index", idx, "was", c.alarm)
		}
		c.alarm, c.alarmIndex, c.diverged, c.quarantined = "", 0, nil, false
		return
	}
	c.mismatches.Add(1)
	var msg string
	if v.split {
		msg = fmt.Sprintf("state at index %d differs between replicas %s and no majority agrees", idx, ids(v.diverged))
	} else {
		msg = fmt.Sprintf("state at index %d on replica %s differs from the majority's (%s)", idx, ids(v.diverged), ids(v.majority))
	}
	quarantined := !v.split && slices.Contains(v.diverged, self)
	if !slices.Equal(c.diverged, v.diverged) || c.quarantined != quarantined || c.alarm == "" {
		c.log.Error("consistency check: replicas diverged", "index", idx, "diverged", v.diverged, "majority", v.majority, "quarantined", quarantined)
	}
	c.alarm, c.alarmIndex, c.diverged, c.quarantined = msg, idx, v.diverged, quarantined
}

func ids(v []uint64) string {
	s := make([]string, len(v))
	for i, id := range v {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ", ")
}

// report fills the check's fields of a node status.
func (c *checker) report(ns *wire.NodeStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.results); n > 0 {
		ns.CheckIndex, ns.CheckHash = c.results[n-1].index, c.results[n-1].hash
	}
	ns.CheckCompared = c.compared
	ns.CheckMismatches = c.mismatches.Load()
	ns.Alarm, ns.AlarmIndex, ns.Quarantined = c.alarm, c.alarmIndex, c.quarantined
	ns.Diverged = slices.Clone(c.diverged)
}

// quarantine returns why this node must not serve reads, or "".
func (c *checker) quarantine() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.quarantined {
		return ""
	}
	return fmt.Sprintf("this replica is quarantined: its state at index %d differs from the majority's; read from another replica", c.alarmIndex)
}

// divergeOnce is the test-only fault of Config.UnsafeDivergePath: once the
// path has an entry, rewrite it locally, outside the log, so that this
// replica's state differs from its peers'.
func (c *checker) divergeOnce() {
	c.mu.Lock()
	p := c.diverge
	c.mu.Unlock()
	if p == "" {
		return
	}
	ok, err := c.n.fsm.UnsafeBumpMtime(p)
	if err != nil {
		c.log.Error("test-only fault: rewriting the entry failed", "path", p, "err", err)
		return
	}
	if !ok {
		return
	}
	c.log.Warn("test-only fault: rewrote an entry outside the log; this replica now differs from its peers", "path", p)
	c.mu.Lock()
	c.diverge = ""
	c.mu.Unlock()
}
