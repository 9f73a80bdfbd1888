package cli

import "github.com/spf13/cobra"

func newBenchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a daemon: starts its own in a temporary data dir unless --server is given",
	}
	cmd.AddCommand(newBenchSandboxCmd(g), newBenchSessionsCmd(g), newBenchAuthzCmd(g), newBenchToolsCmd(g))
	return cmd
}
