package control

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

func twoClusters() []wire.ClusterInfo {
	return []wire.ClusterInfo{
		{ID: "c1", Members: members("127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003")},
		{ID: "c2", Members: members("127.0.0.1:7011", "127.0.0.1:7012", "127.0.0.1:7013")},
	}
}

func members(addrs ...string) []wire.Member {
	ms := make([]wire.Member, len(addrs))
	for i, a := range addrs {
		ms[i] = wire.Member{ID: uint64(i + 1), Addr: a}
	}
	return ms
}

func TestBootstrapTable(t *testing.T) {
	for n := 1; n <= 5; n++ {
		cs := make([]wire.ClusterInfo, n)
		for i := range cs {
			cs[i] = wire.ClusterInfo{ID: "c" + string(rune('a'+i)), Members: members("h:" + string(rune('a'+i)))}
		}
		tab := BootstrapTable(cs)
		if err := ValidateTable(tab); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if tab.Version != 1 || len(tab.Ranges) != n {
			t.Fatalf("n=%d: %+v", n, tab)
		}
		for i, r := range ring.Even(n) {
			if tab.Ranges[i].Range != r || tab.Ranges[i].Cluster != cs[i].ID {
				t.Errorf("n=%d: range %d = %+v, want %v owned by %s", n, i, tab.Ranges[i], r, cs[i].ID)
			}
		}
		cs[0].Members[0].Addr = "changed" // the table owns its copy
		if tab.Clusters[0].Members[0].Addr == "changed" {
			t.Errorf("BootstrapTable shares the caller's members")
		}
	}
}

func TestFileTablePersistAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "table.json")
	ft, err := OpenFileTable(path, BootstrapTable(twoClusters()))
	if err != nil {
		t.Fatal(err)
	}
	if v := ft.Current().Version; v != 1 {
		t.Fatalf("bootstrap version %d, want 1", v)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("bootstrap not written: %v", err)
	}
	before := ft.Current()

	// Split c1's range in half and give the upper half to a new cluster.
	err = ft.Update(context.Background(), func(tab *wire.TableInfo) error {
		r := tab.Ranges[0].Range
		mid := ring.Mid(r)
		tab.Ranges[0].Range.End = mid
		tab.Ranges = append(tab.Ranges, wire.RangeOwner{Range: wire.Range{Start: mid, End: r.End}, Cluster: "c3"})
		tab.Clusters = append(tab.Clusters, wire.ClusterInfo{ID: "c3", Members: members("127.0.0.1:7021")})
		tab.Version = 99 // ignored: Update sets it
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cur := ft.Current()
	if cur.Version != 2 || len(cur.Ranges) != 3 || cur.Ranges[1].Cluster != "c3" {
		t.Fatalf("after split: %+v", cur)
	}
	if before.Version != 1 || len(before.Ranges) != 2 {
		t.Errorf("the old snapshot changed: %+v", before)
	}

	// A failing fn and an invalid result change nothing.
	boom := errors.New("boom")
	if err := ft.Update(context.Background(), func(*wire.TableInfo) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("fn error: got %v", err)
	}
	err = ft.Update(context.Background(), func(tab *wire.TableInfo) error {
		tab.Ranges = tab.Ranges[1:] // leaves a gap at the bottom of the ring
		return nil
	})
	if !errors.Is(err, ErrInvalidTable) || !strings.Contains(err.Error(), "partition") {
		t.Errorf("gap: got %v, want ErrInvalidTable about the partition", err)
	}
	if v := ft.Current().Version; v != 2 {
		t.Errorf("version %d after failed updates, want 2", v)
	}

	// Reopen: the file wins over a (different) bootstrap.
	ft2, err := OpenFileTable(path, BootstrapTable(twoClusters()[:1]))
	if err != nil {
		t.Fatal(err)
	}
	got := ft2.Current()
	if got.Version != 2 || len(got.Ranges) != 3 || got.Ranges[2].Range.End != 0 {
		t.Errorf("reloaded %+v", got)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("directory holds %d files, want only the table (no temp files)", len(ents))
	}
}

func TestFileTableConcurrentUpdates(t *testing.T) {
	ft, err := OpenFileTable(filepath.Join(t.TempDir(), "table.json"), BootstrapTable(twoClusters()))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := ft.Update(context.Background(), func(*wire.TableInfo) error { return nil }); err != nil {
				t.Error(err)
			}
			_ = ft.Current().Version
		})
	}
	wg.Wait()
	if v := ft.Current().Version; v != 9 {
		t.Errorf("version %d after 8 updates, want 9", v)
	}
}

func TestOpenFileTableRejects(t *testing.T) {
	valid := `{"version":1,"ranges":[{"range":{"start":0,"end":18446744073709551616},"cluster":"c1"}],"clusters":[{"id":"c1","members":[{"id":1,"addr":"h:1"}]}]}`
	for _, tc := range []struct{ name, body, want string }{
		{"empty", "", "empty"},
		{"garbage", "{not json", "offset"},
		{"truncated", valid[:40], "offset"},
		{"trailing", valid + "{}", "trailing"},
		{"unknown field", strings.Replace(valid, `"version":1`, `"version":1,"verison":2`, 1), "verison"},
		{"version 0", strings.Replace(valid, `"version":1`, `"version":0`, 1), "version is 0"},
		{"gap", strings.Replace(valid, `"start":0`, `"start":5`, 1), "partition"},
		{"unknown owner", strings.Replace(valid, `"cluster":"c1"`, `"cluster":"c9"`, 1), `unknown cluster "c9"`},
		{"no members", strings.Replace(valid, `[{"id":1,"addr":"h:1"}]`, `[]`, 1), "no members"},
		{"bad end", strings.Replace(valid, `18446744073709551616`, `18446744073709551617`, 1), "range end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "table.json")
			if err := os.WriteFile(path, []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := OpenFileTable(path, BootstrapTable(twoClusters()))
			if err == nil {
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q should name %s and say %q", err, path, tc.want)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "table.json")
		os.WriteFile(path, []byte(valid), 0o644)
		if _, err := OpenFileTable(path, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("missing without bootstrap", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "table.json")
		if _, err := OpenFileTable(path, nil); err == nil || !strings.Contains(err.Error(), "no bootstrap") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("invalid bootstrap", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "table.json")
		b := BootstrapTable(twoClusters())
		b.Ranges = b.Ranges[:1]
		if _, err := OpenFileTable(path, b); !errors.Is(err, ErrInvalidTable) {
			t.Errorf("got %v", err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("an invalid bootstrap was written")
		}
	})
}

func TestValidateTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*wire.TableInfo)
		want string
	}{
		{"ok", func(*wire.TableInfo) {}, ""},
		{"unused cluster ok", func(tab *wire.TableInfo) {
			tab.Clusters = append(tab.Clusters, wire.ClusterInfo{ID: "c3", Members: members("h:3")})
		}, ""},
		{"unsorted", func(tab *wire.TableInfo) { tab.Ranges[0], tab.Ranges[1] = tab.Ranges[1], tab.Ranges[0] }, "not sorted"},
		{"overlap", func(tab *wire.TableInfo) { tab.Ranges[1].Range.Start-- }, "partition"},
		{"dup cluster", func(tab *wire.TableInfo) { tab.Clusters[1].ID = "c1" }, "twice"},
		{"empty id", func(tab *wire.TableInfo) { tab.Clusters[0].ID = "" }, "empty id"},
		{"member id 0", func(tab *wire.TableInfo) { tab.Clusters[0].Members[0].ID = 0 }, "id 0"},
		{"dup addr", func(tab *wire.TableInfo) { tab.Clusters[0].Members[1].Addr = tab.Clusters[0].Members[0].Addr }, "twice"},
		{"no addr", func(tab *wire.TableInfo) { tab.Clusters[0].Members[1].Addr = "" }, "no address"},
		{"no ranges", func(tab *wire.TableInfo) { tab.Ranges = nil }, "partition"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := BootstrapTable(twoClusters())
			tc.edit(tab)
			err := ValidateTable(tab)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidTable) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrInvalidTable saying %q", err, tc.want)
			}
		})
	}
}

func TestOwner(t *testing.T) {
	cs := twoClusters()
	cs = append(cs, wire.ClusterInfo{ID: "c3", Members: members("h:3")})
	tab := BootstrapTable(cs)
	rs := ring.Even(3)
	for _, tc := range []struct {
		p    uint64
		want string
	}{
		{0, "c1"},
		{rs[0].End - 1, "c1"},
		{rs[1].Start, "c2"},
		{rs[1].End - 1, "c2"},
		{rs[2].Start, "c3"},
		{^uint64(0), "c3"}, // top of the ring
	} {
		o, ok := Owner(tab, tc.p)
		if !ok || o.Cluster != tc.want {
			t.Errorf("Owner(%#x) = %+v, %v; want %s", tc.p, o, ok, tc.want)
		}
	}
	if o, ok := Owner(BootstrapTable(cs[:1]), ^uint64(0)); !ok || o.Cluster != "c1" {
		t.Errorf("single cluster top of ring: %+v %v", o, ok)
	}
	if _, ok := Owner(&wire.TableInfo{}, 5); ok {
		t.Errorf("empty table owns a point")
	}
	if c, ok := Cluster(tab, "c2"); !ok || len(c.Members) != 3 {
		t.Errorf("Cluster(c2) = %+v %v", c, ok)
	}
	if _, ok := Cluster(tab, "nope"); ok {
		t.Errorf("found an unknown cluster")
	}
	if r, ok := ClusterRange(tab, "c3"); !ok || r != rs[2] {
		t.Errorf("ClusterRange(c3) = %v %v", r, ok)
	}
}
