package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cleavefs/cleave/client"
)

// userCmd is `cleave user`: users and their grants, kept by the routers.
// Every verb needs admin on "/" (the deployment's --token, or a user
// granted admin on /).
func userCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage users and their permissions",
		Long: `Manage the users of a deployment. A user authenticates with its token (HELLO,
--token or CLEAVE_TOKEN) and may do what its grants allow: read, write or
admin on a path prefix and every path under it ("/a" covers /a and /a/x,
not /ab). Admin on "/" also allows split, node and user commands. Every
verb here needs admin on "/".`,
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "add NAME",
			Short: "Create a user and print its token (shown only once)",
			Long: `Create user NAME with no grants and print its token, which is shown only
once. -o json prints {"name": NAME, "token": TOKEN}.`,
			Args: args(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, a []string) error {
				return withClient(cmd, func(ctx context.Context, c *client.Client, g globals) error {
					tok, err := c.AddUser(ctx, a[0])
					if err != nil {
						return err
					}
					if g.json {
						return writeJSON(cmd.OutOrStdout(), map[string]string{"name": a[0], "token": tok})
					}
					fmt.Fprintln(cmd.OutOrStdout(), tok)
					fmt.Fprintf(cmd.ErrOrStderr(), "user %s added; its token is shown only once. Grant it permissions with: cleave user grant %s PREFIX read|write|admin\n", a[0], a[0])
					return nil
				})
			},
		},
		&cobra.Command{
			Use:   "rm NAME",
			Short: "Delete a user; its connections lose their rights at once",
			Args:  args(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, a []string) error {
				return withClient(cmd, func(ctx context.Context, c *client.Client, _ globals) error {
					return c.RemoveUser(ctx, a[0])
				})
			},
		},
		&cobra.Command{
			Use:   "grant NAME PREFIX read|write|admin",
			Short: "Give a user a permission on a path prefix (replacing its grant there)",
			Args:  args(cobra.ExactArgs(3)),
			RunE: func(cmd *cobra.Command, a []string) error {
				return withClient(cmd, func(ctx context.Context, c *client.Client, _ globals) error {
					return c.Grant(ctx, a[0], a[1], a[2])
				})
			},
		},
		&cobra.Command{
			Use:   "revoke NAME PREFIX",
			Short: "Take back a user's grant on a path prefix",
			Args:  args(cobra.ExactArgs(2)),
			RunE: func(cmd *cobra.Command, a []string) error {
				return withClient(cmd, func(ctx context.Context, c *client.Client, _ globals) error {
					return c.Revoke(ctx, a[0], a[1])
				})
			},
		},
		&cobra.Command{
			Use:   "list",
			Short: "List users and their grants",
			Long: `List users and their grants, sorted by name. -o json prints
{"users": [{"name": NAME, "grants": [{"prefix": PREFIX, "perm": PERM}]}]}.`,
			Args: args(cobra.NoArgs),
			RunE: func(cmd *cobra.Command, _ []string) error {
				return withClient(cmd, func(ctx context.Context, c *client.Client, g globals) error {
					us, err := c.Users(ctx)
					if err != nil {
						return err
					}
					if g.json {
						for i := range us {
							if us[i].Grants == nil {
								us[i].Grants = []client.Grant{} // "grants": [], never null
							}
						}
						return writeJSON(cmd.OutOrStdout(), struct {
							Users []client.User `json:"users"`
						}{append([]client.User{}, us...)})
					}
					tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "USER\tGRANTS")
					for _, u := range us {
						gs := make([]string, len(u.Grants))
						for i, gr := range u.Grants {
							gs[i] = gr.Perm + " " + gr.Prefix
						}
						fmt.Fprintf(tw, "%s\t%s\n", u.Name, strings.Join(gs, ", "))
					}
					return tw.Flush()
				})
			},
		},
	)
	return cmd
}
