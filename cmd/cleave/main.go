// Command cleave is the single binary of cleave: the client verbs (put, get,
// ls, ...) and the server subcommands (up, node, router). It is a thin shell:
// the logic lives in packages client, router and cluster.
//
// Exit status: 0 on success, 1 when an operation failed (stderr then holds
// exactly "cleave: <CODE>: <message>"), 2 for a usage error (bad flags or
// arguments).
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/certs"
)

// Defaults of the global flags.
const (
	defaultRouter  = "127.0.0.1:7400"
	defaultTimeout = 10 * time.Second
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the CLI with args (without the program name) and returns the
// exit status. CLEAVE_* variables come from the process environment.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root, started := newRoot()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) || !*started {
		fmt.Fprintf(stderr, "cleave: %s\n", escapeControl(err.Error()))
		if cmd == nil {
			cmd = root
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return 2
	}
	code, msg := codeOf(err), message(err)
	if f := cmd.Flags().Lookup("timeout"); f != nil && (code == client.CodeTimeout || errors.Is(err, context.DeadlineExceeded)) {
		msg += fmt.Sprintf(" (raise --timeout or CLEAVE_TIMEOUT, now %s)", f.Value)
	}
	fmt.Fprintf(stderr, "cleave: %s: %s\n", code, msg)
	return 1
}

// usageError marks an error as a usage error (exit 2) even after Run began.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// newRoot builds the command tree. *started becomes true when a command's
// Run begins, after cobra has parsed its flags and checked its arguments.
func newRoot() (root *cobra.Command, started *bool) {
	root = &cobra.Command{
		Use:   "cleave",
		Short: "cleave is a strongly consistent distributed file store",
		Long: `cleave is a strongly consistent distributed file store.

Client commands talk to a deployment through its routers (--router, or
CLEAVE_ROUTER); server commands run one.

Every flag of every command can also be set by the environment variable
CLEAVE_<FLAG> (--output: CLEAVE_OUTPUT, --if-absent: CLEAVE_IF_ABSENT; a
repeatable flag takes space-separated values). Flags beat CLEAVE_*
environment variables beat defaults.`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		Version:           versionString(),
		PersistentPreRunE: envHook,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.String("router", defaultRouter, "router addresses, HOST:PORT[,HOST:PORT...] (env CLEAVE_ROUTER)")
	pf.String("token", "", "auth token (env CLEAVE_TOKEN)")
	pf.String("cacert", "", "speak TLS to the routers, trusting this CA certificate file (env CLEAVE_CACERT)")
	pf.String("cert", "", "client certificate file, with --key, for routers that ask for one (env CLEAVE_CERT)")
	pf.String("key", "", "private key file of --cert (env CLEAVE_KEY)")
	pf.Duration("timeout", defaultTimeout, "deadline for the whole command; for put, get, append and write, for each request of the transfer (env CLEAVE_TIMEOUT)")
	pf.StringP("output", "o", "table", "output format: table or json")
	pf.Bool("stale", false, "reads (get, ls, stat, exists) may be served by any replica from its local state: faster, no quorum needed, possibly behind")

	addClientCommands(root)
	addServerCommands(root)
	root.AddCommand(certsCmd(), versionCmd())
	for _, c := range root.Commands() {
		switch c.Name() {
		case "node", "router", "up", "operator", "version":
			markOwnFlagsOnly(c)
		case "certs":
			markOwnFlagsOnly(c)
			for _, sub := range c.Commands() {
				markOwnFlagsOnly(sub)
			}
		}
	}
	started = new(bool)
	markStarts(root, started)
	return root, started
}

// ownFlagsOnly annotates a command (server commands, certs, version) that
// takes none of the root's client flags: its help does not list them and
// it refuses them.
const ownFlagsOnly = "cleave/own-flags-only"

// markOwnFlagsOnly annotates c with ownFlagsOnly and gives it a usage text
// without the inherited flags; its subcommands keep the root's.
func markOwnFlagsOnly(c *cobra.Command) {
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	for _, sub := range c.Commands() {
		sub.SetUsageTemplate(c.UsageTemplate())
	}
	c.Annotations[ownFlagsOnly] = "true"
	c.SetUsageTemplate(strings.Replace(c.UsageTemplate(), `{{if .HasAvailableInheritedFlags}}

Global Flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}`, "", 1))
}

// envHook is the root's PersistentPreRunE, so one rule holds for every
// command: the flags it takes that were not given take their CLEAVE_<FLAG>
// variable. A command marked ownFlagsOnly refuses the root's flags.
func envHook(cmd *cobra.Command, _ []string) error {
	if cmd.Annotations[ownFlagsOnly] != "" {
		var bad string
		cmd.InheritedFlags().VisitAll(func(f *pflag.Flag) {
			if f.Changed && bad == "" {
				bad = f.Name
			}
		})
		if bad != "" {
			return usagef("%s does not take --%s (a flag of the client commands)", cmd.CommandPath(), bad)
		}
	}
	if err := applyEnv(cmd); err != nil {
		return usageError{err}
	}
	return nil
}

// markStarts wraps the Run of every command in the tree to set *started.
func markStarts(c *cobra.Command, started *bool) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error { *started = true; return run(cmd, args) }
	} else if run := c.Run; run != nil {
		c.Run = func(cmd *cobra.Command, args []string) { *started = true; run(cmd, args) }
	}
	for _, sub := range c.Commands() {
		markStarts(sub, started)
	}
}

// globals are the resolved persistent flags of the root command.
type globals struct {
	routers []string
	token   string
	tls     *tls.Config // nil: plaintext
	timeout time.Duration
	json    bool
	stale   bool
}

// resolveGlobals reads and checks the persistent flags of cmd, after the
// root's PersistentPreRunE has applied CLEAVE_* variables to them.
func resolveGlobals(cmd *cobra.Command) (globals, error) {
	f := cmd.Flags()
	router, _ := f.GetString("router")
	token, _ := f.GetString("token")
	timeout, _ := f.GetDuration("timeout")
	output, _ := f.GetString("output")
	stale, _ := f.GetBool("stale")
	g := globals{token: token, timeout: timeout, stale: stale}
	tlsFiles := map[string]string{}
	for _, name := range []string{"cacert", "cert", "key"} {
		tlsFiles[name], _ = f.GetString(name)
	}
	if tlsFiles["cacert"] != "" || tlsFiles["cert"] != "" || tlsFiles["key"] != "" {
		cfg, err := certs.ClientTLS(tlsFiles["cacert"], tlsFiles["cert"], tlsFiles["key"])
		if err != nil {
			return g, usagef("--cacert/--cert/--key: %v", err)
		}
		g.tls = cfg
	}
	if g.timeout <= 0 {
		return g, usagef("--timeout (or CLEAVE_TIMEOUT) must be positive, got %v", g.timeout)
	}
	for _, r := range strings.Split(router, ",") {
		if r = strings.TrimSpace(r); r != "" {
			g.routers = append(g.routers, r)
		}
	}
	if len(g.routers) == 0 {
		return g, usagef("no router address: set --router or CLEAVE_ROUTER")
	}
	switch output {
	case "table":
	case "json":
		g.json = true
	default:
		return g, usagef("--output %q: want table or json", output)
	}
	return g, nil
}

// codeOf is client.CodeOf, plus codes for local file errors.
func codeOf(err error) client.Code {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return client.CodeNotFound
	case errors.Is(err, fs.ErrExist):
		return client.CodeExists
	case errors.Is(err, fs.ErrPermission):
		return client.CodeForbidden
	}
	return client.CodeOf(err)
}

// message is err's text without a leading code.
func message(err error) string {
	var ce *client.Error
	if errors.As(err, &ce) && ce.Message != "" {
		return escapeControl(strings.ReplaceAll(ce.Message, "\n", "; "))
	}
	code := client.CodeOf(err).String()
	return escapeControl(strings.ReplaceAll(strings.TrimPrefix(err.Error(), code+": "), "\n", "; "))
}
