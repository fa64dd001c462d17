package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/cleavefs/cleave/internal/certs"
)

// Default validities of `cleave certs`.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	certValidity = 365 * 24 * time.Hour
)

// certsCmd returns `cleave certs` with init and issue.
func certsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Make a development CA and certificates for nodes, routers and users",
		Long: `Make TLS material with a development CA (ECDSA P-256): 'certs init' makes
DIR/ca.crt and DIR/ca.key, 'certs issue' signs DIR/NAME.crt and NAME.key
with it. A certificate's name is its identity: node-ID, router-ID or
user-NAME. Keys are written with mode 0600. See docs/security.md.`,
	}
	cmd.AddCommand(certsInitCmd(), certsIssueCmd())
	return cmd
}

func certsInitCmd() *cobra.Command {
	var dir, name string
	var validity time.Duration
	cmd := &cobra.Command{
		Use:   "init --dir DIR [--name NAME] [--validity DURATION]",
		Short: "Make a development CA in DIR (ca.crt, ca.key)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd.Flags(), "dir"); err != nil {
				return usageError{err}
			}
			if err := certs.NewCA(dir, name, validity); err != nil {
				return err
			}
			return wrote(cmd, filepath.Join(dir, certs.CACert), filepath.Join(dir, certs.CAKey))
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory for ca.crt and ca.key (required)")
	f.StringVar(&name, "name", "cleave development CA", "the CA's common name")
	f.DurationVar(&validity, "validity", caValidity, "how long the CA is valid")
	return cmd
}

type issueOpts struct {
	dir, out, name string
	hosts          []string
	client, server bool
	validity       time.Duration
}

func certsIssueCmd() *cobra.Command {
	var o issueOpts
	cmd := &cobra.Command{
		Use:   "issue --dir DIR --name NAME [--host HOST ...] [--client|--server] [--out DIR]",
		Short: "Issue a certificate signed by the CA in DIR",
		Long: `Issue NAME.crt and NAME.key signed by the CA in --dir (written to --out,
default --dir, replacing an older pair). --host (repeatable) adds a DNS
name or IP address the certificate serves. The certificate is good for
TLS servers and clients unless --client or --server narrows it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd.Flags(), "dir", "name"); err != nil {
				return usageError{err}
			}
			usage := certs.Both
			switch {
			case o.client && o.server:
				return usagef("--client and --server exclude each other; give neither for both")
			case o.client:
				usage = certs.Client
			case o.server:
				usage = certs.Server
			}
			out := o.out
			if out == "" {
				out = o.dir
			}
			if err := certs.Issue(o.dir, out, o.name, o.hosts, usage, o.validity); err != nil {
				return err
			}
			return wrote(cmd, filepath.Join(out, o.name+".crt"), filepath.Join(out, o.name+".key"))
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "", "directory of the CA (ca.crt, ca.key) (required)")
	f.StringVar(&o.out, "out", "", "directory for NAME.crt and NAME.key (default --dir)")
	f.StringVar(&o.name, "name", "", "certificate name and identity: node-ID, router-ID or user-NAME (required)")
	f.StringArrayVar(&o.hosts, "host", nil, "DNS name or IP address the certificate serves; repeat for each")
	f.BoolVar(&o.client, "client", false, "a client certificate only")
	f.BoolVar(&o.server, "server", false, "a server certificate only")
	f.DurationVar(&o.validity, "validity", certValidity, "how long the certificate is valid (at most as long as the CA)")
	return cmd
}

// wrote reports the files a certs command wrote.
func wrote(cmd *cobra.Command, files ...string) error {
	for _, f := range files {
		if _, err := fmt.Fprintln(cmd.OutOrStdout(), "wrote", f); err != nil {
			return err
		}
	}
	return nil
}
