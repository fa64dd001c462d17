package loadgen

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"

	"github.com/cleavefs/cleave/client"
)

// Store is what the workloads drive: one key-value or file system under
// test. Cleave (NewCleaveStore) and etcd (NewEtcdStore) implement it, each
// in its own file; the engine knows nothing else of either. It must be safe
// for concurrent use. Data passed to Put is not retained after Put returns.
type Store interface {
	// Put writes data as the whole content of path (durably: it returns
	// once the system acknowledged the write).
	Put(ctx context.Context, path string, data []byte) error
	// Get returns the content of path, linearizably unless the run asked
	// for stale reads.
	Get(ctx context.Context, path string) ([]byte, error)
	// List returns the number of entries directly under path.
	List(ctx context.Context, path string) (int, error)
	// Stat checks that path exists.
	Stat(ctx context.Context, path string) error
	// MkdirAll creates directory path and its parents, if the system has
	// directories.
	MkdirAll(ctx context.Context, path string) error
}

// Appender is what the append workload needs. It is checked at run time:
// not every Store has it.
type Appender interface {
	Append(ctx context.Context, path string, data []byte) error
}

// Streamer is what the stream workload needs: uploads from an io.Reader
// and downloads to an io.Writer with bounded memory. Checked at run time.
type Streamer interface {
	Upload(ctx context.Context, path string, r io.Reader) error
	Download(ctx context.Context, path string, w io.Writer) error
}

// ErrorCoder is implemented by a Store whose errors are classified by its
// own codes; the code names a failure in the Result's errors_by_code. A
// Store without it has its errors classified by cleave's wire codes.
type ErrorCoder interface {
	ErrorCode(err error) string
}

// errorCode returns the name a failure is counted under.
func errorCode(store Store, err error) string {
	if ec, ok := store.(ErrorCoder); ok {
		return ec.ErrorCode(err)
	}
	return client.CodeOf(err).String()
}

// supports returns nil if store offers what workload w needs, else an
// error matching ErrNotSupported that names the missing call.
func supports(store Store, w Workload) error {
	switch w {
	case Append:
		if _, ok := store.(Appender); !ok {
			return fmt.Errorf("workload append: %w (this target has no appends)", ErrNotSupported)
		}
	case Stream:
		if _, ok := store.(Streamer); !ok {
			return fmt.Errorf("workload stream: %w (this target has no streaming uploads and downloads)", ErrNotSupported)
		}
	}
	return ycsbSupports(store, w)
}

// worker is one client's state: its randomness and data buffer. Owned by
// one goroutine.
type worker struct {
	cfg   *Config
	store Store
	names Namer
	r     *rand.Rand
	write *Keys      // files to write: all of them
	read  *Keys      // files to read: the preloaded ones
	roots *Keys      // root directories to list
	seq   *insertSeq // YCSB inserts; nil for other workloads
	buf   []byte     // random data: the largest size plus slack, so slices at random offsets differ

	uploaded int64 // stream: the file this worker uploaded last and reads next, or -1

	busy  atomic.Bool  // inside a Store call (read by Run's watchdog)
	began atomic.Int64 // UnixNano of the current operation's start
}

// bufSlack is how much longer than the largest size a worker's data buffer
// is: writes take Size bytes at a random offset within it.
const bufSlack = 64 << 10

// newWorker returns worker id of a run. seq numbers YCSB inserts (nil for
// other workloads and for setup); reads with the latest distribution
// follow it.
func newWorker(cfg *Config, store Store, id int, seq *insertSeq) *worker {
	r := rand.New(rand.NewPCG(cfg.Seed, uint64(id)+1))
	dist := cfg.dist()
	var readable func() int64
	if seq != nil {
		readable = seq.Readable
	}
	w := &worker{
		cfg: cfg, store: store, r: r, seq: seq,
		names: Namer{Prefix: cfg.Prefix, Roots: cfg.Roots},
		write: NewKeys(dist, cfg.Theta, cfg.Files, r, nil),
		read:  NewKeys(dist, cfg.Theta, max(cfg.preloadCount(), 1), r, readable),
		roots: NewKeys(dist, cfg.Theta, cfg.Roots, r, nil),
	}
	if cfg.pin != nil {
		w.names = pinNamer(cfg.pin, cfg.Prefix, id)
	}
	w.uploaded = -1
	n := cfg.Size.Max + bufSlack
	if cfg.Workload == Stream {
		n = streamBuf // streams cycle through a smaller buffer
	}
	w.buf = make([]byte, n)
	for i := range w.buf {
		w.buf[i] = byte(r.Uint32())
	}
	return w
}

// data returns a slice of Size bytes from a random offset of buf, so
// successive writes carry different contents.
func (w *worker) data() []byte {
	n := w.cfg.Size.Sample(w.r)
	off := w.r.Int64N(int64(len(w.buf)) - n)
	return w.buf[off : off+n]
}

// do performs one operation of the workload and says which one it was and
// how many bytes of file data it moved.
func (w *worker) do(ctx context.Context) (op string, n int64, err error) {
	switch w.cfg.Workload {
	case Put:
		return w.put(ctx)
	case Get:
		return w.get(ctx)
	case Mixed:
		if w.r.Float64() < w.cfg.ReadRatio {
			return w.get(ctx)
		}
		return w.put(ctx)
	case List:
		n, err := w.store.List(ctx, w.names.Root(w.roots.Next()))
		return "list", int64(n), err
	case Stat:
		err := w.store.Stat(ctx, w.names.File(w.read.Next()))
		return "stat", 0, err
	case Stream:
		return w.stream(ctx)
	case Append:
		d := w.data()
		err := w.store.(Appender).Append(ctx, w.names.File(w.write.Next()), d)
		return "append", int64(len(d)), err
	}
	if isYCSB(w.cfg.Workload) {
		return w.ycsb(ctx)
	}
	return string(w.cfg.Workload), 0, ErrNotSupported
}

func (w *worker) put(ctx context.Context) (string, int64, error) {
	d := w.data()
	err := w.store.Put(ctx, w.names.File(w.write.Next()), d)
	return "put", int64(len(d)), err
}

func (w *worker) get(ctx context.Context) (string, int64, error) {
	d, err := w.store.Get(ctx, w.names.File(w.read.Next()))
	return "get", int64(len(d)), err
}

// streamBuf is the size of a stream worker's data buffer: 1 MiB plus a
// prime, so that successive 1 MiB chunks of a stream start at different
// offsets of it and differ (content-addressed chunks must not dedupe).
const streamBuf = 1<<20 + 4093

// stream alternates: upload a file of Size, then download it.
func (w *worker) stream(ctx context.Context) (string, int64, error) {
	s := w.store.(Streamer)
	if w.uploaded < 0 {
		i := w.write.Next()
		n := w.cfg.Size.Sample(w.r)
		r := &cycleReader{buf: w.buf, off: w.r.IntN(len(w.buf)), left: n}
		err := s.Upload(ctx, w.names.File(i), r)
		if err == nil {
			w.uploaded = i
		}
		return "upload", n - r.left, err
	}
	var cw countWriter
	err := s.Download(ctx, w.names.File(w.uploaded), &cw)
	w.uploaded = -1
	return "download", cw.n, err
}

// cycleReader reads left bytes cycling through buf from off.
type cycleReader struct {
	buf  []byte
	off  int
	left int64
}

func (c *cycleReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n := 0
	for n < len(p) {
		k := copy(p[n:], c.buf[c.off:])
		n += k
		c.off = (c.off + k) % len(c.buf)
	}
	c.left -= int64(n)
	return n, nil
}

// countWriter counts and discards what is written to it.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
