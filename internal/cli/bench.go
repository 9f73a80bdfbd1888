package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bench"
	"github.com/spf13/cobra"
)

// The benchmarks themselves live in internal/bench; these commands parse
// flags and print results.

func newBenchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a daemon: starts its own in a temporary data dir unless --server is given",
	}
	cmd.AddCommand(newBenchSandboxCmd(g), newBenchSessionsCmd(g), newBenchAuthzCmd(g), newBenchToolsCmd(g), newBenchGatewayCmd(g))
	cmd.AddCommand(newBenchPipelineCmd(g)) // bench_pipeline.go
	return cmd
}

// benchTarget is --server's daemon, or none (the benchmark starts one).
func (g *globals) benchTarget() (bench.Target, error) {
	if g.server == "" {
		return bench.Target{}, nil
	}
	c, err := g.client()
	if err != nil {
		return bench.Target{}, err
	}
	return bench.Target{Client: c, Token: g.credentials().token}, nil
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

func newBenchSessionsCmd(g *globals) *cobra.Command {
	var (
		opts   bench.SessionsOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "Benchmark session creation, warm requests, hibernation and activation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Sessions < 1 || opts.Concurrency < 1 || opts.Activations < 1 || opts.Duration <= 0 {
				return fmt.Errorf("--sessions, --concurrency, --activations and --duration must be positive")
			}
			var err error
			if opts.Target, err = g.benchTarget(); err != nil {
				return err
			}
			res, err := bench.Sessions(cmd.Context(), opts)
			if err != nil {
				return err
			}
			return g.printBench(res, asJSON)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Sessions, "sessions", 1000, "sessions to create (each writes state), then hibernate")
	f.IntVar(&opts.Concurrency, "concurrency", 16, "concurrent clients")
	f.IntVar(&opts.Activations, "activations", 200, "hibernated sessions to activate for the activation latency")
	f.DurationVar(&opts.Duration, "duration", 5*time.Second, "how long to run warm requests")
	f.IntVar(&opts.LoadConcurrency, "load-concurrency", 32, "connections of the hello-world throughput run beside workerd (wrk -c)")
	f.StringVar(&opts.Workerd, "workerd", "", "workerd binary to compare with (default: the pinned npm install in the repository, then PATH)")
	f.BoolVar(&opts.Hibernated, "hibernated", false, "only what hibernated sessions cost: create and hibernate every session, skip the live, warm and throughput phases (the million-session run)")
	f.BoolVar(&asJSON, "json", false, "print JSON (same as --output json)")
	return cmd
}

func newBenchSandboxCmd(g *globals) *cobra.Command {
	var (
		opts    bench.SandboxOptions
		asJSON  bool
		profile string
	)
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Benchmark sandbox create, exec, pool claims, idle memory and concurrency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.N < 1 || opts.Concurrency < 1 || opts.Alive < 0 || opts.Burst < 1 {
				return fmt.Errorf("--n, --concurrency and --burst must be positive and --alive not negative")
			}
			var err error
			if opts.Target, err = g.benchTarget(); err != nil {
				return err
			}
			if profile != "" {
				f, err := os.Create(profile)
				if err != nil {
					return err
				}
				defer f.Close()
				opts.PooledBurstProfile = f
			}
			res, err := bench.Sandbox(cmd.Context(), opts)
			if err != nil {
				return err
			}
			return g.printBench(res, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Tier, "tier", api.SandboxTierProcess, "sandbox tier: process or gvisor")
	f.IntVar(&opts.N, "n", 30, "iterations per latency measurement")
	f.IntVar(&opts.Concurrency, "concurrency", 8, "concurrent clients for the burst and concurrency phases")
	f.IntVar(&opts.Alive, "alive", 0, "sandboxes to keep alive at once (default 100 for process, 20 for gvisor)")
	f.IntVar(&opts.Burst, "burst", 100, "creates sent at the same moment for burst100_*")
	f.StringVar(&profile, "burst-cpuprofile", "", "write a CPU profile (pprof) of the pooled burst, in-process daemon only, to this file")
	f.StringVar(&opts.Only, "only", "", `run one part only: "create" (host python, warm exec, create + first python3) or "burst" (cold and pooled burst)`)
	f.BoolVar(&asJSON, "json", false, "print JSON (same as --output json)")
	return cmd
}

func newBenchAuthzCmd(g *globals) *cobra.Command {
	var (
		opts   bench.AuthzOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "authz",
		Short: "Benchmark Cedar decisions (1,000 tools, 10,000 entities) and egress proxy overhead (in-process daemon)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Tools < 1 || opts.Entities < opts.Tools+2 || opts.Decisions < 100 || opts.Requests < 10 {
				return fmt.Errorf("want --tools >= 1, --entities > --tools, --decisions >= 100, --requests >= 10")
			}
			res, err := bench.Authz(cmd.Context(), opts)
			if err != nil {
				return err
			}
			return g.printBench(res, asJSON)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Tools, "tools", 1000, "tools granted to the agent")
	f.IntVar(&opts.Entities, "entities", 10000, "entities in the store")
	f.IntVar(&opts.Decisions, "decisions", 20000, "decisions to time")
	f.IntVar(&opts.Requests, "requests", 300, "egress requests to time")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newBenchToolsCmd(g *globals) *cobra.Command {
	var (
		opts   bench.ToolsOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "tools",
		Short: "Benchmark MCP tool calls over loopback HTTP and run_code",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.N < 1 || opts.RunCode < 0 {
				return fmt.Errorf("--n must be positive and --run-code not negative")
			}
			var err error
			if opts.Target, err = g.benchTarget(); err != nil {
				return err
			}
			res, err := bench.Tools(cmd.Context(), opts)
			if err != nil {
				return err
			}
			return g.printBench(res, asJSON)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.N, "n", 2000, "MCP calls of the no-op tool")
	f.IntVar(&opts.RunCode, "run-code", 30, "run_code calls (0 skips them)")
	f.BoolVar(&asJSON, "json", false, "print JSON (same as --output json)")
	return cmd
}
