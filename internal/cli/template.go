package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
)

func newTemplateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "template", Aliases: []string{"templates"},
		Short: "Manage sandbox templates built from images (OCI archives, directories)"}
	cmd.AddCommand(newTemplateCreateCmd(g), newTemplateListCmd(g), newTemplateRmCmd(g))
	return cmd
}

func newTemplateCreateCmd(g *globals) *cobra.Command {
	var fromDir, fromOCI, fromDebian, tier string
	var packages, run, egress []string
	cmd := &cobra.Command{
		Use:   "create NAME (--from-oci FILE.tar | --from-dir ROOTFS | --from-debian SUITE [--packages a,b]) [--run CMD]... [--egress HOST]...",
		Short: "Create an image template: each sandbox of it runs on its own writable overlay of the image",
		Long: "Create an image template from a docker save archive or an OCI image layout tar (--from-oci),\n" +
			"or from a root filesystem directory on this machine (--from-dir, uploaded as one layer),\n" +
			"or have the daemon build a Debian rootfs with mmdebstrap from its apt mirror (--from-debian).\n" +
			"Build steps (--run, repeatable, in order) run as root of a build sandbox on it (--tier process,\n" +
			"the default where the node runs it, or gvisor);\n" +
			"what they write becomes the template's top layer. The first failing step stops the build.\n" +
			"The steps reach only the hosts given with --egress (through the egress proxy), none without it.\n" +
			"Administrators only. Use it with: agentcloud sandbox create --template NAME",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := 0
			for _, v := range []string{fromDir, fromOCI, fromDebian} {
				if v != "" {
					n++
				}
			}
			if n != 1 {
				return errors.New("give exactly one of --from-oci FILE.tar, --from-dir ROOTFS or --from-debian SUITE")
			}
			if len(packages) > 0 && fromDebian == "" {
				return errors.New("--packages goes with --from-debian SUITE")
			}
			if len(egress) > 0 && len(run) == 0 {
				return errors.New("--egress is the hosts the build steps may reach: give --run CMD too, or leave --egress out")
			}
			if tier != "" && len(run) == 0 {
				return errors.New("--tier is where the build steps run: give --run CMD too, or leave --tier out")
			}
			b := client.Build{Run: run, Egress: egress, Tier: tier}
			c, err := g.client()
			if err != nil {
				return err
			}
			var t *api.Template
			switch {
			case fromDebian != "":
				t, err = c.CreateTemplateFromDebian(cmd.Context(), args[0], fromDebian, packages, b)
			case fromDir != "":
				if fi, err := os.Stat(fromDir); err != nil || !fi.IsDir() {
					return fmt.Errorf("--from-dir %s: not a directory", fromDir)
				}
				t, err = c.CreateTemplateFromDir(cmd.Context(), args[0], fromDir, b)
			default:
				f, ferr := os.Open(fromOCI)
				if ferr != nil {
					return fmt.Errorf("--from-oci: %w", ferr)
				}
				defer f.Close()
				t, err = c.CreateTemplate(cmd.Context(), args[0], "oci", f, b)
			}
			if err != nil {
				return err
			}
			return g.print(t, func(w io.Writer) {
				fmt.Fprintf(w, "template %s: %d layer(s), %s\n", t.Name, len(t.Layers), humanBytes(t.Bytes))
			})
		},
	}
	cmd.Flags().StringVar(&fromOCI, "from-oci", "", "a docker save archive or an OCI image layout packed in a tar")
	cmd.Flags().StringVar(&fromDir, "from-dir", "", "a root filesystem directory")
	cmd.Flags().StringVar(&fromDebian, "from-debian", "", "a Debian suite the daemon builds a rootfs of (mmdebstrap)")
	cmd.Flags().StringSliceVar(&packages, "packages", nil, "with --from-debian: packages to include, comma-separated")
	cmd.Flags().StringArrayVar(&run, "run", nil, "a build step: a shell command run as root of a build sandbox on the template (repeatable, in order)")
	cmd.Flags().StringVar(&tier, "tier", "", "with --run: the build sandbox's tier, process or gvisor (default: process where this node runs it)")
	cmd.Flags().StringArrayVar(&egress, "egress", nil, "with --run: a host pattern the build steps may reach through the egress proxy (repeatable; pypi.org, *.example.com, host:port); without it they reach no host")
	return cmd
}

func newTemplateListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List sandbox templates", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ts, err := c.Templates(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(ts, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TEMPLATE\tSOURCE\tLAYERS\tSIZE\tCREATED")
				for _, t := range ts {
					created := "-"
					if !t.Created.IsZero() {
						created = t.Created.Local().Format(time.DateTime)
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", t.Name, t.Source, len(t.Layers), humanBytes(t.Bytes), created)
				}
				tw.Flush()
			})
		},
	}
}

func newTemplateRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "rm NAME...", Aliases: []string{"delete"}, Short: "Delete image templates (refused while sandboxes use them)",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			return eachName(cmd.Context(), args, c.DeleteTemplate)
		},
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// eachName calls fn for every name, going on past failures, and returns
// the failures joined, each named.
func eachName(ctx context.Context, names []string, fn func(context.Context, string) error) error {
	var errs []string
	for _, n := range names {
		if err := fn(ctx, n); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", n, err))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}
