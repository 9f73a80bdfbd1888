package cli

import "github.com/spf13/cobra"

// toolsSubcommands build the subcommands of "agentcloud tools"; each file
// that adds some appends to it from an init function.
var toolsSubcommands []func(*globals) *cobra.Command

func newToolsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "tools", Short: "The toolbox: built-in tools and registered upstream tools"}
	for _, f := range toolsSubcommands {
		cmd.AddCommand(f(g))
	}
	return cmd
}
