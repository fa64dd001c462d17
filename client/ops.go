package client

import (
	"context"
	"errors"
	"io/fs"
	"iter"
	"sort"

	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/wire"
)

// IfAbsent makes Put, Upload, Rename and Copy fail with ErrConflict when the
// target already exists.
func IfAbsent() PutOption { return PutOption{flags: wire.FlagIfAbsent} }

// IfVersion makes Put, Upload, Write and Append fail with ErrConflict unless
// the file's current version is v (from Stat.Version): a compare-and-swap.
func IfVersion(v uint64) PutOption { return PutOption{ifVersion: v} }

// Write writes data into the file path at offset, extending it if needed; a
// gap between the old end and offset reads as zeros. The file must exist
// unless Parents or IfAbsent say otherwise on the server's terms; IfVersion
// applies. data travels in one request, so it must fit the frame limit
// (8 MiB by default); the write is atomic and applied exactly once.
func (c *Client) Write(ctx context.Context, path string, offset int64, data []byte, opts ...PutOption) (*Stat, error) {
	if offset < 0 {
		return nil, &Error{Code: CodeInvalid, Op: "write", Path: path, Message: "write " + path + ": negative offset"}
	}
	req := &wire.Request{Op: wire.OpWrite, Path: path, Offset: offset, Data: data}
	return c.statCall(ctx, "write", path, req, opts)
}

// Append appends data to the file path, creating it if absent, atomically
// and exactly once (a retry after a lost response does not append twice).
// data must fit the frame limit.
func (c *Client) Append(ctx context.Context, path string, data []byte, opts ...PutOption) (*Stat, error) {
	req := &wire.Request{Op: wire.OpAppend, Path: path, Data: data}
	return c.statCall(ctx, "append", path, req, opts)
}

// Rename moves src (a file or a whole directory) to dst atomically. Both
// must be in the same root directory: across roots it fails with
// ErrCrossRoot. With IfAbsent an existing dst is ErrConflict; without it an
// existing file dst is replaced, as rename(2) does.
func (c *Client) Rename(ctx context.Context, src, dst string, opts ...PutOption) error {
	if err := checkDst("mv", src, dst); err != nil {
		return err
	}
	req := &wire.Request{Op: wire.OpRename, Path: src, To: dst}
	applyAll(req, opts)
	_, err := c.call(ctx, "mv", req)
	return err
}

// Copy copies the file src to dst and returns dst's metadata. Within one
// root it is one atomic operation on the cluster. Across roots the SDK
// streams the bytes (Download of src into Upload to dst, bounded memory):
// dst still appears atomically, and the copy fails with ErrConflict if src
// changes while it is read. IfAbsent and Parents apply to dst.
func (c *Client) Copy(ctx context.Context, src, dst string, opts ...PutOption) (*Stat, error) {
	if err := checkDst("cp", src, dst); err != nil {
		return nil, err
	}
	if fspath.Root(src) != fspath.Root(dst) {
		return c.copyAcross(ctx, src, dst, opts)
	}
	req := &wire.Request{Op: wire.OpCopy, Path: src, To: dst}
	applyAll(req, opts)
	resp, err := c.call(ctx, "cp", req)
	if err != nil {
		return nil, err
	}
	if resp.Stat == nil {
		return c.Stat(ctx, dst)
	}
	return statOf("cp", dst, resp)
}

func checkDst(op, src, dst string) error {
	if err := fspath.Validate(src); err != nil {
		return &Error{Code: CodeInvalid, Message: err.Error(), Op: op, Path: src, err: err}
	}
	if err := fspath.Validate(dst); err != nil {
		return &Error{Code: CodeInvalid, Message: err.Error(), Op: op, Path: dst, err: err}
	}
	if src == "/" || dst == "/" {
		return &Error{Code: CodeInvalid, Op: op, Path: src, Message: op + " " + src + " " + dst + ": / cannot be moved, copied or replaced"}
	}
	return nil
}

// GetRange reads up to n bytes of the file path from offset off (n <= 0:
// to the end) and returns them with the metadata of the version read. A
// range past the end returns no bytes. n must fit the frame limit; use
// Download or Open for more.
func (c *Client) GetRange(ctx context.Context, path string, off, n int64) ([]byte, *Stat, error) {
	if off < 0 {
		return nil, nil, &Error{Code: CodeInvalid, Op: "get", Path: path, Message: "get " + path + ": negative offset"}
	}
	resp, err := c.call(ctx, "get", &wire.Request{Op: wire.OpGet, Path: path, Offset: off, Length: max(n, 0)})
	if err != nil {
		return nil, nil, err
	}
	st, err := statOf("get", path, resp)
	if err != nil {
		return nil, nil, err
	}
	data := resp.Data
	// A server that ignores ranges answers with the whole file: cut it here.
	if int64(len(data)) == st.Size && st.Size > 0 && (off > 0 || n > 0 && n < st.Size) {
		data = data[min(off, st.Size):]
		if n > 0 && int64(len(data)) > n {
			data = data[:n]
		}
	}
	if data == nil {
		data = []byte{}
	}
	return data, st, nil
}

// defaultPage is the page size List and Walk ask for (the server's default).
const defaultPage = 1000

// ListPage returns one page of the directory path: at most limit entries
// (limit <= 0: the server's default, 1000) after the continuation token
// after ("" for the first page), and the token of the next page, "" when
// this page is the last. The token stays correct while the directory
// changes: entries added or removed before it do not shift later pages.
// A page may hold fewer than limit entries and still have a successor.
func (c *Client) ListPage(ctx context.Context, path string, limit int, after string) ([]Stat, string, error) {
	if limit <= 0 {
		limit = defaultPage
	}
	resp, err := c.call(ctx, "ls", &wire.Request{Op: wire.OpList, Path: path, Limit: uint32(min(limit, 1<<31)), After: after})
	if err != nil {
		return nil, "", err
	}
	out := make([]Stat, len(resp.Entries))
	for i := range resp.Entries {
		out[i] = statFromWire(&resp.Entries[i])
	}
	return out, resp.Next, nil
}

// ListAll yields every entry of the directory path, fetching one page
// (ListPage) at a time as the loop asks for more; an error is yielded
// once, last. Within one directory entries come sorted by name; listing
// "/" yields each root directory's pages in turn (List sorts them all).
// Breaking out of the loop stops the listing.
func (c *Client) ListAll(ctx context.Context, path string) iter.Seq2[Stat, error] {
	return func(yield func(Stat, error) bool) {
		after := ""
		for {
			page, next, err := c.ListPage(ctx, path, defaultPage, after)
			if err != nil {
				yield(Stat{}, err)
				return
			}
			for _, st := range page {
				if !yield(st, nil) {
					return
				}
			}
			if next == "" || next == after && len(page) == 0 {
				return
			}
			after = next
		}
	}
}

// List returns every entry of the directory path, sorted by name, following
// pages. Listing "/" merges the root directories of every cluster. Between
// pages the directory may change: each entry present for the whole listing
// is returned exactly once.
func (c *Client) List(ctx context.Context, path string) ([]Stat, error) {
	var all []Stat
	for st, err := range c.ListAll(ctx, path) {
		if err != nil {
			return nil, err
		}
		all = append(all, st)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all, nil
}

// WalkFunc is called by Walk for each path: the path itself, its metadata,
// and the error listing it (then st describes the directory that failed to
// list). Returning fs.SkipDir from a directory skips its contents;
// fs.SkipAll stops the walk; any other error stops it and is returned.
type WalkFunc func(path string, st *Stat, err error) error

// Walk visits root and everything below it in lexical order, depth first,
// as filepath.WalkDir does, listing each directory page by page. Walking
// "/" lists every root of every cluster. Each directory is listed once; a
// tree that changes during the walk is seen as each listing found it.
func (c *Client) Walk(ctx context.Context, root string, fn WalkFunc) error {
	st, err := c.Stat(ctx, root)
	if err != nil {
		err = fn(root, nil, err)
	} else {
		err = c.walk(ctx, root, st, fn)
	}
	if errors.Is(err, fs.SkipDir) || errors.Is(err, fs.SkipAll) {
		return nil
	}
	return err
}

func (c *Client) walk(ctx context.Context, p string, st *Stat, fn WalkFunc) error {
	if err := fn(p, st, nil); err != nil || !st.IsDir() {
		if errors.Is(err, fs.SkipDir) && st.IsDir() {
			return nil
		}
		return err
	}
	ents, err := c.List(ctx, p)
	if err != nil {
		if err := fn(p, st, err); err != nil {
			if errors.Is(err, fs.SkipDir) {
				return nil
			}
			return err
		}
		return nil
	}
	for i := range ents {
		if err := c.walk(ctx, fspath.Join(p, ents[i].Name), &ents[i], fn); err != nil {
			if errors.Is(err, fs.SkipDir) && !ents[i].IsDir() {
				return nil // SkipDir on a file skips the rest of its directory
			}
			return err
		}
	}
	return nil
}

// Entry is one path of a recursive listing.
type Entry struct {
	Path string // absolute path
	Stat Stat
}

// ListRecursive returns every path strictly below the directory dir, in the
// order Walk visits them.
func (c *Client) ListRecursive(ctx context.Context, dir string) ([]Entry, error) {
	var out []Entry
	err := c.Walk(ctx, dir, func(p string, st *Stat, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			if !st.IsDir() {
				return &Error{Code: CodeNotDir, Op: "ls", Path: dir, Message: dir + ": not a directory"}
			}
			return nil
		}
		out = append(out, Entry{Path: p, Stat: *st})
		return nil
	})
	return out, err
}
