package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
)

func newRunCmd(g *globals) *cobra.Command {
	var sf sandboxFlags
	var ef execFlags
	var keep bool
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARGS...]",
		Short: "Run one command in a fresh sandbox and exit with its status",
		Long: `run creates a sandbox, runs CMD in it with its output streamed to this
terminal as it is produced, deletes the sandbox and exits with CMD's status.
--timeout bounds both the command and the sandbox. Flags of run go before
the command; -- before the command is optional.

  agentcloud run -- python3 -c 'print(6*7)'
  agentcloud run --tier gvisor --timeout 2m -i -- sh < script.sh`,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, program, err := splitDash(cmd, args)
			if err != nil {
				return err
			}
			req, err := sf.request()
			if err != nil {
				return err
			}
			ereq, err := ef.request(program, sf.env, os.Stdin)
			if err != nil {
				return err
			}
			ereq.Env = nil // already in the sandbox's environment
			ereq.TimeoutS = sf.timeout.Seconds()
			if sf.timeout > 0 {
				req.TimeoutS = (sf.timeout + 30*time.Second).Seconds() // outlive the command
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			sb, err := c.CreateSandbox(ctx, req)
			if err != nil {
				return err
			}
			if keep {
				fmt.Fprintf(g.stderr, "sandbox %s kept\n", sb.ID)
			} else {
				defer func() {
					dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
					defer cancel()
					if err := c.DeleteSandbox(dctx, sb.ID); err != nil {
						fmt.Fprintf(g.stderr, "agentcloud: delete sandbox %s: %s\n", sb.ID, describe(err))
					}
				}()
			}
			return g.streamExec(ctx, c, sb.ID, ereq)
		},
	}
	sf.register(cmd.Flags(), 30*time.Second)
	ef.register(cmd.Flags())
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the sandbox afterwards (print its id) instead of deleting it")
	dashCommandFlags(cmd)
	return cmd
}
