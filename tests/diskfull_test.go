package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/testvol"
	"github.com/cleavefs/cleave/wire"
)

// A deployment on a small volume fills up: writes are refused NO_SPACE
// promptly (never TIMEOUT), every acknowledged file still reads back, a
// delete works, the nodes say no_space, and once space is freed writes
// resume without restarting anything.
func TestDiskFull(t *testing.T) {
	skipInShortMode(t, "a cleave up on its own tmpfs")
	vol := testvol.Tmpfs(t, 320<<20)
	filler := filepath.Join(vol, "filler")
	if err := os.WriteFile(filler, make([]byte, 64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startUpEnv(t, filepath.Join(vol, "data"), "", []string{"CLEAVE_MIN_FREE_SPACE=64MiB"}, "--clusters", "1")
	t.Cleanup(func() { d.stop(t) })
	c := d.dial(t)

	want := map[string][]byte{}
	var refused error
	var took time.Duration
	for i := 0; i < 400 && refused == nil; i++ {
		p := fmt.Sprintf("/full/f%03d", i)
		v := bytes.Repeat([]byte{byte(i)}, 512<<10)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		start := time.Now()
		_, err := c.Put(ctx, p, v, client.Parents())
		took = time.Since(start)
		cancel()
		switch {
		case err == nil:
			want[p] = v
		case errors.Is(err, client.ErrNoSpace):
			refused = err
		default:
			t.Fatalf("put %s after %d acknowledged files: %v (want OK or NO_SPACE)", p, len(want), err)
		}
	}
	if refused == nil {
		t.Fatalf("%d puts of 512 KiB were all acknowledged on a 320 MiB volume", len(want))
	}
	t.Logf("%d files acknowledged, then refused in %v: %v", len(want), took, refused)
	if took > 10*time.Second {
		t.Errorf("NO_SPACE took %v; want it promptly", took)
	}
	requireFiles(t, c, want, "once the disk is full")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Remove(ctx, "/full/f000"); err != nil {
		t.Fatalf("remove on a full disk: %v", err)
	}
	delete(want, "/full/f000")
	requireNoSpaceCondition(t, d)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually.Holds(t, 20*time.Second, "a put once space is freed", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.Put(ctx, "/full/after", []byte("room again"), client.Parents())
		return err
	})
	want["/full/after"] = []byte("room again")
	requireFiles(t, c, want, "after space was freed")
}

// requireNoSpaceCondition fails t unless the leader's status reports the
// no_space condition with its free bytes and watermark.
func requireNoSpaceCondition(t *testing.T, d *deployment) {
	t.Helper()
	st := d.status(t)
	for _, cl := range st.Clusters {
		for _, n := range cl.Nodes {
			if n.Addr == cl.Leader {
				// Pebble may free space (a compaction, an old WAL) between
				// the refusal and this status: the condition must agree with
				// the figures it is reported with.
				below := n.FreeBytes < n.MinFreeBytes
				if slices.Contains(n.Conditions, wire.ConditionNoSpace) != below || n.MinFreeBytes != 64<<20 || n.FreeBytes == 0 {
					t.Errorf("leader %d of %s: conditions %v, %d bytes free, watermark %d; want no_space exactly when below a 64 MiB watermark", n.ID, cl.ID, n.Conditions, n.FreeBytes, n.MinFreeBytes)
				}
				return
			}
		}
	}
	t.Errorf("no leader in status %+v", st)
}
