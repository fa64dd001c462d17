package client

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"time"
)

// File is an open file for reading: an io.Reader, io.Seeker, io.ReaderAt
// and fs.File over ranged reads of one version of the file. Every byte it
// returns comes from the version seen at Open; if the file changes, a read
// that needs the server fails with ErrConflict (never a mix of versions).
// It reads ChunkSize at a time and keeps one chunk buffered. Not safe for
// concurrent use, except ReadAt.
type File struct {
	c    *Client
	ctx  context.Context
	path string
	st   Stat

	off    int64  // read position
	buf    []byte // bytes of the file at [bufOff, bufOff+len(buf))
	bufOff int64
	closed bool
}

// Open opens the file path for reading. ctx bounds every later read.
// Opening a directory fails with ErrIsDir.
func (c *Client) Open(ctx context.Context, path string) (*File, error) {
	data, st, err := c.GetRange(ctx, path, 0, ChunkSize)
	if err != nil {
		return nil, relabel(err, "open")
	}
	if st.IsDir() {
		return nil, &Error{Code: CodeIsDir, Op: "open", Path: path, Message: path + ": is a directory"}
	}
	return &File{c: c, ctx: ctx, path: path, st: *st, buf: data}, nil
}

// Stat returns the metadata of the version being read, as an fs.FileInfo
// whose Sys() is the *Stat.
func (f *File) Stat() (fs.FileInfo, error) { return fileInfo{st: f.st}, nil }

// Version returns the metadata of the version being read.
func (f *File) Version() *Stat { st := f.st; return &st }

// Read reads up to len(p) bytes at the read position.
func (f *File) Read(p []byte) (int, error) {
	if f.closed {
		return 0, fs.ErrClosed
	}
	n, err := f.ReadAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt reads len(p) bytes at off; fewer only at the end (with io.EOF).
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if f.closed {
		return 0, fs.ErrClosed
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.path, Err: fs.ErrInvalid}
	}
	n := 0
	for n < len(p) {
		at := off + int64(n)
		if at >= f.st.Size {
			return n, io.EOF
		}
		if at >= f.bufOff && at < f.bufOff+int64(len(f.buf)) {
			n += copy(p[n:], f.buf[at-f.bufOff:])
			continue
		}
		data, st, err := f.c.GetRange(f.ctx, f.path, at, ChunkSize)
		if err != nil {
			return n, err
		}
		if st.Version != f.st.Version {
			return n, versionChanged("read", f.path, f.st.Version, st.Version)
		}
		if len(data) == 0 {
			return n, &Error{Code: CodeInternal, Op: "read", Path: f.path, Message: fmt.Sprintf("read %s: empty range at %d of a %d-byte file", f.path, at, f.st.Size)}
		}
		f.buf, f.bufOff = data, at
	}
	return n, nil
}

// Seek sets the read position (io.Seeker).
func (f *File) Seek(offset int64, whence int) (int64, error) {
	if f.closed {
		return 0, fs.ErrClosed
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.st.Size
	default:
		return 0, &fs.PathError{Op: "seek", Path: f.path, Err: fs.ErrInvalid}
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.path, Err: fs.ErrInvalid}
	}
	f.off = offset
	return offset, nil
}

// Close releases the buffer; later reads fail with fs.ErrClosed.
func (f *File) Close() error {
	if f.closed {
		return fs.ErrClosed
	}
	f.closed, f.buf = true, nil
	return nil
}

// fileInfo is a Stat as an fs.FileInfo and fs.DirEntry.
type fileInfo struct {
	st   Stat
	name string // overrides st.Name when set ("." for the top)
}

func (fi fileInfo) Name() string {
	if fi.name != "" {
		return fi.name
	}
	return fi.st.Name
}
func (fi fileInfo) Size() int64 { return fi.st.Size }
func (fi fileInfo) Mode() fs.FileMode {
	if fi.st.IsDir() {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
func (fi fileInfo) ModTime() time.Time         { return fi.st.Mtime }
func (fi fileInfo) IsDir() bool                { return fi.st.IsDir() }
func (fi fileInfo) Sys() any                   { st := fi.st; return &st }
func (fi fileInfo) Type() fs.FileMode          { return fi.Mode().Type() }
func (fi fileInfo) Info() (fs.FileInfo, error) { return fi, nil }
func (fi fileInfo) String() string             { return fs.FormatFileInfo(fi) }
