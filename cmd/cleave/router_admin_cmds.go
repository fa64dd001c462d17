package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cleavefs/cleave/client"
)

// addRouterAdminCommands adds the verbs that change the routers' own Raft
// group under `cleave router`: add, promote and remove. Like the node
// verbs they talk to any router, which passes them on to the group's
// leader.
func addRouterAdminCommands(r *cobra.Command) {
	r.AddCommand(routerAddCmd(), routerPromoteCmd(), routerRemoveCmd())
}

// routerMemberFlags are the flags the router membership verbs share.
type routerMemberFlags struct {
	id   uint64
	addr string
	peer string
}

// routerMemberRun returns the RunE of a router membership verb: check the
// flags named in need, run op, print the group's routers.
func routerMemberRun(m *routerMemberFlags, need []string, op func(ctx context.Context, c *client.Client) ([]client.RouterStatus, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if err := requireUsage(cmd, append([]string{"raft-id"}, need...)...); err != nil {
			return err
		}
		return withClient(cmd, func(ctx context.Context, c *client.Client, g globals) error {
			rs, err := op(ctx, c)
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(cmd.OutOrStdout(), struct {
					Routers []client.RouterStatus `json:"routers"`
				}{rs})
			}
			return writeRoutersTable(cmd.OutOrStdout(), rs)
		})
	}
}

func (m *routerMemberFlags) register(cmd *cobra.Command, addr bool) {
	f := cmd.Flags()
	f.Uint64Var(&m.id, "raft-id", 0, "the router's member id in the routers' group: its --raft-id (required)")
	if addr {
		f.StringVar(&m.addr, "addr", "", "the router's client address, HOST:PORT: its --listen or --advertise (required)")
		f.StringVar(&m.peer, "peer-addr", "", "the router's peer address, HOST:PORT: its --peer-listen or --peer-advertise (required)")
	}
}

func routerAddCmd() *cobra.Command {
	var m routerMemberFlags
	cmd := &cobra.Command{
		Use:   "add --raft-id N --addr HOST:PORT --peer-addr HOST:PORT",
		Short: "Add a router to the routers' group as a learner",
		Long: `Add router N, serving clients at --addr and peers at --peer-addr, to the
routers' Raft group (the one that keeps the routing table) as a learner.
Start the router first, with an empty --data, --join and --raft-id N, its
--peers listing itself and the current routers; the group's leader sends it
the table. Promote it with "cleave router promote" once it is added.`,
		Args: args(cobra.NoArgs),
	}
	m.register(cmd, true)
	cmd.RunE = routerMemberRun(&m, []string{"addr", "peer-addr"}, func(ctx context.Context, c *client.Client) ([]client.RouterStatus, error) {
		return c.AddRouter(ctx, m.id, m.addr, m.peer)
	})
	return cmd
}

func routerPromoteCmd() *cobra.Command {
	var m routerMemberFlags
	cmd := &cobra.Command{
		Use:   "promote --raft-id N",
		Short: "Make a learner router a voter once it has caught up",
		Long: `Make learner router N a voter of the routers' group. The group's leader waits
until N has caught up with its log (within --timeout), then commits the
change. Keep an odd number of voters: 3 or 5.`,
		Args: args(cobra.NoArgs),
	}
	m.register(cmd, false)
	cmd.RunE = routerMemberRun(&m, nil, func(ctx context.Context, c *client.Client) ([]client.RouterStatus, error) {
		return c.PromoteRouter(ctx, m.id)
	})
	return cmd
}

func routerRemoveCmd() *cobra.Command {
	var m routerMemberFlags
	cmd := &cobra.Command{
		Use:   "remove --raft-id N",
		Short: "Remove a router from the routers' group",
		Long: `Remove router N, voter or learner, from the routers' group. Removing the last
voter is refused; removing the leader makes it step down. Stop the
router's process afterwards.`,
		Args: args(cobra.NoArgs),
	}
	m.register(cmd, false)
	cmd.RunE = routerMemberRun(&m, nil, func(ctx context.Context, c *client.Client) ([]client.RouterStatus, error) {
		return c.RemoveRouter(ctx, m.id)
	})
	return cmd
}

// writeRoutersTable prints the routers' group.
func writeRoutersTable(w io.Writer, rs []client.RouterStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RAFT ID\tADDR\tPEER ADDR")
	for _, r := range rs {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", r.RaftID, orDash(r.Addr), orDash(r.PeerAddr))
	}
	return tw.Flush()
}
