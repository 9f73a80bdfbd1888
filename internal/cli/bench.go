package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

func newBenchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a daemon: starts its own in a temporary data dir unless --server is given",
	}
	cmd.AddCommand(newBenchSandboxCmd(g), newBenchSessionsCmd(g), newBenchAuthzCmd(g), newBenchToolsCmd(g))
	return cmd
}

// printBench prints a benchmark result: one JSON object, the same with
// --json, --output json or neither (its fields are its documentation).
func (g *globals) printBench(res any, asJSON bool) error {
	if asJSON {
		g.output = "json"
	}
	return g.print(res, func(w io.Writer) {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintln(w, string(b))
	})
}
