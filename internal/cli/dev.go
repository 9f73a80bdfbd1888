package cli

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/spf13/cobra"
)

func newDevCmd(g *globals) *cobra.Command {
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "dev DIR",
		Short: "Run a bundle on a local daemon and redeploy it whenever its files change",
		Long: `Dev deploys DIR to the daemon (the same upload 'agentcloud deploy' makes, so the
code you prototype with dev deploys unchanged), then watches DIR and redeploys
on every change until Ctrl-C. Manifest and code errors are printed, and the
last good version keeps serving.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			last, lastSrc := "", ""
			deploy := func() {
				// Build only when a source file changed: the sources (not
				// node_modules; package.json and the lockfile change with
				// npm install) are read anyway, a build costs more.
				if src, err := bundle.LoadSourceDir(dir); err == nil {
					if src.Digest == lastSrc {
						return
					}
					lastSrc = src.Digest
				} else {
					lastSrc = ""
				}
				b, tgz, err := loadBundle(dir)
				if err != nil {
					if last != "error:"+err.Error() {
						fmt.Fprintf(g.stderr, "dev: %v\n", err)
						last = "error:" + err.Error()
					}
					return
				}
				if b.Digest == last {
					return
				}
				v, err := c.Deploy(ctx, tgz)
				if err != nil {
					fmt.Fprintf(g.stderr, "dev: deploy: %s\n", describe(err))
					last = b.Digest
					return
				}
				last = b.Digest
				if v.Run != "" && v.RunState != api.RunPassed {
					fmt.Fprintf(g.stdout, "%s %s version %s: run %s %s (agentcloud pipeline show %s)\n",
						time.Now().Format(time.TimeOnly), v.Agent, shortDigest(v.Digest), v.Run, v.RunState, v.Run)
					return
				}
				fmt.Fprintf(g.stdout, "%s deployed %s version %s — %s/agents/%s/sessions/dev/\n",
					time.Now().Format(time.TimeOnly), v.Agent, shortDigest(v.Digest), c.Server(), v.Agent)
			}
			deploy()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
					deploy()
				}
			}
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", 300*time.Millisecond, "how often to look for changes")
	return cmd
}
