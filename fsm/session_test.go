package fsm

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"
)

func withSession(c Command, s, seq uint64) Command {
	c.Session, c.Seq = s, seq
	return c
}

func TestExactlyOnce(t *testing.T) {
	n := newNode(t, wholeRing)
	n.must(mkdir("/a", 0))
	first := n.must(withSession(appendTo("/a/log", "x"), 7, 1))
	again := n.must(withSession(appendTo("/a/log", "x"), 7, 1))
	if got := n.content("/a/log"); got != "x" {
		t.Fatalf("a retried append applied twice: %q", got)
	}
	if *again.Stat != *first.Stat {
		t.Fatalf("retry result %+v, first %+v", again.Stat, first.Stat)
	}
	// The stored result is returned even when it was a failure, and even
	// though the state changed since.
	n.must(withSession(rename("/a/log", "/a/moved", 0), 7, 2))
	if res := n.do(withSession(rename("/a/log", "/a/moved", 0), 7, 2)); res.Code != wire.OK {
		t.Fatalf("retried rename: %v %q", res.Code, res.Message)
	}
	n.must(withSession(Command{Op: wire.OpPut, Path: "/a/once", Data: []byte("1"), Flags: wire.FlagIfAbsent}, 7, 3))
	if res := n.do(withSession(Command{Op: wire.OpPut, Path: "/a/once", Data: []byte("1"), Flags: wire.FlagIfAbsent}, 7, 3)); res.Code != wire.OK {
		t.Fatalf("retried put --if-absent: %v %q", res.Code, res.Message)
	}
	fail := n.do(withSession(mkdir("/a", 0), 7, 4))
	n.must(remove("/a", recursive))
	if res := n.do(withSession(mkdir("/a", 0), 7, 4)); res.Code != wire.Exists || res.Message != fail.Message {
		t.Fatalf("retried failure: %v %q, first %v %q", res.Code, res.Message, fail.Code, fail.Message)
	}
	if ok, _ := n.fsm.Exists("/a"); ok {
		t.Fatal("the retried mkdir was applied")
	}
	// Sessions are independent; session 0 never deduplicates.
	n.must(withSession(appendTo("/log", "y"), 8, 1))
	n.must(appendTo("/log", "z"))
	n.must(appendTo("/log", "z"))
	if got := n.content("/log"); got != "yzz" {
		t.Fatalf("/log = %q", got)
	}
	if res := n.do(withSession(appendTo("/log", "y"), 9, 0)); res.Code != wire.Invalid || !strings.Contains(res.Message, "seq 0") {
		t.Fatalf("seq 0: %v %q", res.Code, res.Message)
	}
}

func TestSessionOutOfOrder(t *testing.T) {
	n := newNode(t, wholeRing)
	const s = 42
	rng := rand.New(rand.NewPCG(1, 2))
	seqs := make([]uint64, 300)
	for i := range seqs {
		seqs[i] = uint64(i + 1)
	}
	// Pipelined requests arrive in any order, and some twice.
	rng.Shuffle(len(seqs), func(i, j int) { seqs[i], seqs[j] = seqs[j], seqs[i] })
	seqs = append(seqs, seqs[:50]...)
	for _, q := range seqs {
		n.must(withSession(appendTo("/log", fmt.Sprintf("%d,", q)), s, q))
	}
	got := strings.Split(strings.TrimSuffix(n.content("/log"), ","), ",")
	if len(got) != 300 {
		t.Fatalf("%d appends applied, want 300", len(got))
	}
	slices.Sort(got)
	if len(slices.Compact(got)) != 300 {
		t.Fatal("an append was applied twice")
	}
}

func TestSessionWindow(t *testing.T) {
	n := newNode(t, wholeRing)
	const s = 5
	// Seq 1 is left out: a request overtaken by more than the window.
	for q := uint64(2); q <= sessionWindow+2; q++ {
		n.must(withSession(mkdir(fmt.Sprintf("/d%d", q), 0), s, q))
	}
	m, err := getSession(n.db, s)
	if err != nil || m.Count != sessionWindow || m.Low != 2 {
		t.Fatalf("session %+v, %v", m, err)
	}
	for _, q := range []uint64{1, 2} {
		res := n.do(withSession(mkdir("/late", 0), s, q))
		if res.Code != wire.Invalid || !strings.Contains(res.Message, "stale sequence") {
			t.Fatalf("seq %d below the window: %v %q", q, res.Code, res.Message)
		}
	}
	if ok, _ := n.fsm.Exists("/late"); ok {
		t.Fatal("a stale request was applied")
	}
	// Seq 3 is the oldest remembered: its retry still gets its result.
	if res := n.do(withSession(mkdir("/d3", 0), s, 3)); res.Code != wire.OK {
		t.Fatalf("retry of the oldest in the window: %v %q", res.Code, res.Message)
	}
	if c := n.countPrefix(sessionPrefix); c != sessionWindow+1 {
		t.Fatalf("%d session keys, want the window plus the meta", c)
	}
}

func TestSessionExpiry(t *testing.T) {
	n := newNode(t, wholeRing)
	const ttl = 1000
	at := func(c Command, tm int64) Command {
		c.Time, c.SessionTTL = tm, ttl
		return c
	}
	n.must(at(withSession(appendTo("/log", "a"), 1, 1), 10_000))
	n.must(at(withSession(appendTo("/log", "b"), 2, 1), 10_500))
	// Within the TTL a retry is deduplicated and renews the session.
	n.must(at(withSession(appendTo("/log", "a"), 1, 1), 10_900))
	if got := n.content("/log"); got != "ab" {
		t.Fatalf("/log = %q", got)
	}
	// At 11_500 session 2 (last used 10_500) expires, session 1 (10_900) not.
	n.must(at(mkdir("/tick", 0), 11_500))
	if m, _ := getSession(n.db, 2); m != nil {
		t.Fatal("session 2 did not expire")
	}
	if m, _ := getSession(n.db, 1); m == nil {
		t.Fatal("session 1 expired early")
	}
	n.must(at(mkdir("/tock", 0), 11_900))
	if n.countPrefix(sessionPrefix) != 0 || n.countPrefix(sessionTimePrefix) != 0 {
		t.Fatalf("%d session keys and %d time keys left after expiry", n.countPrefix(sessionPrefix), n.countPrefix(sessionTimePrefix))
	}
	// An expired session starts afresh: the documented limit of retries.
	n.must(at(withSession(appendTo("/log", "a"), 1, 1), 12_000))
	if got := n.content("/log"); got != "aba" {
		t.Fatalf("/log = %q", got)
	}
}

func TestListPages(t *testing.T) {
	n := newNode(t, wholeRing)
	for _, p := range []string{"/d/b", "/d/d", "/d/f", "/d/h"} {
		n.must(put(p, "x", parents))
	}
	page := func(after string, limit int) ([]string, string) {
		t.Helper()
		list, next, err := n.fsm.ListPage("/d", after, limit, false)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, st := range list {
			names = append(names, st.Name)
		}
		return names, next
	}
	got, next := page("", 2)
	if !slices.Equal(got, []string{"b", "d"}) || next == "" {
		t.Fatalf("page 1 = %v %q", got, next)
	}
	// Between pages: insert before and after the token, remove the token's
	// own entry and the next one.
	n.must(put("/d/a", "x", 0))
	n.must(put("/d/e", "x", 0))
	n.must(remove("/d/d", 0))
	n.must(remove("/d/f", 0))
	got, next2 := page(next, 2)
	if !slices.Equal(got, []string{"e", "h"}) || next2 != "" {
		t.Fatalf("page 2 = %v %q", got, next2)
	}
	// An exactly full last page has no next token.
	if got, next := page("", 4); len(got) != 4 || next != "" {
		t.Fatalf("full page = %v %q", got, next)
	}
	if _, _, err := n.fsm.ListPage("/d", "!!", 2, false); codeOf(err) != wire.Invalid || !strings.Contains(err.Error(), "continuation token") {
		t.Fatalf("bad token: %v", err)
	}
	if _, _, err := n.fsm.ListPage("/d", encodeToken("a/b"), 2, false); codeOf(err) != wire.Invalid {
		t.Fatalf("recursive token for a flat list: %v", err)
	}
	// Limits: 0 is the default, above the maximum is the maximum.
	for i := range 1100 {
		n.must(put(fmt.Sprintf("/many/%05d", i), "", parents))
	}
	if list, next, _ := n.fsm.ListPage("/many", "", 0, false); len(list) != DefaultListLimit || next == "" {
		t.Fatalf("default limit gave %d", len(list))
	}
	if list, _, _ := n.fsm.ListPage("/many", "", 1<<30, false); len(list) != 1100 {
		t.Fatalf("large limit gave %d", len(list))
	}
	// Roots page too.
	roots, next, err := n.fsm.ListPage("/", "", 1, false)
	if err != nil || len(roots) != 1 || roots[0].Name != "d" || next == "" {
		t.Fatalf("roots page = %+v %q %v", roots, next, err)
	}
	if roots, next, _ = n.fsm.ListPage("/", next, 1, false); len(roots) != 1 || roots[0].Name != "many" {
		t.Fatalf("roots page 2 = %+v %q", roots, next)
	}
}

func TestListRecursive(t *testing.T) {
	n := newNode(t, wholeRing)
	for _, p := range []string{"/r/a/x", "/r/a/y/z", "/r/a b", "/r/b", "/r/a-", "/r/c/d/e/f"} {
		n.must(put(p, "v", parents))
	}
	n.must(mkdir("/r/empty", 0))
	want := []string{"a", "a/x", "a/y", "a/y/z", "a b", "a-", "b", "c", "c/d", "c/d/e", "c/d/e/f", "empty"}
	all, next, err := n.fsm.ListPage("/r", "", -1, true)
	if err != nil || next != "" {
		t.Fatal(err, next)
	}
	var got []string
	for _, st := range all {
		got = append(got, st.Name)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("recursive = %q\nwant %q", got, want)
	}
	for limit := 1; limit <= len(want)+1; limit++ {
		var paged []string
		after := ""
		for {
			list, next, err := n.fsm.ListPage("/r", after, limit, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range list {
				paged = append(paged, st.Name)
			}
			if next == "" {
				break
			}
			after = next
		}
		if !slices.Equal(paged, want) {
			t.Fatalf("limit %d: %q", limit, paged)
		}
	}
	// The token survives the removal of its entry: resume after "a/y".
	n.must(remove("/r/a/y", recursive))
	list, _, err := n.fsm.ListPage("/r", encodeToken("a/y"), 2, true)
	if err != nil || len(list) != 2 || list[0].Name != "a b" || list[1].Name != "a-" {
		t.Fatalf("after a removed token: %+v %v", list, err)
	}
}

// TestDeterminismChunks replays a script of every op on two DBs.
func TestDeterminismChunks(t *testing.T) {
	a, b := newNode(t, wholeRing), newNode(t, wholeRing)
	cmds := []Command{
		putTiny("/r/a", "0123456789"),
		write("/r/a", 12, "xy"),
		appendTo("/r/a", "tail"),
		cp("/r/a", "/r/b", 0),
		rename("/r/b", "/r/sub/c", parents),
		{Op: wire.OpChunk, Path: "/r/u", Data: []byte("abcd"), ChunkSize: tiny},
		{Op: wire.OpChunk, Path: "/r/u", Data: []byte("ef"), ChunkSize: tiny},
		{Op: wire.OpCommit, Path: "/r/u", Size: 6, Chunks: []string{ChunkOf([]byte("abcd")).String(), ChunkOf([]byte("ef")).String()}},
		withSession(appendTo("/r/u", "!"), 3, 1),
		withSession(appendTo("/r/u", "!"), 3, 1),
		remove("/r/sub", recursive),
	}
	for i, c := range cmds {
		c.Time = int64(1_000 + i)
		ra, rb := a.do(c), b.do(c)
		if ra.Code != wire.OK || ra.Code != rb.Code || ra.Chunk != rb.Chunk || (ra.Stat == nil) != (rb.Stat == nil) || (ra.Stat != nil && *ra.Stat != *rb.Stat) {
			t.Fatalf("entry %d: %+v vs %+v", i+1, ra, rb)
		}
	}
	da, db := a.dump(), b.dump()
	if !slices.EqualFunc(da, db, func(x, y [2][]byte) bool { return string(x[0]) == string(y[0]) && string(x[1]) == string(y[1]) }) {
		t.Fatal("the two replicas differ")
	}
}

// TestSessionHigh checks the session record's High, the largest seq whose
// result the session stores: it follows out-of-order and repeated seqs,
// and a record without it (written before it existed) keeps deduplicating
// through the stored results and never learns a High it cannot prove.
func TestSessionHigh(t *testing.T) {
	n := newNode(t, wholeRing)
	const s = 5
	high := func() uint64 {
		t.Helper()
		m, err := getSession(n.db, s)
		if err != nil || m == nil {
			t.Fatalf("session %d: %v, %v", s, m, err)
		}
		return m.High
	}
	for i, q := range []uint64{3, 1, 7, 2, 7, 5} {
		n.must(withSession(appendTo("/log", fmt.Sprintf("%d,", q)), s, q))
		if want := []uint64{3, 3, 7, 7, 7, 7}[i]; high() != want {
			t.Fatalf("after seq %d: High %d, want %d", q, high(), want)
		}
	}
	// A refused command's result is stored too, so it counts.
	if res := n.do(withSession(mkdir("/log", 0), s, 9)); res.Code != wire.Exists {
		t.Fatalf("mkdir over a file: %v %q", res.Code, res.Message)
	}
	if high() != 9 {
		t.Fatalf("after a stored failure at seq 9: High %d", high())
	}

	// A record as written before High existed: same fields, no "h".
	m, err := getSession(n.db, s)
	if err != nil {
		t.Fatal(err)
	}
	old, err := msgpack.Marshal(&struct {
		Low   uint64 `msgpack:"l,omitempty"`
		Count int    `msgpack:"n,omitempty"`
		Last  int64  `msgpack:"t,omitempty"`
		Index int64  `msgpack:"i,omitempty"`
	}{m.Low, m.Count, m.Last, m.Index})
	if err != nil {
		t.Fatal(err)
	}
	n.setBehind(sessionKey(s), old)
	before := n.content("/log")
	n.must(withSession(appendTo("/log", "7,"), s, 7)) // a retry: not applied again
	if got := n.content("/log"); got != before {
		t.Fatalf("a retry of an old-format session applied again: %q, was %q", got, before)
	}
	n.must(withSession(appendTo("/log", "8,"), s, 8))
	if high() != 0 {
		t.Fatalf("an old-format session learned High %d, but results above it may be stored", high())
	}
	if res := n.do(withSession(appendTo("/log", "9,"), s, 9)); res.Code != wire.Exists { // the stored failure
		t.Fatalf("retry of seq 9: %v %q, want the stored EXISTS", res.Code, res.Message)
	}
	if got := n.content("/log"); got != before+"8," {
		t.Fatalf("/log = %q, want %q", got, before+"8,")
	}
}

// TestSessionShortcutsMatchReads runs one session workload on two nodes:
// one as is, one whose session record loses High before every command,
// so that it finds retries and the oldest result by reading them. Rising
// seqs, seqs overtaken and applied late, seqs never applied, retries,
// stale seqs and results not stored (WRONG_RANGE) make gaps in the window
// and trim it many times over. Every result, and at the end every stored
// key, must be the same on both: the shortcuts decide as the reads do.
func TestSessionShortcutsMatchReads(t *testing.T) {
	mine := wire.Range{Start: 0, End: 1 << 63}
	fast, slow := newNode(t, mine), newNode(t, mine)
	other := rootOutside(mine)
	var root string
	for i := 0; root == ""; i++ {
		if name := fmt.Sprintf("r%d", i); mine.Contains(ring.Point(name)) {
			root = name
		}
	}
	const s = 11
	strip := func(n *node) { // rewrite the record as written before High
		m, err := getSession(n.db, s)
		if err != nil || m == nil {
			return
		}
		m.High = 0
		v, err := msgpack.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		n.setBehind(sessionKey(s), v)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var next uint64
	var late []uint64
	for i := range 4 * sessionWindow {
		var q uint64
		path := fmt.Sprintf("/%s/f%d", root, rng.IntN(50))
		switch x := rng.IntN(100); {
		case x < 5: // overtaken: applied later, or never
			late = append(late, next+1)
			next += 2
			q = next
		case x < 10 && len(late) > 0:
			j := rng.IntN(len(late))
			q = late[j]
			late = slices.Delete(late, j, j+1)
		case x < 15 && next > 0: // a retry, possibly of a stale seq
			q = next - min(next-1, uint64(rng.IntN(sessionWindow+64)))
		case x < 20: // not stored: a gap in the window
			next++
			q, path = next, fmt.Sprintf("/%s/f", other)
		default:
			next++
			q = next
		}
		c := withSession(put(path, fmt.Sprint(i), parents), s, q)
		strip(slow)
		if a, b := fast.do(c), slow.do(c); !sameResult(a, b) {
			t.Fatalf("step %d, seq %d: with shortcuts %v %q %+v, reading %v %q %+v", i, q, a.Code, a.Message, a.Stat, b.Code, b.Message, b.Stat)
		}
	}
	strip(fast)
	strip(slow)
	sameKeys(t, fast, slow)
	if m, _ := getSession(fast.db, s); m == nil || m.Count != sessionWindow {
		t.Fatalf("the window did not fill: %+v", m)
	}
}

// setBehind writes k=v behind the state machine's back, as a snapshot
// install does, and then, as Restored does, makes it forget what it
// holds in memory.
func (n *node) setBehind(k, v []byte) {
	n.t.Helper()
	if err := n.db.Set(k, v, pebble.NoSync); err != nil {
		n.t.Fatal(err)
	}
	n.fsm.cache.reset()
}
