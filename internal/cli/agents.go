package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/spf13/cobra"
)

func newAgentsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "agents", Short: "List deployed agents and their versions, delete agents"}
	cmd.AddCommand(&cobra.Command{
		Use: "delete NAME", Short: "Delete an agent with every version and session (state, snapshots, alarms, logs)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteAgent(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "deleted agent %s\n", args[0])
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use: "end-preview NAME", Short: "End an agent's preview (agentcloud dev): its preview sessions go, production stays", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.EndPreview(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "ended the preview of agent %s\n", args[0])
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List deployed agents", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, err := c.Agents(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(list, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tVERSION\tUPDATED")
				for _, a := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Name, shortDigest(a.Current), a.Updated.Local().Format(time.DateTime))
				}
				tw.Flush()
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use: "versions NAME", Short: "List an agent's versions, oldest first", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			vs, err := c.Versions(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			a, err := c.Agent(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			share := map[string]string{} // which versions serve which share (rollouts)
			if dep, err := c.Deployment(cmd.Context(), args[0]); err == nil {
				for _, v := range dep.Versions {
					if v.Role != api.RoleKept {
						share[v.Version] = fmt.Sprintf("%s %d%%", v.Role, v.Percent)
					}
				}
			}
			return g.print(vs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VERSION\tCREATED\tFILES\tBYTES\tCURRENT\tSERVES")
				for _, v := range vs {
					cur := ""
					if v.Digest == a.Current {
						cur = "*"
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", shortDigest(v.Digest), v.Created.Local().Format(time.DateTime), v.Files, v.Size, cur, share[v.Digest])
				}
				tw.Flush()
			})
		},
	})
	return cmd
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
