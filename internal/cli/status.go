package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
)

func newStatusCmd(g *globals) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the daemon's health, version, uptime and store statistics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if wait > 0 {
				wctx, cancel := context.WithTimeout(ctx, wait)
				err := c.WaitReady(wctx)
				cancel()
				if err != nil {
					return fmt.Errorf("daemon at %s not ready after %s: %w", c.Server(), wait, err)
				}
			}
			st, err := c.Status(ctx)
			if err != nil {
				return fmt.Errorf("status of %s: %w", c.Server(), err)
			}
			return g.print(st, func(w io.Writer) {
				health := "healthy"
				if !st.Healthy {
					health = "UNHEALTHY"
				}
				fmt.Fprintf(w, "server:   %s (%s)\n", c.Server(), health)
				fmt.Fprintf(w, "version:  %s %s %s\n", st.Version, st.Commit, st.GoVersion)
				fmt.Fprintf(w, "node:     %s\n", st.NodeID)
				fmt.Fprintf(w, "uptime:   %s (since %s)\n", time.Duration(st.UptimeSec*float64(time.Second)).Round(time.Second), st.StartedAt.Format(time.RFC3339))
				fmt.Fprintf(w, "store:    %s, sync %s, %d streams, %d messages, %d bytes\n",
					st.Store.Mode, st.Store.SyncMode, st.Store.Streams, st.Store.Messages, st.Store.Bytes)
			})
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for the daemon to become ready")
	return cmd
}
