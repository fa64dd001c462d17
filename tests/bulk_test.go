package tests

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
)

// bulkFiles is a set of random files written by writeBulk.
type bulkFiles struct {
	path func(i int) string
	sums [][32]byte
}

// writeBulk writes n random files of size bytes to path(i) with 4
// concurrent writers, fails t on any error, and logs the time taken.
func writeBulk(t *testing.T, c *client.Client, n, size int, path func(int) string) *bulkFiles {
	t.Helper()
	const writers = 4
	b := &bulkFiles{path: path, sums: make([][32]byte, n)}
	next := make(chan int)
	go func() {
		for i := range n {
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
				b.sums[i] = sha256.Sum256(data)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				_, err := c.Put(ctx, path(i), data, client.Parents())
				cancel()
				if err != nil {
					errs <- fmt.Errorf("put %s: %w", path(i), err)
					for range next { // let the feeder finish
					}
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
	t.Logf("wrote %d MiB in %v", n*size>>20, time.Since(start).Round(time.Second))
	return b
}

// verify reads every file back and compares its SHA-256.
func (b *bulkFiles) verify(t *testing.T, c *client.Client, when string) {
	t.Helper()
	for i, sum := range b.sums {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		got, err := c.Get(ctx, b.path(i))
		cancel()
		if err != nil || sha256.Sum256(got) != sum {
			t.Fatalf("%s %s: %d bytes, %v", b.path(i), when, len(got), err)
		}
	}
	t.Logf("all %d files read back %s", len(b.sums), when)
}
