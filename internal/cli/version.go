package cli

import (
	"fmt"
	"io"

	"github.com/agentcloud/agentcloud/internal/version"
	"github.com/spf13/cobra"
)

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := version.Get()
			return g.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "agentcloud %s", v.Version)
				if v.Commit != "" {
					fmt.Fprintf(w, " (%s)", v.Commit)
				}
				fmt.Fprintf(w, " %s\n", v.GoVersion)
			})
		},
	}
}
