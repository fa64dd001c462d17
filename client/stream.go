package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	pathpkg "path"
	"sync"

	"github.com/cleavefs/cleave/wire"
)

// Streaming parameters: files travel in chunks of ChunkSize,
// with at most window requests in flight per transfer, so a transfer holds
// about (window+1) × ChunkSize of memory whatever the file's size.
const (
	// ChunkSize is the size of one uploaded chunk and of one ranged read.
	ChunkSize = 1 << 20
	window    = 4
)

// chunkName is the content address the servers give a chunk.
func chunkName(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Upload creates or replaces the file path with everything read from r and
// returns its metadata. Up to ChunkSize bytes go in one PUT; more go as
// content-addressed chunks (several in flight at once) and then one COMMIT
// that makes the whole file visible atomically: a reader sees the old file
// or the new one, never a mix, and an upload that fails or is cancelled
// leaves nothing visible (its chunks are collected by the cluster). Memory
// is bounded by a few chunks. Before streaming, it checks that the parent
// exists (unless Parents) and IfAbsent/IfVersion, so a doomed upload fails
// without sending its data. Options: Parents, IfAbsent, IfVersion (checked
// again at commit).
func (c *Client) Upload(ctx context.Context, path string, r io.Reader, opts ...PutOption) (*Stat, error) {
	first := make([]byte, ChunkSize)
	n, err := io.ReadFull(r, first)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return c.Put(ctx, path, first[:n], opts...)
	case err != nil:
		return nil, readErr(path, err)
	}
	if err := c.checkBeforeStream(ctx, path, opts); err != nil {
		return nil, err
	}
	names, size, err := c.uploadChunks(ctx, path, r, first)
	if err != nil {
		return nil, err
	}
	req := &wire.Request{Op: wire.OpCommit, Path: path, Chunks: names, Size: size}
	return c.statCall(ctx, "put", path, req, opts)
}

// checkBeforeStream fails an upload that the final COMMIT would refuse
// before any chunk is sent: a missing parent directory (without Parents),
// an existing path with IfAbsent, another version with IfVersion. It costs
// one or two stats; the COMMIT still decides (the tree may change in
// between), so this only saves streaming a doomed file. With stale reads a
// stat may be behind, so it checks nothing.
func (c *Client) checkBeforeStream(ctx context.Context, p string, opts []PutOption) error {
	if c.cfg.stale {
		return nil
	}
	var req wire.Request
	applyAll(&req, opts)
	if dir := pathpkg.Dir(p); req.Flags&wire.FlagParents == 0 && dir != "/" && dir != "." {
		st, err := c.Stat(ctx, dir)
		switch {
		case errors.Is(err, ErrNotFound):
			return &Error{Code: CodeNotFound, Op: "put", Path: p, Message: fmt.Sprintf("%q: parent directory %q does not exist (nothing was sent)", p, dir)}
		case err != nil:
			return err
		case !st.IsDir():
			return &Error{Code: CodeNotDir, Op: "put", Path: p, Message: fmt.Sprintf("%q: parent %q is not a directory (nothing was sent)", p, dir)}
		}
	}
	if req.Flags&wire.FlagIfAbsent == 0 && req.IfVersion == 0 {
		return nil
	}
	st, err := c.Stat(ctx, p)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil // IfAbsent holds; IfVersion is the COMMIT's to refuse
	case err != nil:
		return err
	case req.Flags&wire.FlagIfAbsent != 0:
		return &Error{Code: CodeConflict, Op: "put", Path: p, Message: fmt.Sprintf("%q already exists (if-absent; nothing was sent)", p)}
	case req.IfVersion != 0 && st.Version != req.IfVersion:
		return &Error{Code: CodeConflict, Op: "put", Path: p, Message: fmt.Sprintf("%q is at version %d, not %d (if-version; nothing was sent)", p, st.Version, req.IfVersion)}
	}
	return nil
}

// uploadChunks sends first (one full chunk) and then the rest of r as
// chunks, at most window of them in flight, and returns their names in
// order and the total size. The first failure cancels the rest.
func (c *Client) uploadChunks(ctx context.Context, path string, r io.Reader, first []byte) ([]string, int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u := &chunkUpload{c: c, ctx: ctx, cancel: cancel, path: path}
	// Buffers: first, plus window more made on first use. free holds room
	// for all of them, so returning one never blocks.
	u.free = make(chan []byte, window+1)
	for range window {
		u.free <- nil // allocated on first use
	}
	var (
		names []string
		size  int64
	)
	buf, n := first, len(first)
	for i := 0; ; i++ {
		if i > 0 {
			var more bool
			if buf, n, more = u.next(r); !more {
				break
			}
		}
		chunk := buf[:n]
		name := chunkName(chunk)
		names = append(names, name)
		size += int64(n)
		u.wg.Add(1)
		go u.send(i, chunk, name)
		if n < ChunkSize {
			break
		}
	}
	u.wg.Wait()
	if u.err == nil && ctx.Err() != nil {
		u.err = wrapError("put", path, ctx.Err())
	}
	return names, size, u.err
}

// chunkUpload is the state one Upload's chunk senders share.
type chunkUpload struct {
	c      *Client
	ctx    context.Context
	cancel context.CancelFunc
	path   string
	free   chan []byte // buffers ready for the next chunk; nil means not made yet
	wg     sync.WaitGroup

	mu  sync.Mutex
	err error // the first failure
}

// fail records err if it is the first failure and cancels the upload.
func (u *chunkUpload) fail(err error) {
	u.mu.Lock()
	if u.err == nil {
		u.err = err
		u.cancel()
	}
	u.mu.Unlock()
}

// next waits for a free buffer and fills it from r. more is false when no
// further chunk is to be sent: r is at its end, r failed, or the upload
// was cancelled.
func (u *chunkUpload) next(r io.Reader) (buf []byte, n int, more bool) {
	select {
	case buf = <-u.free:
	case <-u.ctx.Done():
	}
	if u.ctx.Err() != nil {
		return nil, 0, false
	}
	if buf == nil {
		buf = make([]byte, ChunkSize)
	}
	n, err := io.ReadFull(r, buf)
	if err == io.EOF {
		return nil, 0, false
	}
	if err != nil && err != io.ErrUnexpectedEOF {
		u.fail(readErr(u.path, err))
		return nil, 0, false
	}
	return buf, n, true
}

// send stores chunk i, named name, and returns its buffer to free.
func (u *chunkUpload) send(i int, buf []byte, name string) {
	defer u.wg.Done()
	// A chunk is idempotent (stored under its content hash), so it
	// carries no session: retries and out-of-order arrival are harmless.
	resp, err := u.c.callNoSession(u.ctx, "put", &wire.Request{Op: wire.OpChunk, Path: u.path, Data: buf})
	switch {
	case err != nil:
		u.fail(err)
	case resp.Chunk != "" && resp.Chunk != name:
		u.fail(&Error{Code: CodeInternal, Op: "put", Path: u.path,
			Message: fmt.Sprintf("put %s: chunk %d stored as %s, but its SHA-256 is %s", u.path, i, resp.Chunk, name)})
	}
	u.free <- buf[:cap(buf)]
}

// readErr is the error of an upload whose reader failed: the reader's own
// *Error if it is one (a streamed copy's source), else INTERNAL.
func readErr(path string, err error) error {
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	return &Error{Code: CodeInternal, Op: "put", Path: path, Message: fmt.Sprintf("put %s: read: %v", path, err), err: err}
}

// callNoSession is call for an idempotent mutation that needs no
// exactly-once bookkeeping.
func (c *Client) callNoSession(ctx context.Context, op string, req *wire.Request) (*wire.Response, error) {
	req.Session = 0
	return c.callWith(ctx, op, req, false)
}

// versionChanged is the error of a read that saw two versions of a file.
func versionChanged(op, path string, want, got uint64) error {
	return &Error{Code: CodeConflict, Op: op, Path: path,
		Message: fmt.Sprintf("%s %s: the file changed while it was read (version %d, then %d)", op, path, want, got)}
}

// rangeResult is one ranged read of a download.
type rangeResult struct {
	data []byte
	st   *Stat
	err  error
}

// Download writes the contents of the file path to w and returns the
// metadata of the version written. It reads ranges of ChunkSize, several in
// flight, in order, so memory stays bounded whatever the size. All ranges
// must come from one version: if the file changes during the download, it
// fails with ErrConflict (w then holds a prefix of the old version; write to
// a temporary file and rename if that matters).
func (c *Client) Download(ctx context.Context, path string, w io.Writer) (*Stat, error) {
	data, st, err := c.GetRange(ctx, path, 0, ChunkSize)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, &Error{Code: CodeIsDir, Op: "get", Path: path, Message: path + ": is a directory"}
	}
	if _, err := w.Write(data); err != nil {
		return nil, writeErr(path, err)
	}
	off := int64(len(data))
	if off >= st.Size {
		return st, nil
	}
	if len(data) == 0 {
		return nil, &Error{Code: CodeInternal, Op: "get", Path: path, Message: fmt.Sprintf("get %s: empty range at 0 of a %d-byte file", path, st.Size)}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	step := int64(len(data))
	var pending []chan rangeResult
	next := off
	issue := func() {
		ch := make(chan rangeResult, 1)
		pending = append(pending, ch)
		at := next
		next += step
		go func() {
			d, s, err := c.GetRange(ctx, path, at, step)
			ch <- rangeResult{d, s, err}
		}()
	}
	for next < st.Size && len(pending) < window {
		issue()
	}
	for len(pending) > 0 {
		res := <-pending[0]
		pending = pending[1:]
		if res.err != nil {
			return nil, res.err
		}
		if res.st.Version != st.Version {
			return nil, versionChanged("get", path, st.Version, res.st.Version)
		}
		if want := min(step, st.Size-off); int64(len(res.data)) != want {
			return nil, &Error{Code: CodeInternal, Op: "get", Path: path,
				Message: fmt.Sprintf("get %s: range at %d returned %d bytes, want %d", path, off, len(res.data), want)}
		}
		if _, err := w.Write(res.data); err != nil {
			return nil, writeErr(path, err)
		}
		off += int64(len(res.data))
		if next < st.Size {
			issue()
		}
	}
	return st, nil
}

func writeErr(path string, err error) error {
	return &Error{Code: CodeInternal, Op: "get", Path: path, Message: fmt.Sprintf("get %s: write: %v", path, err), err: err}
}

// copyAcross copies src to dst in another root by streaming.
func (c *Client) copyAcross(ctx context.Context, src, dst string, opts []PutOption) (*Stat, error) {
	st, err := c.Stat(ctx, src)
	if err != nil {
		return nil, relabel(err, "cp")
	}
	if st.IsDir() {
		return nil, &Error{Code: CodeIsDir, Op: "cp", Path: src, Message: "cp " + src + ": is a directory (copy files one by one)"}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	dl := make(chan error, 1)
	go func() {
		_, err := c.Download(ctx, src, pw)
		pw.CloseWithError(err)
		dl <- err
	}()
	out, uerr := c.Upload(ctx, dst, pr, opts...)
	if uerr != nil {
		cancel() // stop the download; its error is then ours
	}
	pr.CloseWithError(io.ErrClosedPipe)
	derr := <-dl
	switch {
	case uerr == nil:
		return out, nil
	case derr != nil && !errors.Is(derr, context.Canceled):
		return nil, relabel(derr, "cp") // the source failed (NOT_FOUND, CONFLICT, ...)
	}
	return nil, relabel(uerr, "cp")
}

// relabel names op as the operation of a *Error from a sub-operation.
func relabel(err error, op string) error {
	var ce *Error
	if errors.As(err, &ce) {
		cp := *ce
		cp.Op = op
		return &cp
	}
	return err
}

// Create returns a writer for the file path: what is written streams to
// the servers as Upload sends it, and Close makes the whole file visible
// atomically and returns the upload's error (nothing is visible before, or
// after a failure). opts are Upload's. Writes fail once the upload has
// failed (for example when the parent directory does not exist). The
// writer is for one goroutine; Close must be called to release it.
func (c *Client) Create(ctx context.Context, path string, opts ...PutOption) (io.WriteCloser, error) {
	pr, pw := io.Pipe()
	w := &fileWriter{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		_, w.err = c.Upload(ctx, path, pr, opts...)
		pr.CloseWithError(uploadEnded(w.err))
	}()
	return w, nil
}

// uploadEnded is what a Write after the upload ended answers.
func uploadEnded(err error) error {
	if err != nil {
		return err
	}
	return errors.New("cleave: write after the upload ended")
}

// fileWriter is Create's writer.
type fileWriter struct {
	pw   *io.PipeWriter
	done chan struct{}
	err  error // Upload's result, set before done closes
}

func (w *fileWriter) Write(p []byte) (int, error) { return w.pw.Write(p) }

// Close ends the contents and waits for the upload's result.
func (w *fileWriter) Close() error {
	w.pw.Close()
	<-w.done
	return w.err
}
