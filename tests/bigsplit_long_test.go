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
)

// TestSplitOneGiB is issue 5's large split: a cluster holding 1 GiB splits
// (the learners catch up by snapshot), and every file reads back from its
// new owner.
func TestSplitOneGiB(t *testing.T) {
	d := startUp(t, filepath.Join(t.TempDir(), "data"), "", "--clusters", "1")
	defer d.stop(t)
	c := d.dial(t)
	ctx := context.Background()

	const files, size, writers = 1024, 1 << 20, 4
	sums := make([][32]byte, files)
	path := func(i int) string { return fmt.Sprintf("/big-%d/f%d", i%64, i) }
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
			data := make([]byte, size)
			for i := range next {
				rand.Read(data)
				sums[i] = sha256.Sum256(data)
				wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				_, err := c.Put(wctx, path(i), data, client.Parents())
				cancel()
				if err != nil {
					errs <- fmt.Errorf("put %s: %w", path(i), err)
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
	t.Logf("wrote 1 GiB in %v", time.Since(start).Round(time.Second))

	splitStart := time.Now()
	out := d.split(t, "c1")
	t.Logf("split of a 1 GiB cluster took %v:\n%s", time.Since(splitStart).Round(time.Second), out)
	st := d.status(t)
	if len(st.Clusters) != 2 {
		t.Fatalf("after the split: %d clusters", len(st.Clusters))
	}
	for i := range files {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		got, err := c.Get(rctx, path(i))
		cancel()
		if err != nil || sha256.Sum256(got) != sums[i] {
			t.Fatalf("%s after the split: %d bytes, %v", path(i), len(got), err)
		}
	}
	t.Logf("all %d files read back from their owners", files)
}
