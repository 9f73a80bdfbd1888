package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newApprovalsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "approvals", Short: "List, approve and deny requests waiting for a person"}
	var status string
	list := &cobra.Command{
		Use: "list [--status pending]", Short: "List approvals you may resolve", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			as, err := c.Approvals(cmd.Context(), status)
			if err != nil {
				return err
			}
			return g.print(as, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSTATUS\tCREATED\tPRINCIPAL\tACTION\tRESOURCE\tREASON")
				for _, a := range as {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Status, a.Created.Local().Format(time.DateTime),
						a.Principal, a.Action, a.Resource, a.Reason)
				}
				tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&status, "status", "pending", "pending, approved, denied, used, or empty for all")
	resolve := func(verb string, approve bool) *cobra.Command {
		return &cobra.Command{
			Use: verb + " ID", Short: map[bool]string{true: "Approve a request: its next retry goes through once", false: "Deny a request"}[approve],
			Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := g.client()
				if err != nil {
					return err
				}
				a, err := c.ResolveApproval(cmd.Context(), args[0], approve)
				if err != nil {
					return err
				}
				return g.print(a, func(w io.Writer) {
					fmt.Fprintf(w, "%s %s (%s %s for %s)\n", a.ID, a.Status, a.Action, a.Resource, a.Principal)
				})
			},
		}
	}
	cmd.AddCommand(list, resolve("approve", true), resolve("deny", false))
	return cmd
}
