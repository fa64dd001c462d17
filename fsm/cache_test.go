package fsm

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

// checkRangeCache fails unless the FSM's cached owned range, when known,
// and what the reads see (Range) are the range stored in Pebble.
func (n *node) checkRangeCache(when string) {
	n.t.Helper()
	c := &n.fsm.cache
	c.mu.Lock()
	known, owned, owns := c.rangeKnown, c.owned, c.owns
	c.mu.Unlock()
	stored, err := getRecord[wire.Range](n.db, []byte(rangeKey), func() (string, string) { return "range", "range" })
	if err != nil {
		n.t.Fatal(err)
	}
	var r wire.Range
	if stored != nil {
		r = *stored
	}
	ok := stored != nil
	if known && (owns != ok || owned != r) {
		n.t.Fatalf("%s: cached range %v (owns %v), Pebble holds %v (owns %v)", when, owned, owns, r, ok)
	}
	if got, err := n.fsm.Range(); ok && (err != nil || got != r) { // through the decoded-record memo
		n.t.Fatalf("%s: Range() = %v, %v; Pebble holds %v", when, got, err, r)
	}
}

// checkSessionCache fails unless every session record the FSM holds in
// memory is the one stored in Pebble.
func (n *node) checkSessionCache(when string) {
	n.t.Helper()
	checkCached(n, when, &n.fsm.cache.sessions, getSession)
}

// checkChunkCache fails unless every chunk metadata record the FSM holds
// in memory is the one stored in Pebble (a chunk no longer stored is not
// held). It returns how many are held.
func (n *node) checkChunkCache(when string) int {
	n.t.Helper()
	return checkCached(n, when, &n.fsm.cache.chunks, getMeta)
}

// checkCached fails unless every record in r is the one read from the
// committed state; it returns how many r holds.
func checkCached[K comparable, V comparable](n *node, when string, r *records[K, V], read func(reader, K) (*V, error)) int {
	n.t.Helper()
	n.fsm.cache.mu.Lock()
	cached := maps.Clone(r.m)
	n.fsm.cache.mu.Unlock()
	for k, v := range cached {
		stored, err := read(n.db, k)
		if err != nil {
			n.t.Fatal(err)
		}
		if stored == nil || *stored != v {
			n.t.Fatalf("%s: %v cached as %+v, Pebble holds %+v", when, k, v, stored)
		}
	}
	return len(cached)
}

// checkChunkIDs fails unless the chunk ids the FSM knows, when it knows
// them, are those of the chunks stored in Pebble. It reports whether it
// knows them.
func (n *node) checkChunkIDs(when string) bool {
	n.t.Helper()
	n.fsm.cache.mu.Lock()
	known, state := maps.Clone(n.fsm.cache.ids), n.fsm.cache.idsState
	n.fsm.cache.mu.Unlock()
	if state != idsKnown {
		return false
	}
	stored, err := readChunkIDs(n.db, maxKnownChunks)
	if err != nil {
		n.t.Fatal(err)
	}
	if !maps.Equal(known, stored) {
		n.t.Fatalf("%s: %d chunk ids known, %d stored", when, len(known), len(stored))
	}
	return true
}

// lookUpChunks makes the FSM look every chunk up, as it does when the
// store holds more than maxKnownChunks.
func (n *node) lookUpChunks() {
	n.fsm.cache.mu.Lock()
	defer n.fsm.cache.mu.Unlock()
	n.fsm.cache.ids, n.fsm.cache.idsState = nil, idsTooMany
}

// TestRangeCacheFollowsEveryWriter: the owned range Apply keeps in memory
// is the stored one after bootstrap, a SPLIT entry (also for a command
// later in the same batch), a split's cleanup, the fork and a restore
// that replaced the state underneath; so are the chunks and entries it
// keeps after the cleanup, which deletes the moved half's.
func TestRangeCacheFollowsEveryWriter(t *testing.T) {
	n := newNode(t, wholeRing)
	n.checkRangeCache("bootstrap")
	paths := make([]string, 40)
	for i := range paths {
		paths[i] = fmt.Sprintf("/r%02d/f", i)
		n.must(put(paths[i], "x", parents))
	}
	n.checkRangeCache("puts")

	// SPLIT at the middle, and a put into the moved half in the same batch.
	const at = uint64(1) << 63
	rec := &SplitRecord{NewCluster: "c2", At: at, Voters: []wire.Member{{ID: 4, Addr: "127.0.0.1:1"}}}
	split, err := EncodeSplitCommand(rec, 2_000_000_000_000_000_000, 0)
	if err != nil {
		t.Fatal(err)
	}
	var moved, kept string
	for _, p := range paths {
		if (wire.Range{Start: at}).Contains(ring.PathPoint(p)) {
			moved = p
		} else {
			kept = p
		}
	}
	b := n.db.NewIndexedBatch()
	if res := n.fsm.Apply(b, 100, split); res.Code != wire.OK {
		t.Fatalf("split: %v %s", res.Code, res.Message)
	}
	cmd, _ := EncodeCommand(&Command{Op: wire.OpPut, Path: moved, Data: []byte("y"), Time: 2_000_000_000_000_000_001})
	if res := n.fsm.Apply(b, 101, cmd); res.Code != wire.WrongRange {
		t.Fatalf("put %s after SPLIT in the same batch: %v %s, want WRONG_RANGE", moved, res.Code, res.Message)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	n.index = 101
	n.checkRangeCache("split")
	if r, _ := n.fsm.Range(); r != (wire.Range{End: at}) {
		t.Fatalf("range after split %v", r)
	}
	for res := n.must(Command{Op: wire.OpSplitCleanup, Size: 5}); res.Message == "more"; res = n.must(Command{Op: wire.OpSplitCleanup, Size: 5}) {
	}
	n.checkRangeCache("cleanup")
	n.checkChunkCache("cleanup")
	n.checkEntryCache("cleanup")
	if !n.checkChunkIDs("cleanup") {
		t.Error("the chunk ids are not known after the cleanup")
	}
	n.must(put(kept, "z", 0))

	// The fork hands this node the upper half.
	rec.Index = 100
	fb := n.db.NewBatch()
	if err := n.fsm.ForkState(fb, rec, false); err != nil {
		t.Fatal(err)
	}
	if err := fb.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	n.checkRangeCache("fork")
	if res := n.do(put(kept, "w", 0)); res.Code != wire.WrongRange {
		t.Fatalf("put %s after the fork: %v %s, want WRONG_RANGE", kept, res.Code, res.Message)
	}
	n.must(put(moved, "w", parents))

	// A snapshot replaces the state underneath: the whole ring again.
	n.setRangeRaw(wholeRing)
	if err := n.fsm.Restored(n.index); err != nil {
		t.Fatal(err)
	}
	n.checkRangeCache("restore")
	n.checkChunkCache("restore")
	n.must(put(kept, "v", parents))
	n.checkRangeCache("after restore")
	n.checkChunkCache("after restore")
}

// setRangeRaw writes the range below the FSM, as a snapshot's ingest does.
func (n *node) setRangeRaw(r wire.Range) {
	n.t.Helper()
	f := &FSM{db: n.db} // a throwaway FSM: only its writer of the key is used
	b := n.db.NewBatch()
	defer b.Close()
	if err := f.setRange(b, &r); err != nil {
		n.t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		n.t.Fatal(err)
	}
}

// TestCachedBoundsDecideAsScans applies one random script on three FSMs:
// one that forgets its cache before every entry (so it always reads and
// scans Pebble and looks every chunk up, as apply did without the cache),
// one restarted (a new FSM over its DB) and one Restored at random points. The script mixes TTLs
// and lets entry time step back, so keys are written below what earlier
// scans saw: session commands, chunk uploads, and commits of uploaded
// chunks over files whose old chunks then wait in "s/p/" at their older
// upload time. Every result and the final states must be equal, and
// expiry and collection must have happened.
func TestCachedBoundsDecideAsScans(t *testing.T) {
	ref, restarted, restored := newNode(t, wholeRing), newNode(t, wholeRing), newNode(t, wholeRing)
	r := rand.New(rand.NewPCG(7, 11))
	ttls := []int64{2e9, 5e9, 30e9}
	now := int64(1e18)
	seq := map[uint64]uint64{}
	expired, collected, chunks, cachedChunks, knownIDs := 0, 0, 0, 0, 0
	var last string
	for i := range 800 {
		now += r.Int64N(4e8)
		if r.IntN(20) == 0 {
			now -= r.Int64N(10e9) // a leader's wall clock behind the last one
		}
		var c Command
		s := uint64(r.IntN(12) + 1)
		switch r.IntN(6) {
		case 0, 1:
			chunks++
			data := fmt.Sprintf("%04d", r.IntN(60))
			last = ChunkOf([]byte(data)).String()
			c = Command{Op: wire.OpChunk, Path: "/up/x", Data: []byte(data), ChunkSize: tiny}
		case 2:
			c = Command{Op: wire.OpCommit, Path: fmt.Sprintf("/up/f%d", r.IntN(4)), Chunks: []string{last}, Size: tiny, ChunkSize: tiny, Flags: parents}
		default:
			seq[s]++
			c = withSession(put(fmt.Sprintf("/s%02d/f%d", s, r.IntN(5)), fmt.Sprint(i), parents), s, seq[s])
		}
		c.ChunkTTL = ttls[r.IntN(len(ttls))]
		c.Time, c.SessionTTL = now, ttls[int(s)%len(ttls)]
		ref.fsm.cache.reset()
		ref.lookUpChunks()
		want := ref.do(c)
		for _, n := range []*node{restarted, restored} {
			if got := n.do(c); got.Code != want.Code || got.Message != want.Message || got.Chunk != want.Chunk {
				t.Fatalf("entry %d: %+v, without cache %+v", i+1, got, want)
			}
			if n.checkChunkIDs(fmt.Sprintf("entry %d", i+1)) {
				knownIDs++
			}
			n.checkSessionCache(fmt.Sprintf("entry %d", i+1))
			cachedChunks = max(cachedChunks, n.checkChunkCache(fmt.Sprintf("entry %d", i+1)))
		}
		if r.IntN(50) == 0 {
			restarted.fsm = mustFSM(restarted.db)
		}
		if r.IntN(50) == 0 {
			if err := restored.fsm.Restored(restored.index); err != nil {
				t.Fatal(err)
			}
		}
		expired = max(expired, len(seq)-ref.countPrefix(sessionTimePrefix))
		collected = max(collected, chunks-ref.countPrefix(pendingPrefix))
	}
	if expired == 0 || collected == 0 || cachedChunks == 0 || knownIDs == 0 {
		t.Fatalf("the script expired %d sessions, collected %d chunks, cached at most %d and knew the ids after %d entries: it tests nothing", expired, collected, cachedChunks, knownIDs)
	}
	want := ref.stateSum()
	for name, n := range map[string]*node{"restarted": restarted, "restored": restored} {
		if got := n.stateSum(); got != want {
			t.Errorf("%s: state %s, without cache %s", name, got, want)
		}
	}
	if !slices.EqualFunc(ref.dump(), restored.dump(), func(x, y [2][]byte) bool { return string(x[0]) == string(y[0]) && string(x[1]) == string(y[1]) }) {
		t.Error("dumps differ")
	}
}

// checkSeqsCache fails unless the stored seqs the FSM holds in memory for
// each session are the result keys stored in Pebble. It returns how many
// sessions it holds them for.
func (n *node) checkSeqsCache(when string) int {
	n.t.Helper()
	n.fsm.cache.mu.Lock()
	cached := map[uint64][]uint64{}
	for s, w := range n.fsm.cache.windows {
		cached[s] = slices.Clone(w.seqs)
	}
	n.fsm.cache.mu.Unlock()
	for s, seqs := range cached {
		var stored []uint64
		pfx := sessionKey(s)
		if err := scanPrefix(n.db, pfx, func(k, _ []byte) error {
			if len(k) == len(pfx)+8 {
				stored = append(stored, binary.BigEndian.Uint64(k[len(pfx):]))
			}
			return nil
		}); err != nil {
			n.t.Fatal(err)
		}
		if !slices.Equal(seqs, stored) {
			n.t.Fatalf("%s: session %d cached with %d stored seqs %v, Pebble holds %d: %v", when, s, len(seqs), seqs, len(stored), stored)
		}
	}
	return len(cached)
}

// fillSeqsCache fills the FSM's stored-seqs cache with sessions no
// command uses, so that Apply finds no room and reads instead.
func (n *node) fillSeqsCache() {
	c := &n.fsm.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.windows == nil {
		c.windows = map[uint64]*seqWindow{}
	}
	for i := uint64(0); len(c.windows) < maxCachedWindows; i++ {
		c.windows[1<<40+i] = &seqWindow{}
	}
}

// TestSessionSeqsDecideAsReads applies one script of pipelined sessions
// on three FSMs: one that finds no room to keep a session's stored seqs
// (so it reads every stored result and scans for the oldest, as apply did
// before it kept them), one restarted (a new FSM over its DB) and one
// Restored at random points.
// Each session's commands apply out of order, as a client pipelining
// them on several connections makes them, with retries of applied ones,
// seqs never sent, stale ones and idle spells past the TTL; every window
// fills and trims. Every result, byte for byte, and the final states
// must be equal.
func TestSessionSeqsDecideAsReads(t *testing.T) {
	ref, restarted, restored := newNode(t, wholeRing), newNode(t, wholeRing), newNode(t, wholeRing)
	r := rand.New(rand.NewPCG(3, 5))
	const sessions, ttl = 2, int64(60e9)
	now := int64(1e18)
	next := map[uint64]uint64{}      // the next seq each session sends
	applied := map[uint64][]uint64{} // seqs sent, for retries
	var retried, stale, trimmed, expired, cached int
	ref.fillSeqsCache()
	for i := range 4500 {
		now += r.Int64N(2e6)
		if i == 3000 {
			now += 2 * ttl // every session idles past the TTL
		}
		s := uint64(r.IntN(sessions) + 1)
		var seq uint64
		switch k := r.IntN(20); {
		case k == 0 && len(applied[s]) > 0: // a retry of an earlier one
			seq = applied[s][len(applied[s])-1-r.IntN(min(len(applied[s]), 1500))]
			retried++
		default: // one of the next few, as pipelined requests overtake each other
			next[s] += uint64(r.IntN(3)) // some seqs are never sent
			seq = next[s] + 1 + uint64(r.IntN(48))
			next[s] = max(next[s], seq-24)
		}
		applied[s] = append(applied[s], seq)
		c := withSession(put(fmt.Sprintf("/s%d/f%d", s, r.IntN(8)), fmt.Sprint(i), parents), s, seq)
		c.Time, c.SessionTTL = now, ttl
		want := ref.do(c)
		if strings.Contains(want.Message, "stale sequence") {
			stale++
		}
		for _, n := range []*node{restarted, restored} {
			if got := n.do(c); !reflect.DeepEqual(got, want) {
				t.Fatalf("entry %d (session %d seq %d): %+v, reading %+v", i+1, s, seq, got, want)
			}
			if i%25 == 0 || i == 4499 { // a scan per session: every entry would take minutes under -race
				cached = max(cached, n.checkSeqsCache(fmt.Sprintf("entry %d", i+1)))
			}
		}
		if r.IntN(400) == 0 {
			restarted.fsm = mustFSM(restarted.db)
		}
		if r.IntN(400) == 0 {
			if err := restored.fsm.Restored(restored.index); err != nil {
				t.Fatal(err)
			}
		}
		for s := range uint64(sessions) {
			m, err := getSession(ref.db, s+1)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case m == nil && len(applied[s+1]) > 0:
				expired++
			case m != nil && m.Low > 0:
				trimmed++
			}
		}
	}
	if retried == 0 || stale == 0 || trimmed == 0 || expired == 0 || cached == 0 {
		t.Fatalf("the script retried %d, refused %d stale, trimmed %d, expired %d, cached %d: it tests too little", retried, stale, trimmed, expired, cached)
	}
	want := ref.stateSum()
	for name, n := range map[string]*node{"restarted": restarted, "restored": restored} {
		if got := n.stateSum(); got != want {
			t.Errorf("%s: state %s, reading %s", name, got, want)
		}
	}
}

// checkEntryCache fails unless every entry the FSM holds in memory is the
// one stored in Pebble. It returns how many it holds.
func (n *node) checkEntryCache(when string) int {
	n.t.Helper()
	n.fsm.cache.mu.Lock()
	cached := maps.Clone(n.fsm.cache.entries.m)
	n.fsm.cache.mu.Unlock()
	for p, e := range cached {
		stored, err := getEntry(n.db, p)
		if err != nil {
			n.t.Fatal(err)
		}
		if stored == nil || !reflect.DeepEqual(*stored, e) {
			n.t.Fatalf("%s: %s cached as %+v, Pebble holds %+v", when, p, e, stored)
		}
	}
	return len(cached)
}

// TestEntryCacheDecidesAsReads applies one random script of every command
// that writes or deletes entries — puts, writes and appends, mkdirs,
// removes of files and trees, renames of files and trees, copies — over a
// small tree, on three FSMs: one that forgets its cache before every entry
// (so it reads every entry, as apply did before it kept them), one
// restarted (a new FSM over its DB) and one Restored at random points.
// Every result and the final states must be equal, and every cached entry
// must be the stored one after each command.
func TestEntryCacheDecidesAsReads(t *testing.T) {
	ref, restarted, restored := newNode(t, wholeRing), newNode(t, wholeRing), newNode(t, wholeRing)
	r := rand.New(rand.NewPCG(13, 17))
	pick := func() string { // a path of at most three levels in two roots
		p := fmt.Sprintf("/r%d", r.IntN(2))
		for range r.IntN(3) + 1 {
			p += fmt.Sprintf("/%c", 'a'+r.IntN(3))
		}
		return p
	}
	codes := map[wire.Code]int{}
	ops := map[wire.Op]int{}
	cached := 0
	for i := range 3000 {
		var c Command
		switch r.IntN(9) {
		case 0, 1:
			c = put(pick(), fmt.Sprint(i), parents)
		case 2:
			c = Command{Op: wire.OpWrite, Path: pick(), Offset: int64(r.IntN(6)), Data: []byte("wx"), Flags: parents}
		case 3:
			c = Command{Op: wire.OpAppend, Path: pick(), Data: []byte("ap"), Flags: parents}
		case 4:
			c = mkdir(pick(), parents)
		case 5:
			c = remove(pick(), wire.Flags(r.IntN(2))*recursive)
		case 6, 7:
			src := pick()
			c = Command{Op: wire.OpRename, Path: src, To: fspathRoot(src) + pick()[3:], Flags: parents}
		default:
			src := pick()
			c = Command{Op: wire.OpCopy, Path: src, To: fspathRoot(src) + pick()[3:], Flags: parents}
		}
		c.Time = 1_700_000_000_000_000_000 + int64(i)
		ref.fsm.cache.reset()
		want := ref.do(c)
		codes[want.Code]++
		if want.Code == wire.OK {
			ops[c.Op]++
		}
		for _, n := range []*node{restarted, restored} {
			if got := n.do(c); !reflect.DeepEqual(got, want) {
				t.Fatalf("command %d %v %s -> %s: %+v, reading %+v", i+1, c.Op, c.Path, c.To, got, want)
			}
			cached = max(cached, n.checkEntryCache(fmt.Sprintf("command %d (%v %s)", i+1, c.Op, c.Path)))
		}
		if r.IntN(300) == 0 {
			restarted.fsm = mustFSM(restarted.db)
		}
		if r.IntN(300) == 0 {
			if err := restored.fsm.Restored(restored.index); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, op := range []wire.Op{wire.OpPut, wire.OpWrite, wire.OpAppend, wire.OpMkdir, wire.OpRemove, wire.OpRename, wire.OpCopy} {
		if ops[op] == 0 {
			t.Errorf("no %v succeeded: the script tests too little (%v)", op, ops)
		}
	}
	if cached == 0 || len(codes) < 4 {
		t.Errorf("cached at most %d entries, result codes %v: the script tests too little", cached, codes)
	}
	want := ref.stateSum()
	for name, n := range map[string]*node{"restarted": restarted, "restored": restored} {
		if got := n.stateSum(); got != want {
			t.Errorf("%s: state %s, reading %s", name, got, want)
		}
	}
}

// fspathRoot is the root directory of p ("/r0" of "/r0/a/b").
func fspathRoot(p string) string { return p[:3] }
