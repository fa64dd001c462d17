package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/wire"
)

// committedHash hashes the state machine keys of db as the check does.
func committedHash(t *testing.T, db *pebble.DB) string {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: stateStart, UpperBound: stateEnd})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	h := newStateHasher(true)
	for it.First(); it.Valid(); it.Next() {
		h.add(it.Key(), it.Value())
	}
	return h.sum()
}

// TestHashOverlayIsTheStateAfterTheBatch: the hash of a snapshot with a
// batch's mutations laid over it equals the hash of the state once the
// batch commits, whatever the mix of sets, deletes and range deletes, in
// and out of the state machine's keys.
func TestHashOverlayIsTheStateAfterTheBatch(t *testing.T) {
	type op struct {
		kind    string // set, del, single, range
		k, v, e string
	}
	cases := []struct {
		name string
		ops  []op
	}{
		{"empty batch", nil},
		{"set new and existing", []op{{kind: "set", k: "s/e/b", v: "B2"}, {kind: "set", k: "s/e/bb", v: "new"}}},
		{"delete", []op{{kind: "del", k: "s/e/a"}, {kind: "single", k: "s/e/c"}, {kind: "del", k: "s/e/zz"}}},
		{"set then delete then set", []op{{kind: "set", k: "s/e/x", v: "1"}, {kind: "del", k: "s/e/x"}, {kind: "set", k: "s/e/x", v: "2"}}},
		{"range delete covers old and new", []op{{kind: "set", k: "s/e/bz", v: "gone"}, {kind: "range", k: "s/e/b", e: "s/e/d"}}},
		{"set after range delete", []op{{kind: "range", k: "s/e/", e: "s/f"}, {kind: "set", k: "s/e/c", v: "back"}}},
		{"raft keys ignored", []op{{kind: "set", k: "r/log/1", v: "entry"}, {kind: "range", k: "r/", e: "r0"}, {kind: "set", k: "t/x", v: "y"}}},
		{"chunk bytes by length", []op{{kind: "set", k: "s/c/h2", v: "0123456789"}, {kind: "set", k: "s/c/h1", v: "abcd"}}},
		{"range delete across the state's bounds", []op{{kind: "range", k: "r/", e: "s/e/b"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for _, kv := range [][2]string{{"r/applied", "x"}, {"s/c/h1", "abc"}, {"s/e/a", "A"}, {"s/e/b", "B"}, {"s/e/c", "C"}, {"s/m/range", "R"}, {"t/other", "O"}} {
				if err := db.Set([]byte(kv[0]), []byte(kv[1]), pebble.Sync); err != nil {
					t.Fatal(err)
				}
			}
			b := db.NewIndexedBatch()
			defer b.Close()
			for _, o := range tc.ops {
				var err error
				switch o.kind {
				case "set":
					err = b.Set([]byte(o.k), []byte(o.v), nil)
				case "del":
					err = b.Delete([]byte(o.k), nil)
				case "single":
					err = b.SingleDelete([]byte(o.k), nil)
				case "range":
					err = b.DeleteRange([]byte(o.k), []byte(o.e), nil)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			snap := db.NewSnapshot()
			defer snap.Close()
			got, err := hashOverlay(snap, slices.Clone(b.Repr()))
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if want := committedHash(t, db); got != want {
				t.Fatalf("overlay hash %s, committed state %s", got, want)
			}
		})
	}
}

// TestStateHasherChecksumDefinition: without chunk names the check's
// hasher is Checksum's definition; with them, a chunk's bytes count by
// their length only.
func TestStateHasherChunkNames(t *testing.T) {
	sum := func(chunkNames bool, v string) string {
		h := newStateHasher(chunkNames)
		h.add([]byte("s/c/h"), []byte(v))
		return h.sum()
	}
	if sum(true, "aaaa") != sum(true, "bbbb") {
		t.Error("with chunk names, two chunk values of one length hash differently")
	}
	if sum(false, "aaaa") == sum(false, "bbbb") {
		t.Error("without chunk names, two chunk values hash the same")
	}
}

func TestDecide(t *testing.T) {
	v3 := map[uint64]bool{1: true, 2: true, 3: true}
	cases := []struct {
		name     string
		hashes   map[uint64]string
		voters   map[uint64]bool
		members  int
		ok       bool
		diverged []uint64
		split    bool
	}{
		{"all agree", map[uint64]string{1: "a", 2: "a", 3: "a"}, v3, 3, true, nil, false},
		{"majority agrees, third not reported yet", map[uint64]string{1: "a", 2: "a"}, v3, 3, true, nil, false},
		{"one of two reported differs: wait", map[uint64]string{1: "a", 3: "b"}, v3, 3, false, nil, false},
		{"minority named", map[uint64]string{1: "a", 2: "a", 3: "b"}, v3, 3, true, []uint64{3}, false},
		{"diverged learner named", map[uint64]string{1: "a", 2: "a", 4: "b"}, v3, 4, true, []uint64{4}, false},
		{"three ways: no majority", map[uint64]string{1: "a", 2: "b", 3: "c"}, v3, 3, true, []uint64{1, 2, 3}, true},
		{"alone: nothing to compare", map[uint64]string{1: "a"}, v3, 3, false, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, ok := decide(tc.hashes, tc.voters, tc.members)
			if ok != tc.ok || !slices.Equal(v.diverged, tc.diverged) || v.split != tc.split {
				t.Fatalf("decide = %+v, %v; want diverged %v split %v, %v", v, ok, tc.diverged, tc.split, tc.ok)
			}
		})
	}
}

// TestConsistencyCheckQuarantinesDivergedNode runs the check on three real
// nodes: healthy, they compare equal hashes; once node 3 rewrites an entry
// outside the log, every node names it, node 3 refuses reads, and its
// metrics say so.
func TestConsistencyCheckQuarantinesDivergedNode(t *testing.T) {
	mn := newMemberNet(t, 3)
	for id := uint64(1); id <= 3; id++ {
		cfg := mn.cfgs[id]
		cfg.CheckInterval = 100 * time.Millisecond
		if id == 3 {
			cfg.UnsafeDivergePath = "/r1/f1"
			cfg.HTTP = "127.0.0.1:0"
		}
		mn.cfgs[id] = cfg
	}
	for id := uint64(1); id <= 3; id++ {
		mn.start(id)
	}
	lead := mn.leader()
	for i := 2; i < 10; i++ {
		mn.put(lead, i)
	}
	var at uint64
	for _, n := range mn.nodes {
		at = max(at, n.Status().Applied)
	}
	eventually.Holds(t, 20*time.Second, "every node compared a check after the writes", func() error {
		for id, n := range mn.nodes {
			st := n.Status()
			if st.Alarm != "" || st.Quarantined || st.CheckMismatches != 0 {
				t.Fatalf("false alarm on node %d: %+v", id, st)
			}
			if st.CheckCompared <= at {
				return fmt.Errorf("node %d compared up to %d, want > %d", id, st.CheckCompared, at)
			}
		}
		return nil
	})

	mn.put(lead, 1) // /r1/f1: node 3 diverges
	eventually.Holds(t, 20*time.Second, "every node names node 3", func() error {
		for id, n := range mn.nodes {
			st := n.Status()
			if !slices.Equal(st.Diverged, []uint64{3}) || st.Quarantined != (id == 3) || st.Alarm == "" {
				return fmt.Errorf("node %d: alarm %q diverged %v quarantined %v", id, st.Alarm, st.Diverged, st.Quarantined)
			}
		}
		return nil
	})
	for _, id := range []uint64{3, 1} {
		resp := mn.call(id, &wire.Request{Op: wire.OpGet, Path: "/r2/f2", Flags: wire.FlagStale})
		if id == 3 && (resp.Code != wire.Unavailable || !strings.Contains(resp.Message, "quarantined")) {
			t.Errorf("node 3 answered a read %v %q, want UNAVAILABLE (quarantined)", resp.Code, resp.Message)
		}
		if id == 1 && resp.Code != wire.OK {
			t.Errorf("node 1 answered a read %v %q, want OK", resp.Code, resp.Message)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+mn.nodes[3].HTTPAddr()+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"cleave_node_consistency_alarm 1", "cleave_node_consistency_quarantined 1"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(string(body), "cleave_node_consistency"))
		}
	}
	if strings.Contains(string(body), "cleave_node_consistency_mismatch_total 0\n") || !strings.Contains(string(body), "cleave_node_consistency_mismatch_total") {
		t.Errorf("mismatch counter not raised:\n%s", grepLines(string(body), "cleave_node_consistency"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
