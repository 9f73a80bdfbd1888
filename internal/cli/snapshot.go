package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/spf13/cobra"
)

// Sandbox snapshots: agentcloud sandbox snapshot|snapshots|restore|snapshot-rm.
func newSnapshotCmds(g *globals) []*cobra.Command {
	snap := &cobra.Command{
		Use: "snapshot ID", Short: "Save a sandbox's files and, on the gVisor tier, its memory; print the snapshot id",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.SnapshotSandbox(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(s, func(w io.Writer) { printSnapshots(w, []api.Snapshot{*s}) })
		},
	}
	list := &cobra.Command{
		Use: "snapshots", Short: "List sandbox snapshots", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ss, err := c.Snapshots(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(api.SnapshotList{Snapshots: ss}, func(w io.Writer) { printSnapshots(w, ss) })
		},
	}
	restore := sandboxOpCmd(g, "restore", "Make a new sandbox from a snapshot (its files, and its memory when saved)",
		(*client.Client).RestoreSnapshot)
	restore.Use = "restore SNAPSHOT"
	rm := &cobra.Command{
		Use: "snapshot-rm SNAPSHOT...", Short: "Delete snapshots", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			for _, id := range args {
				if err := c.DeleteSnapshot(cmd.Context(), id); err != nil {
					return err
				}
			}
			return nil
		},
	}
	return []*cobra.Command{snap, list, restore, rm}
}

func printSnapshots(w io.Writer, ss []api.Snapshot) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSANDBOX\tTIER\tMEMORY\tMIB\tNOTE")
	for _, s := range ss {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%d\t%s\n", s.ID, s.Sandbox, s.Tier, s.Memory, s.Bytes>>20, s.Note)
	}
	tw.Flush()
}
