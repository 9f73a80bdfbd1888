package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentcloud/agentcloud/api"
)

func newVolumeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "volume", Aliases: []string{"volumes"},
		Short: "Manage named persistent volumes that sandboxes mount (sandbox create --volume NAME:PATH)"}
	cmd.AddCommand(newVolumeCreateCmd(g), newVolumeListCmd(g), newVolumeShowCmd(g), newVolumeRmCmd(g))
	return cmd
}

// volumeFlags parses --volume NAME:PATH[:ro] flags.
func volumeFlags(vs []string) ([]api.SandboxVolume, error) {
	var out []api.SandboxVolume
	for _, v := range vs {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" || len(parts) == 3 && parts[2] != "ro" && parts[2] != "rw" {
			return nil, fmt.Errorf("invalid --volume %q: write it as NAME:PATH or NAME:PATH:ro, e.g. data:/workspace/data", v)
		}
		out = append(out, api.SandboxVolume{Name: parts[0], Path: parts[1], ReadOnly: len(parts) == 3 && parts[2] == "ro"})
	}
	return out, nil
}

func newVolumeCreateCmd(g *globals) *cobra.Command {
	var sizeMB int64
	cmd := &cobra.Command{
		Use: "create NAME", Short: "Create a volume owned by you (its files outlive every sandbox that mounts it)",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if sizeMB < 0 {
				return fmt.Errorf("invalid --size-mb %d: give 0 (the server's maximum) or more", sizeMB)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			v, err := c.CreateVolume(cmd.Context(), args[0], sizeMB)
			if err != nil {
				return err
			}
			return g.print(v, func(w io.Writer) { fmt.Fprintf(w, "volume %s: %s\n", v.Name, humanBytes(v.LimitBytes)) })
		},
	}
	cmd.Flags().Int64Var(&sizeMB, "size-mb", 0, "quota in MiB (0 = the server's maximum, volumes.max_bytes)")
	return cmd
}

func printVolumes(w io.Writer, vs []api.Volume) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLUME\tUSED\tSIZE\tMOUNTED BY\tCREATED")
	for _, v := range vs {
		by := strings.Join(v.MountedBy, ",")
		if by == "" {
			by = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Name, humanBytes(v.UsedBytes), humanBytes(v.LimitBytes), by, v.Created.Local().Format(time.DateTime))
	}
	tw.Flush()
}

func newVolumeListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List your volumes", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			vs, err := c.Volumes(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(vs, func(w io.Writer) { printVolumes(w, vs) })
		},
	}
}

func newVolumeShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "show NAME", Aliases: []string{"get"}, Short: "Show a volume: its use and the sandboxes that mount it", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			v, err := c.Volume(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(v, func(w io.Writer) { printVolumes(w, []api.Volume{*v}) })
		},
	}
}

func newVolumeRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "rm NAME...", Aliases: []string{"delete"}, Short: "Delete volumes and their files (refused while sandboxes mount them)",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			return eachName(cmd.Context(), args, c.DeleteVolume)
		},
	}
}
