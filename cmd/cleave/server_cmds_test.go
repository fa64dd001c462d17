package main

import (
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/cleavefs/cleave/cluster"
	"github.com/cleavefs/cleave/router"
	"github.com/cleavefs/cleave/up"
	"github.com/cleavefs/cleave/wire"
)

// execute runs cmd with args under a root that applies CLEAVE_* variables
// as cleave's does, and returns its error.
func execute(cmd *cobra.Command, args ...string) error {
	root := &cobra.Command{Use: "cleave", PersistentPreRunE: envHook}
	root.AddCommand(cmd)
	root.SetArgs(append([]string{cmd.Name()}, args...))
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	root.SilenceUsage, root.SilenceErrors = true, true
	return root.ExecuteContext(context.Background())
}

// flagCase is one row of a server command's flag table: its arguments and
// either the error they give or a check of the config they build.
type flagCase[C any] struct {
	name    string
	args    []string
	wantErr string
	check   func(t *testing.T, c C)
}

// runFlagCases runs each case through the command newCmd builds, with a run
// function that only keeps the config. checkErr, if not nil, checks an
// expected error further.
func runFlagCases[C any](t *testing.T, newCmd func(func(context.Context, C) error) *cobra.Command, tests []flagCase[C], checkErr func(t *testing.T, name string, err error)) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got C
			err := execute(newCmd(func(_ context.Context, c C) error { got = c; return nil }), withPeerFlag(tt.args)...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if checkErr != nil {
					checkErr(t, tt.name, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, got)
		})
	}
}

// withPeerFlag adds --insecure-peer to args that choose nothing for the
// peer plane, so a case tests what it is about.
func withPeerFlag(args []string) []string {
	for _, a := range args {
		if strings.HasPrefix(a, "--peer-cert") || strings.HasPrefix(a, "--peer-key") || strings.HasPrefix(a, "--peer-cacert") || strings.HasPrefix(a, "--insecure-peer") {
			return args
		}
	}
	return append(args[:len(args):len(args)], "--insecure-peer")
}

func TestServerCommandsRegistered(t *testing.T) {
	root := &cobra.Command{Use: "cleave"}
	addServerCommands(root)
	for _, name := range []string{"node", "router", "up"} {
		if c, _, err := root.Find([]string{name}); err != nil || c.Name() != name {
			t.Errorf("subcommand %q not registered: %v", name, err)
		}
	}
}

func TestNodeFlags(t *testing.T) {
	base := []string{"--id", "2", "--cluster", "c1", "--listen", "127.0.0.1:7502",
		"--peers", "1=127.0.0.1:7501/127.0.0.1:7601,2=127.0.0.1:7502/127.0.0.1:7602,3=127.0.0.1:7503/127.0.0.1:7603", "--data", "/tmp/n2"}
	tests := []flagCase[cluster.Config]{
		{name: "top range", args: append(base, "--range", "9223372036854775808-18446744073709551616", "--report-pid"),
			check: func(t *testing.T, c cluster.Config) {
				want := map[uint64]string{1: "127.0.0.1:7601", 2: "127.0.0.1:7602", 3: "127.0.0.1:7603"}
				clients := map[uint64]string{1: "127.0.0.1:7501", 2: "127.0.0.1:7502", 3: "127.0.0.1:7503"}
				if c.NodeID != 2 || c.ClusterID != "c1" || c.Listen != "127.0.0.1:7502" || c.DataDir != "/tmp/n2" || !maps.Equal(c.Peers, want) || !maps.Equal(c.Clients, clients) {
					t.Errorf("config %+v", c)
				}
				if c.PeerListen != "127.0.0.1:7602" || c.Advertise != "" || c.PeerAdvertise != "" {
					t.Errorf("peer listen %q, advertise %q, peer advertise %q", c.PeerListen, c.Advertise, c.PeerAdvertise)
				}
				if c.Range != (wire.Range{Start: 1 << 63}) {
					t.Errorf("range %v", c.Range)
				}
				if c.PID != os.Getpid() || c.Logger == nil {
					t.Errorf("pid %d logger %v", c.PID, c.Logger)
				}
			}},
		{name: "gossip advertised", args: append(base, "--range", "0-1", "--gossip", "0.0.0.0:7946", "--gossip-advertise", "node-2.cleave:7946"),
			check: func(t *testing.T, c cluster.Config) {
				if c.Gossip != "0.0.0.0:7946" || c.GossipAdvertise != "node-2.cleave:7946" {
					t.Errorf("gossip %q advertised as %q", c.Gossip, c.GossipAdvertise)
				}
			}},
		{name: "no pid", args: append(base, "--range", "0-9223372036854775808"),
			check: func(t *testing.T, c cluster.Config) {
				if c.PID != 0 || c.Range != (wire.Range{End: 1 << 63}) {
					t.Errorf("pid %d range %v", c.PID, c.Range)
				}
				if c.MemoryLimit != 224<<20 {
					t.Errorf("default memory limit %d, want 224 MiB", c.MemoryLimit)
				}
				if c.Pprof {
					t.Errorf("pprof on by default")
				}
			}},
		{name: "pprof", args: append(base, "--range", "0-1", "--http", "127.0.0.1:0", "--pprof"),
			check: func(t *testing.T, c cluster.Config) {
				if !c.Pprof || c.HTTP != "127.0.0.1:0" {
					t.Errorf("http %q pprof %v", c.HTTP, c.Pprof)
				}
			}},
		{name: "memory limit", args: append(base, "--range", "0-1", "--memory-limit", "1GiB"),
			check: func(t *testing.T, c cluster.Config) {
				if c.MemoryLimit != 1<<30 {
					t.Errorf("memory limit %d", c.MemoryLimit)
				}
			}},
		{name: "no memory limit", args: append(base, "--range", "0-1", "--memory-limit", "0"),
			check: func(t *testing.T, c cluster.Config) {
				if c.MemoryLimit != 0 {
					t.Errorf("memory limit %d", c.MemoryLimit)
				}
			}},
		{name: "advertise", args: append(base, "--range", "0-1", "--peer-listen", "0.0.0.0:7702", "--advertise", "10.0.0.2:7502", "--peer-advertise", "10.0.0.2:7702"),
			check: func(t *testing.T, c cluster.Config) {
				if c.PeerListen != "0.0.0.0:7702" || c.Advertise != "10.0.0.2:7502" || c.PeerAdvertise != "10.0.0.2:7702" {
					t.Errorf("peer listen %q, advertise %q, peer advertise %q", c.PeerListen, c.Advertise, c.PeerAdvertise)
				}
			}},
		{name: "one port for both planes", args: []string{"--id", "1", "--cluster", "c1", "--listen", "127.0.0.1:7501", "--peers", "1=127.0.0.1:7501", "--data", "d", "--range", "0-1"},
			wantErr: "the two planes need separate ports"},
		{name: "bad memory limit", args: append(base, "--range", "0-1", "--memory-limit", "lots"), wantErr: `--memory-limit: "lots" is not a size`},
		{name: "min free space", args: append(base, "--range", "0-1", "--min-free-space", "64MiB"),
			check: func(t *testing.T, c cluster.Config) {
				if c.MinFreeBytes != 64<<20 {
					t.Errorf("min free bytes %d", c.MinFreeBytes)
				}
			}},
		{name: "default min free space", args: append(base, "--range", "0-1"),
			check: func(t *testing.T, c cluster.Config) {
				if c.MinFreeBytes != 0 {
					t.Errorf("default min free bytes %d, want 0 (the default rule)", c.MinFreeBytes)
				}
			}},
		{name: "no min free space", args: append(base, "--range", "0-1", "--min-free-space", "0"),
			check: func(t *testing.T, c cluster.Config) {
				if c.MinFreeBytes >= 0 {
					t.Errorf("min free bytes %d, want negative (off)", c.MinFreeBytes)
				}
			}},
		{name: "bad min free space", args: append(base, "--range", "0-1", "--min-free-space", "lots"), wantErr: `--min-free-space: "lots" is not a size`},
		{name: "bad peer id", args: []string{"--id", "1", "--cluster", "c1", "--listen", ":7501", "--peers", "1=:7501,x=:7502", "--data", "d", "--range", "0-1"},
			wantErr: `--peers: peer "x": id must be a number`},
		{name: "self missing", args: []string{"--id", "4", "--cluster", "c1", "--listen", ":7501", "--peers", "1=:7501", "--data", "d", "--range", "0-1"},
			wantErr: "--peers: does not list this node (--id 4)"},
		{name: "bad range", args: append(base, "--range", "10-5"), wantErr: `--range: range "10-5": end must be greater than start`},
		{name: "missing range", args: base, wantErr: "--range is required (or set CLEAVE_RANGE)"},
		{name: "bad level", args: append(base, "--range", "0-1", "--log-level", "loud"), wantErr: `--log-level "loud"`},
		{name: "bad log format", args: append(base, "--range", "0-1", "--log-format", "xml"), wantErr: `--log-format "xml": want text or json`},
		{name: "args", args: append(base, "--range", "0-1", "extra"), wantErr: "unknown command"},
	}
	runFlagCases(t, newNodeCmd, tests, func(t *testing.T, name string, err error) {
		var ue usageError
		if name != "args" && !errors.As(err, &ue) {
			t.Errorf("error %v is not a usage error (exit 2)", err)
		}
	})
}

func TestNodeFlagsFromEnv(t *testing.T) {
	t.Setenv("CLEAVE_DATA", "/from/env")
	t.Setenv("CLEAVE_RANGE", "0-18446744073709551616")
	t.Setenv("CLEAVE_ID", "1")
	t.Setenv("CLEAVE_INSECURE_PEER", "true")
	var got cluster.Config
	err := execute(newNodeCmd(func(_ context.Context, c cluster.Config) error { got = c; return nil }),
		"--id", "3", "--cluster", "c9", "--listen", ":7503", "--peers", "3=:7503/:7603")
	if err != nil {
		t.Fatal(err)
	}
	if got.DataDir != "/from/env" || got.Range != (wire.Range{}) || got.NodeID != 3 {
		t.Fatalf("flags must beat env beat defaults: %+v", got)
	}
}

func TestTokenFlagBeatsEnv(t *testing.T) {
	t.Setenv("CLEAVE_TOKEN", "from-env")
	args := []string{"node", "--id", "1", "--cluster", "c1", "--listen", ":7501", "--peers", "1=:7501/:7601", "--data", "d", "--range", "0-1", "--insecure-peer"}
	for _, tt := range []struct {
		extra []string
		want  string
	}{{nil, "from-env"}, {[]string{"--token", "from-flag"}, "from-flag"}} {
		root := &cobra.Command{Use: "cleave"}
		root.PersistentFlags().String("token", "", "")
		var got cluster.Config
		root.AddCommand(newNodeCmd(func(_ context.Context, c cluster.Config) error { got = c; return nil }))
		if err := execute(root, append(args, tt.extra...)...); err != nil {
			t.Fatal(err)
		}
		if got.Token != tt.want {
			t.Errorf("token %q, want %q", got.Token, tt.want)
		}
	}
}

func TestRouterFlags(t *testing.T) {
	c1 := "c1=1@127.0.0.1:7501,2@127.0.0.1:7502,3@127.0.0.1:7503"
	c2 := "c2=4@127.0.0.1:7504,5@127.0.0.1:7505,6@127.0.0.1:7506"
	tests := []flagCase[router.Config]{
		{name: "two clusters", args: []string{"--id", "r1", "--listen", "127.0.0.1:7499", "--data", "/tmp/r", "--cluster", c1, "--cluster", c2},
			check: func(t *testing.T, c router.Config) {
				if c.ID != "r1" || c.Listen != "127.0.0.1:7499" || c.DataDir != "/tmp/r" || c.Bootstrap == nil {
					t.Fatalf("config %+v", c)
				}
				b := c.Bootstrap
				if len(b.Clusters) != 2 || b.Clusters[1].Members[0] != (wire.Member{ID: 4, Addr: "127.0.0.1:7504"}) {
					t.Errorf("bootstrap clusters %+v", b.Clusters)
				}
				if len(b.Ranges) != 2 || b.Ranges[0].Cluster != "c1" || b.Ranges[1].Range != (wire.Range{Start: 1 << 63}) {
					t.Errorf("bootstrap ranges %+v", b.Ranges)
				}
			}},
		{name: "table on disk", args: []string{"--data", "/tmp/r"},
			check: func(t *testing.T, c router.Config) {
				if c.Bootstrap != nil || c.Listen != up.DefaultListen || c.Pprof {
					t.Errorf("config %+v", c)
				}
			}},
		{name: "pprof", args: []string{"--data", "/tmp/r", "--http", "127.0.0.1:0", "--pprof"},
			check: func(t *testing.T, c router.Config) {
				if !c.Pprof || c.HTTP != "127.0.0.1:0" {
					t.Errorf("http %q pprof %v", c.HTTP, c.Pprof)
				}
			}},
		{name: "bad member", args: []string{"--data", "/tmp/r", "--cluster", "c1=1@:7501,x@:7502"},
			wantErr: `--cluster: cluster "c1": member "x@:7502": id must be a number`},
		{name: "meta group", args: []string{"--data", "/tmp/r", "--listen", "127.0.0.1:7499", "--raft-id", "2", "--advertise", "10.0.0.2:7499",
			"--peers", "1=127.0.0.1:7400/127.0.0.1:7410,2=127.0.0.1:7499/127.0.0.1:7509", "--cluster", "c1=1@127.0.0.1:7501/127.0.0.1:7601"},
			check: func(t *testing.T, c router.Config) {
				if c.PeerListen != "127.0.0.1:7509" || c.Advertise != "10.0.0.2:7499" || c.Meta == nil || c.Meta.Peers[1] != "127.0.0.1:7400/127.0.0.1:7410" {
					t.Errorf("peer listen %q, advertise %q, meta %+v", c.PeerListen, c.Advertise, c.Meta)
				}
				if m := c.Bootstrap.Clusters[0].Members[0]; m != (wire.Member{ID: 1, Addr: "127.0.0.1:7501", PeerAddr: "127.0.0.1:7601"}) {
					t.Errorf("member %+v", m)
				}
			}},
		{name: "joining the meta group", args: []string{"--data", "/tmp/r", "--listen", "127.0.0.1:7499", "--raft-id", "4", "--join",
			"--peers", "1=127.0.0.1:7400/127.0.0.1:7410,4=127.0.0.1:7499/127.0.0.1:7509", "--gossip", "0.0.0.0:7946", "--gossip-advertise", "10.0.0.4:7946"},
			check: func(t *testing.T, c router.Config) {
				if c.Meta == nil || !c.Meta.Join || c.Bootstrap != nil {
					t.Errorf("meta %+v bootstrap %v: want a joining member and no bootstrap table", c.Meta, c.Bootstrap)
				}
				if c.Gossip != "0.0.0.0:7946" || c.GossipAdvertise != "10.0.0.4:7946" {
					t.Errorf("gossip %q advertised as %q", c.Gossip, c.GossipAdvertise)
				}
			}},
		{name: "join without peers", args: []string{"--data", "/tmp/r", "--join"}, wantErr: "--join needs --peers"},
		{name: "meta group on one port", args: []string{"--data", "/tmp/r", "--listen", "127.0.0.1:7499", "--raft-id", "1", "--peers", "1=127.0.0.1:7499"},
			wantErr: "the two planes need separate ports"},
		{name: "twice", args: []string{"--data", "/tmp/r", "--cluster", c1, "--cluster", c1}, wantErr: `cluster "c1": given twice`},
		{name: "no data", args: []string{"--cluster", c1}, wantErr: "--data is required"},
	}
	runFlagCases(t, newRouterCmd, tests, nil)
}

func TestUpFlags(t *testing.T) {
	t.Setenv("CLEAVE_DATA", "/env/data")
	t.Setenv("CLEAVE_CLUSTERS", "4")
	tests := []struct {
		name    string
		args    []string
		want    up.Config
		wantErr string
	}{
		{name: "env", args: nil, want: up.Config{DataDir: "/env/data", Clusters: 4}},
		{name: "flags win", args: []string{"--data", "d", "--listen", "127.0.0.1:7499", "--clusters", "1", "--replicas", "5"},
			want: up.Config{DataDir: "d", Listen: "127.0.0.1:7499", Clusters: 1, Replicas: 5}},
		{name: "zero clusters", args: []string{"--clusters", "0"}, wantErr: "--clusters 0: want at least 1"},
		{name: "bad listen", args: []string{"--listen", "nowhere"}, wantErr: `--listen: address "nowhere"`},
		{name: "json logs", args: []string{"--data", "d", "--log-format", "json"}, want: up.Config{DataDir: "d", Clusters: 4, LogFormat: "json"}},
		{name: "bad log format", args: []string{"--log-format", "xml"}, wantErr: `--log-format "xml": want text or json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got up.Config
			err := execute(newUpCmd(func(_ context.Context, c up.Config) error { got = c; return nil }), tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.LogFormat == "" {
				tt.want.LogFormat = "text"
			}
			if got.DataDir != tt.want.DataDir || got.Listen != tt.want.Listen || got.Clusters != tt.want.Clusters || got.Replicas != tt.want.Replicas || got.LogFormat != tt.want.LogFormat {
				t.Errorf("config %+v, want %+v", got, tt.want)
			}
			if got.Stdout == nil || got.Logger == nil {
				t.Error("Stdout or Logger not set")
			}
		})
	}
}

func TestUpDefaults(t *testing.T) {
	var got up.Config
	if err := execute(newUpCmd(func(_ context.Context, c up.Config) error { got = c; return nil })); err != nil {
		t.Fatal(err)
	}
	if got.DataDir != "./data" || got.Listen != "" || got.Clusters != 0 || got.Replicas != 0 {
		t.Fatalf("defaults %+v", got)
	}
}
