package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Stamped by the Makefile with -ldflags "-X main.version=... -X
// main.commit=... -X main.buildDate=..."; left empty, versionString fills
// them from the binary's build info.
var (
	version   string
	commit    string
	buildDate string
)

// versionString is "cleave VERSION (commit C, built D)": the stamped
// values, else the module version and VCS revision and time that go build
// records, else "dev" and "unknown".
func versionString() string {
	v, c, d := version, commit, buildDate
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && c == "":
				c = s.Value
			case s.Key == "vcs.time" && d == "":
				d = s.Value
			case s.Key == "vcs.modified" && s.Value == "true" && commit == "" && c != "":
				c += "-dirty"
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if c == "" {
		c = "unknown"
	}
	if d == "" {
		d = "unknown"
	}
	return fmt.Sprintf("cleave %s (commit %s, built %s)", v, c, d)
}

// versionCmd prints versionString.
func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and build date of this binary",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionString())
			return err
		},
	}
}
