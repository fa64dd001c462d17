package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cleavefs/cleave/client"
)

func routesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "routes",
		Short: "Show the routing table: which cluster owns each range of the ring",
		Long: `Show the routing table the router uses: each range of the hash ring with
the cluster that owns it, and each cluster's voting members. -o json
prints {"version", "ranges": [{"range": {"start", "end"}, "cluster"}],
"clusters": [{"id", "members": [{"id", "addr", "peer_addr"}]}]}.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(ctx context.Context, c *client.Client, g globals) error {
				tab, err := c.Table(ctx)
				if err != nil {
					return err
				}
				if g.json {
					if tab.Ranges == nil {
						tab.Ranges = []client.RangeOwner{}
					}
					if tab.Clusters == nil {
						tab.Clusters = []client.ClusterInfo{}
					}
					return writeJSON(cmd.OutOrStdout(), tab)
				}
				return writeRoutesTable(cmd.OutOrStdout(), tab)
			})
		},
	}
}

// writeRoutesTable prints one row per range, with its cluster's members.
func writeRoutesTable(w io.Writer, tab *client.RoutingTable) error {
	fmt.Fprintf(w, "routing table version %d\n\n", tab.Version)
	members := map[string]string{}
	for _, ci := range tab.Clusters {
		ms := make([]string, len(ci.Members))
		for i, m := range ci.Members {
			ms[i] = strconv.FormatUint(m.ID, 10) + "=" + m.Addr
		}
		members[ci.ID] = strings.Join(ms, ",")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RANGE\tCLUSTER\tMEMBERS")
	for _, o := range tab.Ranges {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", escapeControl(o.Range.String()), escapeControl(o.Cluster), escapeControl(members[o.Cluster]))
	}
	return tw.Flush()
}
