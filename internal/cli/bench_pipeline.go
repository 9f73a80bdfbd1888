package cli

import (
	"fmt"

	"github.com/agentcloud/agentcloud/internal/bench"
	"github.com/spf13/cobra"
)

func newBenchPipelineCmd(g *globals) *cobra.Command {
	var (
		opts   bench.PipelineOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "pipeline",
		Short: "Benchmark the ledger (durable appends, checkpoints, proofs) and deploys and rollbacks through the pipeline",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Appends < 1 || opts.Appenders < 1 || opts.Deploys < 1 || opts.Rollbacks < 1 {
				return fmt.Errorf("--appends, --appenders, --deploys and --rollbacks must be positive")
			}
			var err error
			if opts.Target, err = g.benchTarget(); err != nil {
				return err
			}
			res, err := bench.Pipeline(cmd.Context(), opts)
			if err != nil {
				return err
			}
			return g.printBench(res, asJSON)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Appends, "appends", 20000, "durable ledger appends (in a store of the benchmark's own)")
	f.IntVar(&opts.Appenders, "appenders", 64, "concurrent appenders")
	f.IntVar(&opts.Deploys, "deploys", 20, "deploys of a small bundle with two passing tests")
	f.IntVar(&opts.Rollbacks, "rollbacks", 20, "rollbacks between its last two versions")
	f.BoolVar(&asJSON, "json", false, "print JSON (same as --output json)")
	return cmd
}
