package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/atomicfile"
	"github.com/cleavefs/cleave/internal/bytesize"
	"github.com/cleavefs/cleave/internal/fspath"
)

// addClientCommands adds the client verbs, which talk to routers through
// package client: mkdir, put, get, ls, stat, rm, exists, status, append,
// write, mv, cp.
func addClientCommands(root *cobra.Command) {
	root.AddCommand(mkdirCmd(), putCmd(), getCmd(), lsCmd(), statCmd(), rmCmd(), existsCmd(), statusCmd(),
		appendCmd(), writeCmd(), mvCmd(), cpCmd(), splitCmd(), userCmd(), routesCmd())
}

// args wraps a cobra argument check so that its failure is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// withClient resolves the global options, dials the routers and calls fn
// with a context bounded by --timeout for the whole command.
func withClient(cmd *cobra.Command, fn func(ctx context.Context, c *client.Client, g globals) error) error {
	return dialAndRun(cmd, true, fn)
}

// withTransfer is withClient for the commands that move file contents
// (put, get, append, write): --timeout bounds each request (one chunk of at
// most client.ChunkSize), not the whole transfer, so a file of any size
// succeeds as long as it keeps moving.
func withTransfer(cmd *cobra.Command, fn func(ctx context.Context, c *client.Client, g globals) error) error {
	return dialAndRun(cmd, false, fn)
}

// dialAndRun dials the routers and calls fn; whole bounds fn's context by
// --timeout, else the client applies --timeout to each request.
func dialAndRun(cmd *cobra.Command, whole bool, fn func(ctx context.Context, c *client.Client, g globals) error) error {
	g, err := resolveGlobals(cmd)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	if whole {
		ctx, cancel = context.WithTimeout(cmd.Context(), g.timeout)
	}
	defer cancel()
	opts := []client.Option{client.WithToken(g.token), client.WithClientName("cleave-cli"), client.WithTimeout(g.timeout)}
	if g.stale {
		opts = append(opts, client.WithStaleReads())
	}
	if g.tls != nil {
		opts = append(opts, client.WithTLS(g.tls))
	}
	c, err := client.Dial(ctx, g.routers, opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c, g)
}

// writeJSON writes v as one indented, newline-terminated JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func mkdirCmd() *cobra.Command {
	var parents bool
	cmd := &cobra.Command{
		Use:   "mkdir [-p] PATH",
		Short: "Create a directory",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return withClient(cmd, func(ctx context.Context, c *client.Client, _ globals) error {
				if parents {
					return c.MkdirAll(ctx, a[0])
				}
				return c.Mkdir(ctx, a[0])
			})
		},
	}
	cmd.Flags().BoolVarP(&parents, "parents", "p", false, "create missing parents; an existing directory is not an error")
	return cmd
}

func putCmd() *cobra.Command {
	var (
		parents, ifAbsent, recursive, quiet bool
		ifVersion                           uint64
	)
	cmd := &cobra.Command{
		Use:   "put [-p] [--if-absent | --if-version N] PATH [FILE|-]\n  put -r LOCALDIR REMOTEDIR",
		Short: "Create or replace a file with the contents of FILE or stdin (-r: a whole tree)",
		Long: `Create or replace the file PATH with the contents of FILE, or of stdin when
FILE is - or omitted. The contents stream in 1 MiB chunks and the file
appears atomically when all of them are stored, so files of any size work.
--if-absent fails with CONFLICT if PATH exists; --if-version N fails with
CONFLICT unless PATH's version is N (from "cleave stat"). Both, and the
parent directory (unless -p), are checked before the contents are sent.
--timeout bounds each 1 MiB request, not the whole upload. With -o json the
new file's metadata is printed.

put -r LOCALDIR REMOTEDIR copies the local tree LOCALDIR to REMOTEDIR
(created with parents), file by file.

A progress bar is drawn on stderr when it is a terminal (not with -o json or
--quiet).`,
		Args: args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if _, err := resolveGlobals(cmd); err != nil {
				return err // before reading a possibly endless stdin
			}
			var opts []client.PutOption
			if parents {
				opts = append(opts, client.Parents())
			}
			if ifAbsent && cmd.Flags().Changed("if-version") {
				return usagef("--if-absent and --if-version exclude each other")
			}
			if ifAbsent {
				opts = append(opts, client.IfAbsent())
			}
			if cmd.Flags().Changed("if-version") {
				opts = append(opts, client.IfVersion(ifVersion))
			}
			if recursive {
				if len(a) != 2 {
					return usagef("put -r needs LOCALDIR and REMOTEDIR")
				}
				return withTransfer(cmd, func(ctx context.Context, c *client.Client, g globals) error {
					pr := newProgress(cmd.ErrOrStderr(), quiet || g.json)
					defer pr.wait()
					return putTree(ctx, c, pr, a[0], a[1], opts)
				})
			}
			var in io.Reader = cmd.InOrStdin()
			var size int64 = -1
			name := "stdin"
			if len(a) == 2 && a[1] != "-" {
				f, err := os.Open(a[1])
				if err != nil {
					return err
				}
				defer f.Close()
				if fi, err := f.Stat(); err == nil {
					if fi.IsDir() {
						return &client.Error{Code: client.CodeIsDir, Op: "put", Message: a[1] + ": is a directory (use put -r)"}
					}
					size = fi.Size()
				}
				in, name = f, a[1]
			}
			return withTransfer(cmd, func(ctx context.Context, c *client.Client, g globals) error {
				pr := newProgress(cmd.ErrOrStderr(), quiet || g.json || size >= 0 && size < client.ChunkSize)
				b := pr.add(name, size)
				st, err := c.Upload(ctx, a[0], b.reader(in), opts...)
				b.done(err == nil)
				pr.wait()
				if err != nil || !g.json {
					return err
				}
				return writeJSON(cmd.OutOrStdout(), st)
			})
		},
	}
	cmd.Flags().BoolVarP(&parents, "parents", "p", false, "create missing parent directories")
	cmd.Flags().BoolVar(&ifAbsent, "if-absent", false, "fail with CONFLICT if PATH exists")
	cmd.Flags().Uint64Var(&ifVersion, "if-version", 0, "fail with CONFLICT unless PATH's version is N")
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "copy a local directory tree")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

func getCmd() *cobra.Command {
	var (
		offset, length   int64
		recursive, quiet bool
	)
	cmd := &cobra.Command{
		Use:   "get [--offset N] [--length M] PATH [FILE|-]\n  get -r REMOTEDIR LOCALDIR",
		Short: "Read a file to stdout or to FILE (-r: a whole tree)",
		Long: `Read the file PATH and write it to stdout, or to FILE. FILE is replaced
atomically (written to a temporary file in the same directory, then
renamed); on error it is left as it was. If FILE is a directory, the file
is written into it under PATH's base name. The contents stream in 1 MiB
ranges, all from one version of the file: if it changes meanwhile, get fails
with CONFLICT.

--offset N and --length M read only that range (M 0 or absent: to the end).

get -r REMOTEDIR LOCALDIR copies the tree REMOTEDIR into LOCALDIR (created if
missing), file by file.

A progress bar is drawn on stderr when it is a terminal (not with -o json or
--quiet).`,
		Args: args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if offset < 0 || length < 0 {
				return usagef("--offset and --length must not be negative")
			}
			if recursive {
				if len(a) != 2 {
					return usagef("get -r needs REMOTEDIR and LOCALDIR")
				}
				return withTransfer(cmd, func(ctx context.Context, c *client.Client, g globals) error {
					pr := newProgress(cmd.ErrOrStderr(), quiet || g.json)
					defer pr.wait()
					return getTree(ctx, c, pr, a[0], a[1])
				})
			}
			ranged := cmd.Flags().Changed("offset") || cmd.Flags().Changed("length")
			return withTransfer(cmd, func(ctx context.Context, c *client.Client, g globals) error {
				fetch := func(w io.Writer) error {
					if ranged {
						return getRange(ctx, c, a[0], offset, length, w)
					}
					pr := newProgress(cmd.ErrOrStderr(), quiet || g.json)
					var b bar
					if pr.p != nil {
						if st, err := c.Stat(ctx, a[0]); err == nil && st.Size >= client.ChunkSize {
							b = pr.add(a[0], st.Size)
						}
					}
					_, err := c.Download(ctx, a[0], b.writer(w))
					b.done(err == nil)
					pr.wait()
					return err
				}
				if len(a) < 2 || a[1] == "-" {
					return fetch(cmd.OutOrStdout())
				}
				dst := a[1]
				if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
					_, name := fspath.Split(a[0])
					dst = filepath.Join(dst, name)
				}
				return writeFileAtomicFunc(dst, fetch)
			})
		},
	}
	sizeFlag(cmd.Flags(), &offset, "offset", "first byte to read, e.g. 4096 or 1MiB")
	sizeFlag(cmd.Flags(), &length, "length", "bytes to read, e.g. 4096 or 1MiB (0: to the end)")
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "copy a remote directory tree")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

// writeFileAtomic replaces path with the contents of r (see
// writeFileAtomicFunc).
func writeFileAtomic(path string, r io.Reader) error {
	return writeFileAtomicFunc(path, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
}

// writeFileAtomicFunc replaces path with what fill writes
// (atomicfile.WriteFunc): on any error path is untouched. An existing path
// keeps its permission bits; a new one gets 0644.
func writeFileAtomicFunc(path string, fill func(io.Writer) error) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return &client.Error{Code: client.CodeIsDir, Op: "get", Message: path + ": is a directory"}
		}
		mode = fi.Mode().Perm()
	}
	return atomicfile.WriteFunc(path, mode, func(w io.Writer) error {
		err := fill(w)
		var ce *client.Error
		if err != nil && !errors.As(err, &ce) {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return err
	})
}

func lsCmd() *cobra.Command {
	var (
		limit     int
		after     string
		recursive bool
	)
	cmd := &cobra.Command{
		Use:   "ls [-R] [--limit N] [--after TOKEN] [PATH]",
		Short: "List a directory (default /)",
		Long: `List the directory PATH (default /, which merges every root directory),
sorted by name. The table shows type, size, version, mtime (UTC) and name.

-o json always prints one object, {"entries": [...], "next": "TOKEN"}:
"entries" are stats as "cleave stat -o json" prints them, "next" is the
token of the next page, "" when there is none (always "" without --limit).

--limit N prints one page of at most N entries, --after TOKEN the page after
TOKEN. When more entries follow, the token of the next page is printed: on
stderr as "next: TOKEN" in table mode, as "next" with -o json.

-R lists the whole tree below PATH, depth first in name order (the order of
fs.WalkDir), naming each entry by its full path; with -o json each entry
has a "path" field.`,
		Args: args(cobra.RangeArgs(0, 1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			p := "/"
			if len(a) == 1 {
				p = a[0]
			}
			paged := cmd.Flags().Changed("limit") || cmd.Flags().Changed("after")
			if limit < 0 {
				return usagef("--limit must not be negative")
			}
			if recursive && paged {
				return usagef("-R does not take --limit or --after")
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client, g globals) error {
				out := cmd.OutOrStdout()
				switch {
				case recursive:
					ents, err := c.ListRecursive(ctx, p)
					if err != nil {
						return err
					}
					if g.json {
						js := make([]pathStat, len(ents))
						for i, e := range ents {
							js[i] = pathStat{Path: e.Path, Stat: e.Stat}
						}
						return writeLsJSON(out, js, "")
					}
					return writeLsRTable(out, ents)
				case paged:
					ents, next, err := c.ListPage(ctx, p, limit, after)
					if err != nil {
						return badAfter(err, after)
					}
					if g.json {
						return writeLsJSON(out, ents, next)
					}
					if err := writeLsTable(out, ents); err != nil {
						return err
					}
					if next != "" {
						fmt.Fprintf(cmd.ErrOrStderr(), "next: %s\n", next)
					}
					return nil
				}
				ents, err := c.List(ctx, p)
				if err != nil {
					return err
				}
				if g.json {
					return writeLsJSON(out, ents, "")
				}
				return writeLsTable(out, ents)
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "print one page of at most N entries")
	cmd.Flags().StringVar(&after, "after", "", "continuation token from a previous page")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "list the whole tree")
	return cmd
}

// writeLsJSON prints the one JSON shape of ls, {"entries": [...], "next":
// next}; entries is a slice of client.Stat or pathStat.
func writeLsJSON[E any](w io.Writer, entries []E, next string) error {
	if entries == nil {
		entries = []E{}
	}
	return writeJSON(w, struct {
		Entries []E    `json:"entries"`
		Next    string `json:"next"`
	}{entries, next})
}

// badAfter turns the router's refusal of a malformed continuation token
// into a usage error about --after; other errors pass unchanged.
func badAfter(err error, after string) error {
	var ce *client.Error
	if after != "" && errors.As(err, &ce) && ce.Code == client.CodeInvalid && strings.Contains(ce.Message, "token") {
		return usagef("--after %q: not a token printed by 'cleave ls --limit' (\"next: TOKEN\" or the JSON \"next\"); copy it unchanged", after)
	}
	return err
}

// pathStat is a stat with its full path, for ls -R -o json.
type pathStat struct {
	Path string
	client.Stat
}

// MarshalJSON adds "path" to the stat's own JSON object.
func (p pathStat) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(p.Stat)
	if err != nil {
		return nil, err
	}
	pb, _ := json.Marshal(p.Path)
	return append(append([]byte(`{"path":`), pb...), append([]byte(","), b[1:]...)...), nil
}

func writeLsRTable(w io.Writer, ents []client.Entry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tSIZE\tVERSION\tMTIME\tPATH")
	for _, e := range ents {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", e.Stat.Type, e.Stat.Size, e.Stat.Version, e.Stat.Mtime.UTC().Format(time.RFC3339), quoteName(e.Path))
	}
	return tw.Flush()
}

func writeLsTable(w io.Writer, ents []client.Stat) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tSIZE\tVERSION\tMTIME\tNAME")
	for _, e := range ents {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", e.Type, e.Size, e.Version, e.Mtime.UTC().Format(time.RFC3339), quoteName(e.Name))
	}
	return tw.Flush()
}

func statCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stat PATH",
		Short: "Show the metadata of a path",
		Long: `Show the metadata of PATH. -o json prints one object:
{"name", "type" ("file" or "dir"), "size", "mtime" (RFC 3339, nanoseconds, UTC),
"version", "checksum"}.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return withClient(cmd, func(ctx context.Context, c *client.Client, g globals) error {
				st, err := c.Stat(ctx, a[0])
				if err != nil {
					return err
				}
				if g.json {
					return writeJSON(cmd.OutOrStdout(), st)
				}
				return writeStatTable(cmd.OutOrStdout(), st)
			})
		},
	}
}

func writeStatTable(w io.Writer, st *client.Stat) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "name\t%s\n", quoteName(st.Name))
	fmt.Fprintf(tw, "type\t%s\n", st.Type)
	fmt.Fprintf(tw, "size\t%d\n", st.Size)
	fmt.Fprintf(tw, "mtime\t%s\n", st.Mtime.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(tw, "version\t%d\n", st.Version)
	fmt.Fprintf(tw, "checksum\t%s\n", st.Checksum)
	return tw.Flush()
}

func rmCmd() *cobra.Command {
	var recursive bool
	cmd := &cobra.Command{
		Use:   "rm [-r] PATH",
		Short: "Remove a file or an empty directory (-r: a whole tree)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return withClient(cmd, func(ctx context.Context, c *client.Client, _ globals) error {
				if recursive {
					return c.RemoveAll(ctx, a[0])
				}
				return c.Remove(ctx, a[0])
			})
		},
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "remove directories and their contents")
	return cmd
}

func existsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "exists PATH",
		Short: "Print true if PATH exists, else false",
		Long: `Print true if PATH exists, else false. -o json prints
{"path": PATH, "exists": true|false}.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return withClient(cmd, func(ctx context.Context, c *client.Client, g globals) error {
				ok, err := c.Exists(ctx, a[0])
				if err != nil {
					return err
				}
				if g.json {
					return writeJSON(cmd.OutOrStdout(), struct {
						Path   string `json:"path"`
						Exists bool   `json:"exists"`
					}{a[0], ok})
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), strconv.FormatBool(ok))
				return err
			})
		},
	}
}

func statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the clusters, their ranges, leaders and nodes",
		Long: `Show the deployment as the router sees it: each cluster with its range and
leader, and each node with its role, applied index and pid. -o json prints
{"router", "version", "clusters": [{"id", "range": {"start", "end"}, "leader",
"nodes": [{"id", "addr", "role", "applied", "pid", ...}]}]}.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(ctx context.Context, c *client.Client, g globals) error {
				st, err := c.Status(ctx)
				if err != nil {
					return err
				}
				if g.json {
					return writeJSON(cmd.OutOrStdout(), st)
				}
				return writeStatusTable(cmd.OutOrStdout(), st)
			})
		},
	}
}

func writeStatusTable(w io.Writer, st *client.Status) error {
	fmt.Fprintf(w, "router %s, routing table version %d\n\n", st.Router, st.Version)
	if len(st.Routers) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROUTER\tADDR\tMETA\tAPPLIED\tVERSION\tPID")
		for _, r := range st.Routers {
			role := "follower"
			switch {
			case r.Error != "":
				role = "down: " + r.Error
			case r.Leader:
				role = "leader"
			}
			pid := "-"
			if r.PID != 0 {
				pid = strconv.Itoa(r.PID)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", orDash(r.ID), r.Addr, role, r.Applied, r.Version, pid)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tRANGE\tLEADER")
	anyErr := false
	for _, cl := range st.Clusters {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", cl.ID, cl.Range, orDash(cl.Leader))
		for _, n := range cl.Nodes {
			anyErr = anyErr || n.Error != ""
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	hdr := "CLUSTER\tNODE\tADDR\tROLE\tGOSSIP\tAPPLIED\tLAG\tPID\tCHECK\tDISK"
	if anyErr {
		hdr += "\tERROR"
	}
	fmt.Fprintln(tw, hdr)
	for _, cl := range st.Clusters {
		for _, n := range cl.Nodes {
			pid := "-"
			if n.PID != 0 {
				pid = strconv.Itoa(n.PID)
			}
			line := fmt.Sprintf("%s\t%d\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s", cl.ID, n.ID, n.Addr, orDash(n.Role), orDash(n.Liveness), n.Applied, n.Lag, pid, checkState(n), diskState(n))
			if anyErr {
				line += "\t" + orDash(n.Error)
			}
			fmt.Fprintln(tw, line)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := writeNodeNotes(w, st, "ALARM", func(n client.NodeStatus) string { return n.Alarm }); err != nil {
		return err
	}
	if err := writeNodeNotes(w, st, "STORAGE ERROR", storageError); err != nil {
		return err
	}
	if err := writeRootsTable(w, st); err != nil {
		return err
	}
	writeHotRoots(w, st)
	writeSplitsTable(w, st.Splits)
	return nil
}

// writeRootsTable lists each cluster's busiest and biggest root
// directories, as its leader reports them: a root never splits, so one hot
// root keeps its cluster hot whatever the ranges.
func writeRootsTable(w io.Writer, st *client.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	any := false
	for _, cl := range st.Clusters {
		for _, n := range cl.Nodes {
			if n.Addr != cl.Leader {
				continue
			}
			for _, r := range n.Roots {
				if !any {
					fmt.Fprintln(w)
					fmt.Fprintln(tw, "CLUSTER\tROOT\tFILES\tBYTES\tREQUESTS")
					any = true
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", cl.ID, quoteName(r.Name), r.Files, r.Bytes, r.Ops)
			}
		}
	}
	return tw.Flush()
}

// writeHotRoots notes each cluster whose load one root carries: splitting
// it would not spread that load.
func writeHotRoots(w io.Writer, st *client.Status) {
	for _, cl := range st.Clusters {
		if cl.HotRoot != nil {
			fmt.Fprintf(w, "\nhot root in %s: %s\n", cl.ID, cl.HotRoot)
		}
	}
}

// checkState is a node's CHECK column: the consistency check's verdict as
// the node sees it.
func checkState(n client.NodeStatus) string {
	switch {
	case n.Quarantined:
		return "quarantined"
	case n.Alarm != "":
		return "ALARM"
	case n.CheckCompared > 0:
		return "ok@" + strconv.FormatUint(n.CheckCompared, 10)
	}
	return "-"
}

// diskState is a node's DISK column: its free bytes, and its storage
// conditions when it has any.
func diskState(n client.NodeStatus) string {
	if n.FreeBytes == 0 && len(n.Conditions) == 0 {
		return "-"
	}
	free := bytesize.Format(int64(n.FreeBytes)) + " free"
	if len(n.Conditions) > 0 {
		return strings.Join(n.Conditions, ",") + " (" + free + ")"
	}
	return free
}

// storageError is a node's latest storage engine error and its time.
func storageError(n client.NodeStatus) string {
	if n.StorageError == "" {
		return ""
	}
	return n.StorageErrorAt + " " + n.StorageError
}

// writeNodeNotes lists, one line per node, what note says of it (the
// consistency alarm: which replicas differ from the majority, at which
// index; the latest storage error), under the column title; nodes with
// nothing to say are left out.
func writeNodeNotes(w io.Writer, st *client.Status, title string, note func(client.NodeStatus) string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	any := false
	for _, cl := range st.Clusters {
		for _, n := range cl.Nodes {
			msg := note(n)
			if msg == "" {
				continue
			}
			if !any {
				fmt.Fprintln(w)
				fmt.Fprintln(tw, "CLUSTER\tSEEN BY\t"+title)
				any = true
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\n", cl.ID, n.ID, msg)
		}
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
