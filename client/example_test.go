package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"strings"
	"time"

	"github.com/cleavefs/cleave/client"
)

// routers are the addresses of the deployment the examples talk to: here
// the real in-process one TestMain starts; yours are like "127.0.0.1:7400".
func routers() []string { return []string{shared.Addr} }

// dialExample connects to routers() or stops the example.
func dialExample(ctx context.Context) *client.Client {
	c, err := client.Dial(ctx, routers(), client.WithClientName("example"), client.WithTimeout(5*time.Second))
	if err != nil {
		log.Fatal(err) // e.g. "UNAVAILABLE: no router reachable: ..."
	}
	return c
}

// Put and Get a small file; a missing path answers ErrNotFound.
func Example() {
	ctx := context.Background()
	c := dialExample(ctx)
	defer c.Close()

	st, err := c.Put(ctx, "/example-photos/2024/a.txt", []byte("hello"), client.Parents())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("size", st.Size)
	data, err := c.Get(ctx, "/example-photos/2024/a.txt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", data)
	if _, err := c.Stat(ctx, "/example-photos/missing"); errors.Is(err, client.ErrNotFound) {
		fmt.Println("missing:", client.CodeOf(err))
	}
	// Output:
	// size 5
	// hello
	// missing: NOT_FOUND
}

// Stream a file of any size in with Create and out with Download.
func ExampleClient_Create() {
	ctx := context.Background()
	c := dialExample(ctx)
	defer c.Close()

	w, err := c.Create(ctx, "/example-stream/big.txt", client.Parents())
	if err != nil {
		log.Fatal(err)
	}
	line := strings.Repeat("x", 99) + "\n"
	for range 30000 { // 3 MB: sent in 1 MiB chunks
		io.WriteString(w, line)
	}
	if err := w.Close(); err != nil { // the file appears whole here
		log.Fatal(err)
	}
	var n countWriter
	st, err := c.Download(ctx, "/example-stream/big.txt", &n)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.Size, int64(n))
	// Output: 3000000 3000000
}

// countWriter counts the bytes written to it.
type countWriter int64

func (w *countWriter) Write(p []byte) (int, error) { *w += countWriter(len(p)); return len(p), nil }

// Compare-and-swap: IfVersion replaces a file only at the version read.
func ExampleIfVersion() {
	ctx := context.Background()
	c := dialExample(ctx)
	defer c.Close()

	st, err := c.Put(ctx, "/example-cas/counter", []byte("1"), client.Parents())
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Put(ctx, "/example-cas/counter", []byte("2"), client.IfVersion(st.Version))
	fmt.Println("first swap:", err)
	_, err = c.Put(ctx, "/example-cas/counter", []byte("3"), client.IfVersion(st.Version))
	fmt.Println("stale swap:", client.CodeOf(err))
	// Output:
	// first swap: <nil>
	// stale swap: CONFLICT
}

// Page through a directory: ListAll fetches pages as the loop goes.
func ExampleClient_ListAll() {
	ctx := context.Background()
	c := dialExample(ctx)
	defer c.Close()

	for _, name := range []string{"b", "a", "c"} {
		if _, err := c.Put(ctx, "/example-pages/"+name, nil, client.Parents()); err != nil {
			log.Fatal(err)
		}
	}
	for st, err := range c.ListAll(ctx, "/example-pages") {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(st.Name)
	}
	// Output:
	// a
	// b
	// c
}

// The store as an io/fs.FS: fs.WalkDir, fs.ReadFile and friends work.
func ExampleClient_FS() {
	ctx := context.Background()
	c := dialExample(ctx)
	defer c.Close()

	for _, p := range []string{"/example-fs/a/1.txt", "/example-fs/b.txt"} {
		if _, err := c.Put(ctx, p, []byte(p), client.Parents()); err != nil {
			log.Fatal(err)
		}
	}
	fsys := c.FS(ctx)
	fs.WalkDir(fsys, "example-fs", func(p string, d fs.DirEntry, err error) error {
		fmt.Println(p, d.IsDir())
		return err
	})
	// Output:
	// example-fs true
	// example-fs/a true
	// example-fs/a/1.txt false
	// example-fs/b.txt false
}

// Open every connection through your own dialer: a proxy, a tunnel, or
// (here) one that counts what it opens.
func ExampleWithDialer() {
	ctx := context.Background()
	var opened int
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		opened++ // Dial and redials are serialised: no lock needed here
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	c, err := client.Dial(ctx, routers(), client.WithDialer(dial), client.WithDialTimeout(time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Stat(ctx, "/"); err != nil {
		log.Fatal(err)
	}
	fmt.Println("connections opened:", opened)
	// Output:
	// connections opened: 1
}
