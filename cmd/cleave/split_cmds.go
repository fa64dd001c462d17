package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/up"
	"github.com/cleavefs/cleave/wire"
)

// splitTimeout is the default deadline of `cleave split`: a split copies
// the source's state to the new nodes, which takes longer than a file
// operation. --timeout or CLEAVE_TIMEOUT override it.
const splitTimeout = 30 * time.Minute

// splitPhases are the phases of a split that completes, in order.
var splitPhases = []client.SplitPhase{client.SplitPlanned, client.SplitLearnersAdded, client.SplitCaughtUp, client.SplitCommitted, client.SplitTableUpdated, client.SplitCleaned}

type splitOpts struct {
	newCluster string
	at         string
	nodes      string
	data       string
	noWait     bool
}

func splitCmd() *cobra.Command {
	var o splitOpts
	cmd := &cobra.Command{
		Use:   "split CLUSTER [--new-cluster ID] [--at POINT] [--nodes ID=HOST:PORT,...] [--data DIR]",
		Short: "Split a cluster's hash range in half into a new cluster",
		Long: `Split CLUSTER: a new cluster takes the upper half of its range (or [POINT,
end) with --at), online (docs/split.md). The command reports the
split's phases as the routers record them (planned, learners-added,
caught-up, split-committed, table-updated, cleaned) and returns when it is
done; it fails if the split is abandoned.

The new cluster's nodes must run before the split starts:
  - under 'cleave up', nothing to do: the command asks the supervisor on
    --data (default ./data, env CLEAVE_DATA) through its admin socket
    DIR/up.sock; the supervisor picks ids and ports, starts and supervises
    the new nodes and records them in DIR/up.json;
  - elsewhere, start them yourself with 'cleave node --join --cluster NEWID
    --peers ...' (each node, the new ones and the source's members) and name
    them with --nodes ID=CLIENT_HOST:PORT/PEER_HOST:PORT,... and --new-cluster.

With --no-wait it returns once the split is planned. -o json prints the
final split record.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			spec := client.SplitSpec{Cluster: a[0], NewCluster: o.newCluster}
			if o.at != "" {
				at, err := strconv.ParseUint(o.at, 0, 64)
				if err != nil || at == 0 {
					return usagef("--at %q: want a nonzero point of the ring, decimal or 0x hex", o.at)
				}
				spec.At = at
			}
			if o.nodes != "" {
				if o.newCluster == "" {
					return usagef("--nodes needs --new-cluster")
				}
				peers, err := parsePeers(o.nodes)
				if err != nil {
					return usagef("--nodes: %v", err)
				}
				for id, addrs := range peers {
					// CLIENT/PEER: the driver reaches the node on its
					// peer listener, clients on the other.
					addr, peer := wire.SplitAddrs(addrs)
					m := client.Member{ID: id, Addr: addr}
					if peer != addr {
						m.PeerAddr = peer
					}
					spec.Nodes = append(spec.Nodes, m)
				}
				slices.SortFunc(spec.Nodes, func(x, y client.Member) int { return cmp.Compare(x.ID, y.ID) })
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client, g globals) error {
				return runSplit(ctx, cmd.OutOrStdout(), c, g, spec, o)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.newCluster, "new-cluster", "", "id of the new cluster (default: the next cN, chosen by cleave up)")
	f.StringVar(&o.at, "at", "", "cut point of the ring, decimal or 0x hex (default: the middle of the cluster's range)")
	f.StringVar(&o.nodes, "nodes", "", "the new cluster's nodes, already started with --join, as ID=CLIENT_HOST:PORT/PEER_HOST:PORT,... (default: ask cleave up to start them)")
	f.StringVar(&o.data, "data", "./data", "data directory of the cleave up to ask for new nodes")
	f.BoolVar(&o.noWait, "no-wait", false, "return once the split is planned")
	// A split moves a range's data: its own --timeout, with a longer default,
	// shadows the global one.
	f.Duration("timeout", splitTimeout, "deadline for the whole split (env CLEAVE_TIMEOUT)")
	return cmd
}

func runSplit(ctx context.Context, w io.Writer, c *client.Client, g globals, spec client.SplitSpec, o splitOpts) error {
	start := time.Now()
	var rec *client.SplitStatus
	var err error
	if len(spec.Nodes) > 0 {
		rec, err = c.Split(ctx, spec)
	} else {
		rec, err = up.RequestSplit(ctx, o.data, up.SplitRequest{Cluster: spec.Cluster, NewCluster: spec.NewCluster, At: spec.At})
		if errors.Is(err, up.ErrNoSupervisor) {
			return fmt.Errorf("%w: run this next to 'cleave up' (--data DIR), or start the new nodes yourself and pass --nodes and --new-cluster", err)
		}
	}
	if err != nil {
		return err
	}
	if !g.json {
		fmt.Fprintf(w, "split %d: %s [%s, %s) at %s into %s, nodes %s\n", rec.ID, rec.Cluster, hexPoint(rec.Range.Start), hexEnd(rec.Range.End), hexPoint(rec.At), rec.NewCluster, members(rec.Nodes))
	}
	if o.noWait {
		if g.json {
			return writeJSON(w, rec)
		}
		fmt.Fprintf(w, "  %-16s %6.1fs\n", rec.Phase, time.Since(start).Seconds())
		return nil
	}
	final, err := followSplit(ctx, c, rec.ID, func(phase client.SplitPhase, s client.SplitStatus) {
		if !g.json {
			fmt.Fprintf(w, "  %-16s %6.1fs\n", phase, time.Since(start).Seconds())
		}
	})
	if err != nil {
		return err
	}
	if final.Phase == client.SplitAbandoned {
		return &client.Error{Code: client.CodeConflict, Op: "split", Message: fmt.Sprintf("split %d of %s was abandoned: %s", final.ID, final.Cluster, orDash(final.Error))}
	}
	if g.json {
		return writeJSON(w, final)
	}
	fmt.Fprintf(w, "done in %.1fs: %s owns [%s, %s), %s owns [%s, %s) (routing table version %d)\n", time.Since(start).Seconds(),
		final.Cluster, hexPoint(final.Range.Start), hexPoint(final.At), final.NewCluster, hexPoint(final.At), hexEnd(final.Range.End), final.Version)
	return nil
}

// followSplit polls the routers until split id is done, calling phase for
// every phase it reaches, in order: a phase passed between two polls is
// reported when the next one is seen.
func followSplit(ctx context.Context, c *client.Client, id uint64, phase func(client.SplitPhase, client.SplitStatus)) (client.SplitStatus, error) {
	reported := -1
	var lastErr error
	for {
		splits, err := c.Splits(ctx)
		if err == nil {
			i := slices.IndexFunc(splits, func(s client.SplitStatus) bool { return s.ID == id })
			if i < 0 {
				lastErr = fmt.Errorf("split %d is not recorded on the router asked", id)
			} else {
				s := splits[i]
				if s.Phase == client.SplitAbandoned {
					phase(s.Phase, s)
					return s, nil
				}
				if j := slices.Index(splitPhases, s.Phase); j > reported {
					for k := reported + 1; k <= j; k++ {
						phase(splitPhases[k], s)
					}
					reported = j
				}
				if s.Phase == client.SplitCleaned {
					return s, nil
				}
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return client.SplitStatus{}, fmt.Errorf("split %d not done (last phase %s, last error %v): %w", id, phaseName(reported), lastErr, ctx.Err())
		case <-time.After(100 * time.Millisecond): // poll interval
		}
	}
}

func phaseName(i int) string {
	if i < 0 {
		return "none seen"
	}
	return string(splitPhases[i])
}

func hexPoint(p uint64) string { return fmt.Sprintf("%#016x", p) }

func hexEnd(p uint64) string {
	if p == 0 {
		return "2^64"
	}
	return hexPoint(p)
}

func members(ms []client.Member) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = strconv.FormatUint(m.ID, 10) + "=" + m.Addr
	}
	return strings.Join(parts, ",")
}

// writeSplitsTable prints the splits in progress and the last few done.
func writeSplitsTable(w io.Writer, splits []client.SplitStatus) {
	const keepDone = 4
	var show []client.SplitStatus
	done := 0
	for i := len(splits) - 1; i >= 0; i-- {
		s := splits[i]
		if s.Phase.Final() {
			if done >= keepDone {
				continue
			}
			done++
		}
		show = append(show, s)
	}
	if len(show) == 0 {
		return
	}
	slices.Reverse(show)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SPLIT\tCLUSTER\tNEW\tAT\tPHASE\tVERSION\tERROR")
	for _, s := range show {
		v := "-"
		if s.Version != 0 {
			v = strconv.FormatUint(s.Version, 10)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Cluster, s.NewCluster, hexPoint(s.At), s.Phase, v, orDash(s.Error))
	}
	tw.Flush()
}
