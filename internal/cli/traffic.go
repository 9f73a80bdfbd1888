package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/agentcloud/agentcloud/api"
	"github.com/spf13/cobra"
)

func newTrafficCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "traffic", Short: "Show the front door's priority levels, flows and who is being limited (administrators)",
		Long: `traffic shows the front door (the gateway every request passes before the router):
its priority levels with their seats, queues and counters, the flows (one per verified
identity, or per client address for anonymous requests) and which of them are being
limited. Reading it takes the Cedar action traffic.read, which the default policies
give administrators only.`}
	cmd.AddCommand(newTrafficLevelsCmd(g), newTrafficFlowsCmd(g), newTrafficTopCmd(g))
	return cmd
}

func newTrafficLevelsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "levels", Short: "Show each priority level: seats, executing, queued, counters and queue waits", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			tr, err := c.Traffic(cmd.Context(), 0)
			if err != nil {
				return err
			}
			return g.print(tr, func(w io.Writer) {
				fmt.Fprintf(w, "concurrency limit: %d seats\n", tr.ConcurrencyLimit)
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "LEVEL\tSHARES\tSEATS\tEXECUTING\tBORROWED\tQUEUED\tFLOWS\tDISPATCHED\tWAITED\tREJECTED\tTIMED OUT\tWAIT P50\tWAIT P99")
				for _, l := range tr.Levels {
					shares := fmt.Sprint(l.Shares)
					if l.Exempt {
						shares = "exempt"
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1fms\t%.1fms\n", l.Name, shares, l.NominalSeats, l.Executing,
						l.Borrowed, l.Queued, l.ActiveFlows, l.Dispatched, l.Waited, l.Rejected, l.TimedOut, l.WaitP50Ms, l.WaitP99Ms)
				}
				tw.Flush()
			})
		},
	}
}

func printFlows(w io.Writer, fs *api.TrafficFlows) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LEVEL\tFLOW\tEXECUTING\tQUEUED\tDISPATCHED\tREJECTED\tRATE/S\tLAST SEEN")
	for _, f := range fs.Flows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.2f\t%s\n", f.Level, f.Flow, f.Executing, f.Queued, f.Dispatched, f.Rejected, f.RatePerSecond, f.LastSeen)
	}
	tw.Flush()
	if n := len(fs.Flows); n < fs.Total {
		fmt.Fprintf(w, "(%d of %d flows)\n", n, fs.Total)
	}
}

func newTrafficFlowsCmd(g *globals) *cobra.Command {
	var (
		level string
		limit int
	)
	cmd := &cobra.Command{
		Use: "flows", Short: "List the flows the front door remembers, busiest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > 10000 {
				return fmt.Errorf("invalid --limit %d: want 1 to 10000", limit)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			fs, err := c.TrafficFlows(cmd.Context(), level, limit)
			if err != nil {
				return err
			}
			return g.print(fs, func(w io.Writer) { printFlows(w, fs) })
		},
	}
	cmd.Flags().StringVar(&level, "level", "", "only flows of this priority level (see agentcloud traffic levels)")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many flows (1 to 10000)")
	return cmd
}

func newTrafficTopCmd(g *globals) *cobra.Command {
	var (
		n  int
		by string
	)
	cmd := &cobra.Command{
		Use: "top", Short: "Show the identities being limited most (or, with --by rate, the busiest)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if n < 1 || n > 10000 {
				return fmt.Errorf("invalid -n %d: want 1 to 10000", n)
			}
			if by != "rejected" && by != "rate" {
				return fmt.Errorf("invalid --by %q: want rejected or rate", by)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			fs, err := c.TrafficFlowsBy(cmd.Context(), "", n, by)
			if err != nil {
				return err
			}
			return g.print(fs, func(w io.Writer) { printFlows(w, fs) })
		},
	}
	cmd.Flags().IntVarP(&n, "n", "n", 10, "how many flows (1 to 10000)")
	cmd.Flags().StringVar(&by, "by", "rejected", "order: rejected (the most limited first) or rate (recent arrival rate)")
	return cmd
}
