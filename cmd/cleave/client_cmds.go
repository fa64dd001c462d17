package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/wire"
)

// addClientCommands adds the client verbs, which talk to routers through
// package client: mkdir, put, get, ls, stat, rm, exists, status.
func addClientCommands(root *cobra.Command) {
	root.AddCommand(mkdirCmd(), putCmd(), getCmd(), lsCmd(), statCmd(), rmCmd(), existsCmd(), statusCmd())
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
	g, err := resolveGlobals(cmd)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
	defer cancel()
	c, err := client.Dial(ctx, g.routers,
		client.WithToken(g.token), client.WithClientName("cleave-cli"), client.WithTimeout(g.timeout))
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
	var parents bool
	cmd := &cobra.Command{
		Use:   "put [-p] PATH [FILE|-]",
		Short: "Create or replace a file with the contents of FILE or stdin",
		Long: `Create or replace the file PATH with the contents of FILE, or of stdin when
FILE is - or omitted. With -o json the new file's metadata is printed.`,
		Args: args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if _, err := resolveGlobals(cmd); err != nil {
				return err // before reading a possibly endless stdin
			}
			var data []byte
			var err error
			if len(a) < 2 || a[1] == "-" {
				data, err = io.ReadAll(cmd.InOrStdin())
				if err != nil {
					err = fmt.Errorf("read stdin: %w", err)
				}
			} else {
				data, err = os.ReadFile(a[1])
			}
			if err != nil {
				return err
			}
			var opts []client.PutOption
			if parents {
				opts = append(opts, client.Parents())
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client, g globals) error {
				st, err := c.Put(ctx, a[0], data, opts...)
				if err != nil || !g.json {
					return err
				}
				return writeJSON(cmd.OutOrStdout(), st)
			})
		},
	}
	cmd.Flags().BoolVarP(&parents, "parents", "p", false, "create missing parent directories")
	return cmd
}

func getCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get PATH [FILE|-]",
		Short: "Read a file to stdout or to FILE",
		Long: `Read the file PATH and write it to stdout, or to FILE. FILE is replaced
atomically (written to a temporary file in the same directory, then
renamed); on error it is left as it was. If FILE is a directory, the file
is written into it under PATH's base name.`,
		Args: args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return withClient(cmd, func(ctx context.Context, c *client.Client, _ globals) error {
				data, err := c.Get(ctx, a[0])
				if err != nil {
					return err
				}
				if len(a) < 2 || a[1] == "-" {
					_, err := cmd.OutOrStdout().Write(data)
					return err
				}
				dst := a[1]
				if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
					_, name := fspath.Split(a[0])
					dst = filepath.Join(dst, name)
				}
				return writeFileAtomic(dst, bytes.NewReader(data))
			})
		},
	}
}

// writeFileAtomic replaces path with the contents of r: it writes a
// temporary file in path's directory, syncs it and renames it over path.
// On any error the temporary file is removed and path is untouched. An
// existing path keeps its permission bits; a new one gets 0644.
func writeFileAtomic(path string, r io.Reader) (err error) {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return &client.Error{Code: wire.IsDir, Op: "get", Message: path + ": is a directory"}
		}
		mode = fi.Mode().Perm()
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".cleave-tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func lsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls [PATH]",
		Short: "List a directory (default /)",
		Long: `List the directory PATH (default /, which merges every root directory),
sorted by name. The table shows type, size, version, mtime (UTC) and name;
-o json prints a JSON array of stats as "cleave stat -o json" does.`,
		Args: args(cobra.RangeArgs(0, 1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			p := "/"
			if len(a) == 1 {
				p = a[0]
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client, g globals) error {
				ents, err := c.List(ctx, p)
				if err != nil {
					return err
				}
				if g.json {
					if ents == nil {
						ents = []client.Stat{}
					}
					return writeJSON(cmd.OutOrStdout(), ents)
				}
				return writeLsTable(cmd.OutOrStdout(), ents)
			})
		},
	}
}

func writeLsTable(w io.Writer, ents []client.Stat) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tSIZE\tVERSION\tMTIME\tNAME")
	for _, e := range ents {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", e.Type, e.Size, e.Version, e.Mtime.UTC().Format(time.RFC3339), e.Name)
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
	fmt.Fprintf(tw, "name\t%s\n", st.Name)
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
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return withClient(cmd, func(ctx context.Context, c *client.Client, _ globals) error {
				ok, err := c.Exists(ctx, a[0])
				if err != nil {
					return err
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

func writeStatusTable(w io.Writer, st *wire.Status) error {
	fmt.Fprintf(w, "router %s, routing table version %d\n\n", st.Router, st.Version)
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
	hdr := "CLUSTER\tNODE\tADDR\tROLE\tAPPLIED\tPID"
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
			line := fmt.Sprintf("%s\t%d\t%s\t%s\t%d\t%s", cl.ID, n.ID, n.Addr, orDash(n.Role), n.Applied, pid)
			if anyErr {
				line += "\t" + orDash(n.Error)
			}
			fmt.Fprintln(tw, line)
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
