//go:build long

package tests

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/up"
)

// TestAutoSplit is issue 5's auto-split acceptance: `cleave up
// --auto-split-bytes 64MiB` on one cluster, 300 MiB written across many
// roots, ends with more clusters than it started with, and every file
// reads back.
func TestAutoSplit(t *testing.T) {
	d := startUp(t, filepath.Join(t.TempDir(), "data"), "",
		"--clusters", "1", "--auto-split-bytes", "64MiB", "--auto-split-window", "5s")
	defer d.stop(t)
	c := d.dial(t)
	ctx := context.Background()

	const files, size, writers = 300, 1 << 20, 4
	sums := make([][32]byte, files)
	next := make(chan int)
	go func() {
		for i := range files {
			next <- i
		}
		close(next)
	}()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := time.Now()
	for range writers {
		wg.Go(func() {
			for i := range next {
				data := make([]byte, size)
				rand.Read(data)
				sums[i] = sha256.Sum256(data)
				wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				_, err := c.Put(wctx, autoPath(i), data, client.Parents())
				cancel()
				if err != nil {
					errs <- fmt.Errorf("put %s: %w", autoPath(i), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("wrote %d MiB in %v", files*size>>20, time.Since(start).Round(time.Second))

	// Wait for the splits to finish: more than one cluster, none splitting.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st := d.status(t)
		busy := false
		for _, sp := range st.Splits {
			busy = busy || !up.Done(sp.Phase)
		}
		if len(st.Clusters) > 1 && !busy {
			var ids []string
			for _, cl := range st.Clusters {
				ids = append(ids, fmt.Sprintf("%s %v", cl.ID, cl.Range))
			}
			t.Logf("after %v: %d clusters: %v", time.Since(start).Round(time.Second), len(st.Clusters), ids)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d cluster(s), splits %+v, 5 minutes after the writes", len(st.Clusters), st.Splits)
		}
		time.Sleep(time.Second)
	}
	for i := range files {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		got, err := c.Get(rctx, autoPath(i))
		cancel()
		if err != nil || len(got) != size || sha256.Sum256(got) != sums[i] {
			t.Fatalf("%s after the splits: %d bytes, %v", autoPath(i), len(got), err)
		}
	}
	t.Logf("all %d files read back", files)
}

func autoPath(i int) string { return fmt.Sprintf("/auto-%d/f%d", i%60, i) }
