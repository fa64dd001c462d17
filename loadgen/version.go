package loadgen

import (
	"runtime"
	"runtime/debug"
)

// Stamped by the Makefile's -ldflags ("-X
// github.com/cleavefs/cleave/loadgen.version=..." and commit); left empty,
// BuildInfo reads the binary's build info.
var (
	version string
	commit  string
)

// BuildInfo returns the version and VCS commit of the running binary (the
// stamped values, else the module version and the revision go build
// recorded, "-dirty" if the tree was modified; "dev" and "unknown" when
// neither is known) and the Go version that built it.
func BuildInfo() (ver, rev, goVersion string) {
	ver, rev = version, commit
	if info, ok := debug.ReadBuildInfo(); ok {
		if ver == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			ver = info.Main.Version
		}
		dirty := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && commit == "" && rev != "" {
			rev += "-dirty"
		}
	}
	if ver == "" {
		ver = "dev"
	}
	if rev == "" {
		rev = "unknown"
	}
	return ver, rev, runtime.Version()
}
