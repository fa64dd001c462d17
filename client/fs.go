package client

import (
	"context"
	"io"
	"io/fs"
)

// FS returns the deployment's namespace as a read-only fs.FS that also
// implements fs.ReadDirFS and fs.StatFS, so fs.WalkDir, fs.ReadFile,
// fs.Glob and http.FileServer(http.FS(...)) work over cleave. io/fs names
// are unrooted: "." is "/", "a/b" is "/a/b". ctx bounds every call made
// through the FS. Files opened through it are *File values (seekable,
// version-consistent); directories list page by page. Errors are
// *fs.PathError wrapping the SDK's *Error, which matches fs.ErrNotExist,
// fs.ErrExist, fs.ErrInvalid or fs.ErrPermission where one applies.
func (c *Client) FS(ctx context.Context) fs.FS { return &fsys{c: c, ctx: ctx} }

type fsys struct {
	c   *Client
	ctx context.Context
}

var (
	_ fs.ReadDirFS = (*fsys)(nil)
	_ fs.StatFS    = (*fsys)(nil)
)

// abs maps an io/fs name to a cleave path.
func abs(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return "/", nil
	}
	return "/" + name, nil
}

func pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// Open opens name: a *File for a file, a directory handle for a directory.
func (f *fsys) Open(name string) (fs.File, error) {
	p, err := abs("open", name)
	if err != nil {
		return nil, err
	}
	st, err := f.c.Stat(f.ctx, p)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	if st.IsDir() {
		return &dirFile{fs: f, path: p, info: infoFor(name, *st)}, nil
	}
	file, err := f.c.Open(f.ctx, p)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	return file, nil
}

// Stat returns the metadata of name.
func (f *fsys) Stat(name string) (fs.FileInfo, error) {
	p, err := abs("stat", name)
	if err != nil {
		return nil, err
	}
	st, err := f.c.Stat(f.ctx, p)
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	return infoFor(name, *st), nil
}

// ReadDir lists the directory name, sorted by name.
func (f *fsys) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := abs("readdir", name)
	if err != nil {
		return nil, err
	}
	ents, err := f.c.List(f.ctx, p)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	out := make([]fs.DirEntry, len(ents))
	for i := range ents {
		out[i] = fileInfo{st: ents[i]}
	}
	return out, nil
}

func infoFor(name string, st Stat) fileInfo {
	fi := fileInfo{st: st}
	if name == "." {
		fi.name = "."
	}
	return fi
}

// dirFile is an open directory: fs.ReadDirFile reading page by page.
type dirFile struct {
	fs    *fsys
	path  string
	info  fileInfo
	after string // continuation token
	done  bool
	ahead []Stat // fetched, not yet returned
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, pathErr("read", d.info.Name(), &Error{Code: CodeIsDir, Op: "read", Path: d.path, Message: d.path + ": is a directory"})
}
func (d *dirFile) Close() error { return nil }

// ReadDir returns the next n entries (n <= 0: all the rest), as
// fs.ReadDirFile specifies.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	var out []fs.DirEntry
	for n <= 0 || len(out) < n {
		if len(d.ahead) == 0 {
			if d.done {
				break
			}
			page, next, err := d.fs.c.ListPage(d.fs.ctx, d.path, defaultPage, d.after)
			if err != nil {
				return out, pathErr("readdir", d.info.Name(), err)
			}
			d.ahead = page
			if next == "" || next == d.after && len(page) == 0 {
				d.done = true
			}
			d.after = next
			if len(page) == 0 {
				continue
			}
		}
		out = append(out, fileInfo{st: d.ahead[0]})
		d.ahead = d.ahead[1:]
	}
	if n > 0 && len(out) == 0 {
		return nil, io.EOF
	}
	return out, nil
}

// fsErr maps a code to the io/fs error it stands for, or nil.
func fsErr(code Code) error {
	switch code {
	case CodeNotFound:
		return fs.ErrNotExist
	case CodeExists:
		return fs.ErrExist
	case CodeInvalid:
		return fs.ErrInvalid
	case CodeUnauthorized, CodeForbidden:
		return fs.ErrPermission
	}
	return nil
}
