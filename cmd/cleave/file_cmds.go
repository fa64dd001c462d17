package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/fspath"
)

// piece is how many bytes append and write send per request: well under the
// 8 MiB frame limit. Input larger than one piece is sent as several
// requests, each applied exactly once, in order; together they are not
// atomic.
const piece = 4 << 20

// openInput returns FILE, or stdin for "-" or no FILE.
func openInput(cmd *cobra.Command, a []string) (io.Reader, func(), error) {
	if len(a) < 2 || a[1] == "-" {
		return cmd.InOrStdin(), func() {}, nil
	}
	f, err := os.Open(a[1])
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// sendPieces reads in and calls send for each piece at its offset from the
// start; at least once (an empty input sends one empty piece).
func sendPieces(in io.Reader, send func(off int64, p []byte) (*client.Stat, error)) (*client.Stat, error) {
	buf := make([]byte, piece)
	var (
		off int64
		st  *client.Stat
	)
	for {
		n, err := io.ReadFull(in, buf)
		if err == io.EOF && (off > 0 || st != nil) {
			return st, nil
		}
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("read input: %w", err)
		}
		if st, err = send(off, buf[:n]); err != nil {
			return nil, err
		}
		off += int64(n)
		if n < piece {
			return st, nil
		}
	}
}

// sendInput is the body of append and write: it opens the input named in
// a, sends it in pieces through send and prints the last metadata with
// -o json.
func sendInput(cmd *cobra.Command, a []string, send func(ctx context.Context, c *client.Client, off int64, p []byte) (*client.Stat, error)) error {
	if _, err := resolveGlobals(cmd); err != nil {
		return err
	}
	in, done, err := openInput(cmd, a)
	if err != nil {
		return err
	}
	defer done()
	return withTransfer(cmd, func(ctx context.Context, c *client.Client, g globals) error {
		st, err := sendPieces(in, func(off int64, p []byte) (*client.Stat, error) { return send(ctx, c, off, p) })
		if err != nil || !g.json {
			return err
		}
		return writeJSON(cmd.OutOrStdout(), st)
	})
}

func appendCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "append PATH [FILE|-]",
		Short: "Append FILE or stdin to a file (created if absent)",
		Long: `Append the contents of FILE, or of stdin when FILE is - or omitted, to the
file PATH, creating it if absent. Each append is applied exactly once even
when the connection breaks and the request is retried. Input over 4 MiB is
appended in 4 MiB pieces (each atomic, together not). With -o json the new
metadata is printed.`,
		Args: args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return sendInput(cmd, a, func(ctx context.Context, c *client.Client, _ int64, p []byte) (*client.Stat, error) {
				return c.Append(ctx, a[0], p)
			})
		},
	}
}

func writeCmd() *cobra.Command {
	var offset int64
	cmd := &cobra.Command{
		Use:   "write --offset N PATH [FILE|-]",
		Short: "Write FILE or stdin into a file at an offset",
		Long: `Write the contents of FILE, or of stdin when FILE is - or omitted, into the
file PATH starting at byte N, extending it if needed; a gap past the old
end reads as zeros. Input over 4 MiB is written in 4 MiB pieces (each
atomic, together not). With -o json the new metadata is printed.`,
		Args: args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if !cmd.Flags().Changed("offset") {
				return usagef("write needs --offset N")
			}
			if offset < 0 {
				return usagef("--offset must not be negative")
			}
			return sendInput(cmd, a, func(ctx context.Context, c *client.Client, off int64, p []byte) (*client.Stat, error) {
				return c.Write(ctx, a[0], offset+off, p)
			})
		},
	}
	sizeFlag(cmd.Flags(), &offset, "offset", "byte position to write at, e.g. 4096 or 1MiB (required)")
	return cmd
}

func mvCmd() *cobra.Command {
	var ifAbsent bool
	cmd := &cobra.Command{
		Use:   "mv [--if-absent] SRC DST",
		Short: "Rename a file or directory within its root, atomically",
		Long: `Rename SRC (a file or a whole directory) to DST atomically. Both must be in
the same root directory (the first path component): across roots mv fails
with CROSS_ROOT; use cp and rm. --if-absent fails with CONFLICT if DST exists.`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return withClient(cmd, func(ctx context.Context, c *client.Client, _ globals) error {
				var opts []client.PutOption
				if ifAbsent {
					opts = append(opts, client.IfAbsent())
				}
				return c.Rename(ctx, a[0], a[1], opts...)
			})
		},
	}
	cmd.Flags().BoolVar(&ifAbsent, "if-absent", false, "fail with CONFLICT if DST exists")
	return cmd
}

func cpCmd() *cobra.Command {
	var ifAbsent, parents bool
	cmd := &cobra.Command{
		Use:   "cp [-p] [--if-absent] SRC DST",
		Short: "Copy a file (atomic within a root; streamed across roots)",
		Long: `Copy the file SRC to DST. Within one root the copy is one atomic operation
on the cluster; across roots the bytes stream through this client and DST
appears atomically when complete. With -o json DST's metadata is printed.`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return withClient(cmd, func(ctx context.Context, c *client.Client, g globals) error {
				var opts []client.PutOption
				if ifAbsent {
					opts = append(opts, client.IfAbsent())
				}
				if parents {
					opts = append(opts, client.Parents())
				}
				st, err := c.Copy(ctx, a[0], a[1], opts...)
				if err != nil || !g.json {
					return err
				}
				return writeJSON(cmd.OutOrStdout(), st)
			})
		},
	}
	cmd.Flags().BoolVar(&ifAbsent, "if-absent", false, "fail with CONFLICT if DST exists")
	cmd.Flags().BoolVarP(&parents, "parents", "p", false, "create DST's missing parent directories")
	return cmd
}

// getRange writes length bytes of path from offset (0: to the end) to w,
// in ranges of one chunk, all from one version of the file.
func getRange(ctx context.Context, c *client.Client, path string, offset, length int64, w io.Writer) error {
	var version uint64
	for first := true; ; first = false {
		n := int64(client.ChunkSize)
		if length > 0 {
			n = min(n, length)
		}
		data, st, err := c.GetRange(ctx, path, offset, n)
		if err != nil {
			return err
		}
		if st.IsDir() {
			return &client.Error{Code: client.CodeIsDir, Op: "get", Path: path, Message: path + ": is a directory"}
		}
		if first {
			version = st.Version
		} else if st.Version != version {
			return &client.Error{Code: client.CodeConflict, Op: "get", Path: path,
				Message: fmt.Sprintf("get %s: the file changed while it was read (version %d, then %d)", path, version, st.Version)}
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
		offset += int64(len(data))
		if length > 0 {
			if length -= int64(len(data)); length <= 0 {
				return nil
			}
		}
		if len(data) == 0 || offset >= st.Size {
			return nil
		}
	}
}

// putTree copies the local directory tree src to the remote directory dst.
func putTree(ctx context.Context, c *client.Client, pr *progress, src, dst string, opts []client.PutOption) error {
	if err := fspath.Validate(dst); err != nil {
		return &client.Error{Code: client.CodeInvalid, Op: "put", Path: dst, Message: err.Error()}
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &client.Error{Code: client.CodeNotDir, Op: "put", Message: src + ": not a directory"}
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		remote := dst
		if rel != "." {
			remote = fspath.Join(dst, filepath.ToSlash(rel))
		}
		switch {
		case d.IsDir():
			if remote == "/" {
				return nil
			}
			return c.MkdirAll(ctx, remote)
		case !d.Type().IsRegular():
			return nil // symlinks, devices: not copied
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		size := int64(-1)
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		b := bar{}
		if size >= client.ChunkSize {
			b = pr.add(rel, size)
		}
		_, err = c.Upload(ctx, remote, b.reader(f), opts...)
		b.done(err == nil)
		return err
	})
}

// getTree copies the remote tree src into the local directory dst.
func getTree(ctx context.Context, c *client.Client, pr *progress, src, dst string) error {
	st, err := c.Stat(ctx, src)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return &client.Error{Code: client.CodeNotDir, Op: "get", Path: src, Message: src + ": not a directory"}
	}
	return c.Walk(ctx, src, func(p string, st *client.Stat, err error) error {
		if err != nil {
			return err
		}
		local := dst
		if p != src {
			rel := p[len(src):]
			if src == "/" {
				rel = p
			}
			local = filepath.Join(dst, filepath.FromSlash(rel))
		}
		if st.IsDir() {
			return os.MkdirAll(local, 0o755)
		}
		b := bar{}
		if st.Size >= client.ChunkSize {
			b = pr.add(p, st.Size)
		}
		err = writeFileAtomicFunc(local, func(w io.Writer) error {
			_, err := c.Download(ctx, p, b.writer(w))
			return err
		})
		b.done(err == nil)
		return err
	})
}
