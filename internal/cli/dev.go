package cli

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/spf13/cobra"
)

func newDevCmd(g *globals) *cobra.Command {
	var interval time.Duration
	var once bool
	cmd := &cobra.Command{
		Use:   "dev DIR",
		Short: "Run a bundle as its agent's preview and redeploy the preview whenever its files change",
		Long: `Dev makes DIR its agent's preview: the same bundle 'agentcloud deploy' uploads
goes through the same pipeline (validate, build, test), recorded in the ledger
as a preview and never released, so production traffic keeps its version and
its sessions. Preview sessions are reached with 'agentcloud call AGENT/SESSION
--preview' (or /agents/AGENT/preview/sessions/SESSION/...) and keep state of
their own. Dev then watches DIR and makes each change the preview until Ctrl-C
(--once: one preview, then exit). Manifest, code and test errors are printed,
and the last good preview keeps serving. 'agentcloud agents end-preview AGENT'
removes the preview and its sessions.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			last, lastSrc, failed := "", "", false
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
				v, err := c.Preview(ctx, tgz)
				if err != nil {
					fmt.Fprintf(g.stderr, "dev: preview: %s\n", describe(err))
					last, failed = b.Digest, true
					return
				}
				failed = false
				last = b.Digest
				if v.Run != "" && v.RunState != api.RunPassed {
					fmt.Fprintf(g.stdout, "%s %s version %s: run %s %s (agentcloud pipeline show %s)\n",
						time.Now().Format(time.TimeOnly), v.Agent, shortDigest(v.Digest), v.Run, v.RunState, v.Run)
					return
				}
				fmt.Fprintf(g.stdout, "%s preview of %s is version %s — %s/agents/%s/preview/sessions/dev/\n",
					time.Now().Format(time.TimeOnly), v.Agent, shortDigest(v.Digest), c.Server(), v.Agent)
			}
			deploy()
			if once {
				if failed || last == "" || strings.HasPrefix(last, "error:") {
					return exitCode(1)
				}
				return nil
			}
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
	cmd.Flags().BoolVar(&once, "once", false, "make DIR the preview once and exit (non-zero if that failed)")
	return cmd
}
