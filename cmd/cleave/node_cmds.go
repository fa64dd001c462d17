package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/wire"
)

// addNodeAdminCommands adds the membership verbs under `cleave node`: add,
// promote, remove and replace. They talk to routers like the client verbs;
// a router passes each on to the cluster's leader and records the
// cluster's voters in the routing table (docs/robustness.md).
func addNodeAdminCommands(node *cobra.Command) {
	node.AddCommand(nodeAddCmd(), nodePromoteCmd(), nodeRemoveCmd(), nodeReplaceCmd())
}

// memberFlags are the flags the membership verbs share.
type memberFlags struct {
	cluster string
	id      uint64
	addr    string
	peer    string
	dead    uint64
}

func (m *memberFlags) register(cmd *cobra.Command, addr, dead bool) {
	f := cmd.Flags()
	f.StringVar(&m.cluster, "cluster", "", "the cluster, e.g. c1 (required)")
	f.Uint64Var(&m.id, "id", 0, "the node's raft id (required)")
	if addr {
		f.StringVar(&m.addr, "addr", "", "the node's client address, HOST:PORT: its --listen or --advertise (required)")
		f.StringVar(&m.peer, "peer-addr", "", "the node's peer address, HOST:PORT: its --peer-listen or --peer-advertise (required)")
	}
	if dead {
		f.Uint64Var(&m.dead, "dead", 0, "raft id of the member to replace (required)")
	}
}

func (m *memberFlags) check(cmd *cobra.Command, names ...string) error {
	return requireUsage(cmd, append([]string{"cluster", "id"}, names...)...)
}

// requireUsage is the usage error of an admin verb run without one of
// names (the first missing one), or nil.
func requireUsage(cmd *cobra.Command, names ...string) error {
	for _, n := range names {
		if !cmd.Flags().Changed(n) {
			return usagef("--%s is required", n)
		}
	}
	return nil
}

// memberRun returns the RunE of a membership verb: check flags, run op,
// print the leader's member list.
func memberRun(m *memberFlags, need []string, op func(ctx context.Context, c *client.Client, out io.Writer, g globals) (*client.NodeStatus, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if err := m.check(cmd, need...); err != nil {
			return err
		}
		return withClient(cmd, func(ctx context.Context, c *client.Client, g globals) error {
			st, err := op(ctx, c, cmd.ErrOrStderr(), g)
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			return writeMembersTable(cmd.OutOrStdout(), st)
		})
	}
}

func nodeAddCmd() *cobra.Command {
	var m memberFlags
	cmd := &cobra.Command{
		Use:   "add --cluster C --id N --addr HOST:PORT --peer-addr HOST:PORT",
		Short: "Add a node to a cluster as a learner",
		Long: `Add node N, serving clients at --addr and peers at --peer-addr, to cluster C
as a non-voting learner.
Start the node first, with an empty --data and --join, its --peers listing
itself and the cluster's current members; the leader sends it a snapshot
and then the log. Promote it with "cleave node promote" once it is added.`,
		Args: args(cobra.NoArgs),
	}
	m.register(cmd, true, false)
	cmd.RunE = memberRun(&m, []string{"addr", "peer-addr"}, func(ctx context.Context, c *client.Client, _ io.Writer, _ globals) (*client.NodeStatus, error) {
		return c.AddLearner(ctx, m.cluster, m.id, wire.JoinAddrs(m.addr, m.peer))
	})
	return cmd
}

func nodePromoteCmd() *cobra.Command {
	var m memberFlags
	cmd := &cobra.Command{
		Use:   "promote --cluster C --id N",
		Short: "Make a learner a voter once it has caught up",
		Long: `Make learner N of cluster C a voter. The leader waits until the learner
has caught up with its log (within --timeout), then commits the change; the
routing table then lists N among C's members.`,
		Args: args(cobra.NoArgs),
	}
	m.register(cmd, false, false)
	cmd.RunE = memberRun(&m, nil, func(ctx context.Context, c *client.Client, _ io.Writer, _ globals) (*client.NodeStatus, error) {
		return c.Promote(ctx, m.cluster, m.id)
	})
	return cmd
}

func nodeRemoveCmd() *cobra.Command {
	var m memberFlags
	cmd := &cobra.Command{
		Use:   "remove --cluster C --id N",
		Short: "Remove a node from a cluster",
		Long: `Remove node N, voter or learner, from cluster C and from the routing table.
Removing the last voter is refused; removing the leader makes it step down.`,
		Args: args(cobra.NoArgs),
	}
	m.register(cmd, false, false)
	cmd.RunE = memberRun(&m, nil, func(ctx context.Context, c *client.Client, _ io.Writer, _ globals) (*client.NodeStatus, error) {
		return c.RemoveMember(ctx, m.cluster, m.id)
	})
	return cmd
}

func nodeReplaceCmd() *cobra.Command {
	var m memberFlags
	cmd := &cobra.Command{
		Use:   "replace --cluster C --dead ID --id NEWID --addr HOST:PORT --peer-addr HOST:PORT",
		Short: "Replace a dead node with a fresh one",
		Long: `Replace member ID of cluster C with a new node NEWID (clients at --addr,
peers at --peer-addr): add NEWID
as a learner, wait until it has caught up (by snapshot and log), promote it,
then remove ID; the routing table follows each step.

Start the new node first, with a new id, an empty --data and --join:
  cleave node --join --id NEWID --cluster C --listen HOST:PORT \
    --peer-listen PEER_HOST:PORT --data DIR \
    --peers NEWID=HOST:PORT/PEER_HOST:PORT,<current members likewise>
Each step is idempotent: if the command fails part way, run it again.
Steps are reported on stderr.`,
		Args: args(cobra.NoArgs),
	}
	m.register(cmd, true, true)
	cmd.RunE = memberRun(&m, []string{"addr", "peer-addr", "dead"}, func(ctx context.Context, c *client.Client, stderr io.Writer, g globals) (*client.NodeStatus, error) {
		return c.ReplaceNode(ctx, m.cluster, m.dead, m.id, wire.JoinAddrs(m.addr, m.peer), func(step string) {
			if !g.json {
				fmt.Fprintln(stderr, step)
			}
		})
	})
	return cmd
}

// writeMembersTable prints a cluster leader's view of its members.
func writeMembersTable(w io.Writer, st *client.NodeStatus) error {
	fmt.Fprintf(w, "cluster %s, leader %d (%s), commit %d\n\n", st.Cluster, st.ID, st.Addr, st.Commit)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDR\tPEER ADDR\tKIND\tMATCH")
	for _, m := range st.Members {
		kind := "learner"
		if m.Voter {
			kind = "voter"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\n", m.ID, orDash(m.Addr), orDash(m.PeerAddr), kind, m.Match)
	}
	return tw.Flush()
}
