package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/agentcloud/agentcloud/internal/bench"
	"github.com/spf13/cobra"
)

func newBenchGatewayCmd(g *globals) *cobra.Command {
	var (
		opts   bench.GatewayOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Benchmark the front door: overhead per request, and a human's latency while agents flood it (classes on and off)",
		Long: `gateway measures the front door in this process: its overhead per request in front
of a handler that does nothing (p50/p99, with the identity given and with a JWT-SVID
verified), then the flood scenario on loopback: a person at a steady low rate while 50
agent identities offer ten times the capacity, with priority classes on, and off (one
level, one FIFO queue). It reports human_p99_ms_unloaded, human_p99_ms_flood_classes_on,
human_p99_ms_flood_classes_off, agent_goodput and Jain's fairness index among the agents.
--plot FILE.svg draws the person's latency over time in each phase. The flood takes
about --unloaded + 2 x --phase.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if child, err := bench.FloodAgentProcess(); child {
				return err // this process was the flood's agents
			}
			if opts.Requests < 1000 {
				return fmt.Errorf("invalid --requests %d: want at least 1000", opts.Requests)
			}
			if opts.Unloaded < 0 || opts.Phase < 0 || (!opts.NoFlood && (opts.Unloaded < 500*time.Millisecond || opts.Phase < 500*time.Millisecond)) {
				return fmt.Errorf("invalid --unloaded %s / --phase %s: want at least 500ms each", opts.Unloaded, opts.Phase)
			}
			// The agents flood from a process of their own (this binary),
			// as a flood comes from elsewhere.
			if exe, err := os.Executable(); err == nil {
				opts.AgentProcess = []string{exe, "bench", "gateway"}
			}
			res, err := bench.Gateway(cmd.Context(), opts)
			if err != nil {
				return err
			}
			return g.printBench(res, asJSON)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Requests, "requests", 100000, "requests to time for the overhead")
	f.DurationVar(&opts.Unloaded, "unloaded", 4*time.Second, "how long the person runs alone")
	f.DurationVar(&opts.Phase, "phase", 8*time.Second, "how long each flood phase lasts")
	f.BoolVar(&opts.NoFlood, "no-flood", false, "measure the overhead only")
	f.StringVar(&opts.Plot, "plot", "", "write an SVG plot of the person's latency over time to this file")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
