package gossip

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// startKeyed starts a member named node/id holding keys (first primary).
func startKeyed(t *testing.T, id string, keys [][]byte, seeds []string) *Pool {
	t.Helper()
	p, err := Start(Config{
		Bind: "127.0.0.1:0", Seeds: seeds, Keys: keys, Refresh: 50 * time.Millisecond,
		Meta: func() Meta { return Meta{Role: "node", ID: id, Cluster: "c1", Addr: "127.0.0.1:1"} },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func sees(p *Pool, name string) bool { _, ok := find(p.Members(), name); return ok }

// waitSees waits until p sees name alive.
func waitSees(t *testing.T, p *Pool, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitFor(ctx, func(ms []Member) bool { m, ok := find(ms, name); return ok && m.Alive }); err != nil {
		t.Fatalf("%s never saw %s: %+v", p.name, name, p.Members())
	}
}

// neverSees checks that p does not see name for a few gossip rounds.
func neverSees(t *testing.T, p *Pool, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := p.WaitFor(ctx, func([]Member) bool { return sees(p, name) }); err == nil {
		t.Fatalf("%s sees %s, which does not hold the pool's key: %+v", p.name, name, p.Members())
	}
}

func TestEncryptedPoolRefusesMembersWithoutTheKey(t *testing.T) {
	k1, other := key(1), key(2)
	a := startKeyed(t, "1", [][]byte{k1}, nil)
	b := startKeyed(t, "2", [][]byte{k1}, []string{a.Addr()})
	waitSees(t, a, "node/2")

	// A plaintext member and one with another key try to join through a;
	// neither is seen by a or b, and neither sees them.
	plain := startKeyed(t, "plain", nil, []string{a.Addr()})
	wrong := startKeyed(t, "wrong", [][]byte{other}, []string{a.Addr(), b.Addr()})
	neverSees(t, a, "node/plain")
	neverSees(t, b, "node/wrong")
	if sees(plain, "node/1") || sees(wrong, "node/1") {
		t.Fatalf("a stranger sees the pool: plain %+v, wrong %+v", plain.Members(), wrong.Members())
	}
}

func TestLiveKeyRotation(t *testing.T) {
	k1, k2 := key(1), key(2)
	a := startKeyed(t, "1", [][]byte{k1}, nil)
	b := startKeyed(t, "2", [][]byte{k1}, []string{a.Addr()})
	waitSees(t, a, "node/2")
	// Rotation: install k2 everywhere, make it primary everywhere, remove k1.
	for _, step := range []func(*Pool) error{
		func(p *Pool) error { return p.InstallKey(k2) },
		func(p *Pool) error { return p.UseKey(k2) },
		func(p *Pool) error { return p.RemoveKey(k1) },
	} {
		for _, p := range []*Pool{a, b} {
			if err := step(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	fresh := startKeyed(t, "3", [][]byte{k2}, []string{a.Addr()})
	waitSees(t, b, "node/3")
	waitSees(t, fresh, "node/1")
	old := startKeyed(t, "old", [][]byte{k1}, []string{a.Addr()})
	neverSees(t, a, "node/old")
	if sees(old, "node/1") {
		t.Fatalf("a member holding only the removed key sees the pool: %+v", old.Members())
	}
	if err := a.RemoveKey(k2); err == nil {
		t.Fatal("removing the primary key succeeded")
	}
}

func TestKeyErrors(t *testing.T) {
	meta := func() Meta { return Meta{Role: "node", ID: "1"} }
	_, err := Start(Config{Bind: "127.0.0.1:0", Meta: meta, Keys: [][]byte{key(1), []byte("short")}})
	if err == nil || !strings.Contains(err.Error(), "key 2") {
		t.Fatalf("a 5-byte key: %v", err)
	}
	p := startKeyed(t, "plain", nil, nil)
	if err := p.InstallKey(key(1)); err == nil || !strings.Contains(err.Error(), "without keys") {
		t.Fatalf("InstallKey on a plaintext pool: %v", err)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gossip.key")
	if err := EnsureKeyFile(path); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if err := EnsureKeyFile(path); err != nil { // kept, not replaced
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(first, again) {
		t.Fatal("EnsureKeyFile replaced an existing key")
	}
	keys, err := ReadKeyFile(path)
	if err != nil || len(keys) != 1 || len(keys[0]) != 32 {
		t.Fatalf("ReadKeyFile: %d keys, %v", len(keys), err)
	}

	for _, c := range []struct{ name, text, want string }{
		{"empty", "# only a comment\n\n", "no key"},
		{"not base64", "%%%\n", "line 1"},
		{"bad length", "\n" + "AAAA\n", "line 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
			os.WriteFile(p, []byte(c.text), 0o600)
			_, err := ReadKeyFile(p)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("got %v, want an error naming %s and %q", err, p, c.want)
			}
		})
	}
	if _, err := ReadKeyFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing file: %v", err)
	}
}
