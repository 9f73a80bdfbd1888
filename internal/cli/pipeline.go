package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/spf13/cobra"
)

// clientCmd is a command that needs a client and takes exactly n args.
func (g *globals) clientCmd(use, short string, n int, run func(cmd *cobra.Command, args []string) error) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(n), RunE: run}
}

func newPipelineCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "pipeline", Short: "Deploy pipeline runs: list, show, logs, approve, reject, cancel"}
	var agent string
	var limit int
	runs := &cobra.Command{
		Use: "runs [--agent NAME]", Short: "List pipeline runs, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, err := c.PipelineRuns(cmd.Context(), agent, limit)
			if err != nil {
				return err
			}
			return g.print(list, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "RUN\tAGENT\tVERSION\tSTATE\tSTAGE\tBY\tCREATED")
				for _, r := range list {
					what := r.Agent
					if r.Config != nil {
						what = strings.TrimSpace("(" + r.Config.Target + ") " + r.Config.Name)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, what, shortDigest(r.Bundle), r.State, r.Stage,
						r.Principal.ID, r.Created.Local().Format(time.DateTime))
				}
				tw.Flush()
			})
		},
	}
	runs.Flags().StringVar(&agent, "agent", "", "only this agent's runs")
	runs.Flags().IntVar(&limit, "limit", 0, "at most this many runs (default: the server's, 1000)")
	var diff bool
	show := g.clientCmd("show RUN [--diff]", "Show a run: each stage's state, timing and reason, and what it decided", 1,
		func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			run, err := c.PipelineRun(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var d *api.PipelineDiff
			if diff {
				if d, err = c.PipelineDiff(cmd.Context(), args[0]); err != nil {
					return err
				}
			}
			out := any(run)
			if d != nil {
				out = struct {
					Run  *api.PipelineRun  `json:"run"`
					Diff *api.PipelineDiff `json:"diff"`
				}{run, d}
			}
			return g.print(out, func(w io.Writer) { printRun(w, run, d) })
		})
	show.Flags().BoolVar(&diff, "diff", false, "also show the manifest and files changed against the parent version")
	var from uint64
	logs := g.clientCmd("logs RUN", "Print a run's progress and log events", 1, func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		l, err := c.PipelineLogs(cmd.Context(), args[0], from, 0)
		if err != nil {
			return err
		}
		return g.print(l, func(w io.Writer) {
			for _, e := range l.Events {
				where := e.Stage
				if where == "" {
					where = e.Type
				}
				msg := e.Message
				if e.State != "" {
					msg = strings.TrimSpace(e.State + " " + msg)
				}
				fmt.Fprintf(w, "%s %-9s %s\n", e.Time.Local().Format(time.TimeOnly), where, msg)
			}
		})
	})
	logs.Flags().Uint64Var(&from, "from", 0, "the event sequence to continue from")
	cmd.AddCommand(runs, show, logs, g.reviewCmd("approve", true), g.reviewCmd("reject", false), g.cancelRunCmd())
	return cmd
}

// reviewCmd is pipeline approve or reject.
func (g *globals) reviewCmd(verb string, approve bool) *cobra.Command {
	var comment string
	c := g.clientCmd(verb+" RUN", map[bool]string{true: "Approve a run waiting for review (never your own change)",
		false: "Reject a run waiting for review; the old version keeps serving"}[approve], 1,
		func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var run *api.PipelineRun
			if approve {
				run, err = c.ApproveRun(cmd.Context(), args[0], comment)
			} else {
				run, err = c.RejectRun(cmd.Context(), args[0], comment)
			}
			if err != nil {
				return err
			}
			return g.print(run, func(w io.Writer) {
				fmt.Fprintf(w, "%s %s: %s at %s\n", run.ID, map[bool]string{true: "approved", false: "rejected"}[approve], run.State, run.Stage)
			})
		})
	c.Flags().StringVar(&comment, "comment", "", "why (recorded in the ledger)")
	return c
}

// cancelRunCmd is pipeline cancel.
func (g *globals) cancelRunCmd() *cobra.Command {
	return g.clientCmd("cancel RUN", "Cancel a run; the old version keeps serving unless its rollout had started", 1,
		func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			run, err := c.CancelRun(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(run, func(w io.Writer) { fmt.Fprintf(w, "%s: cancel requested (%s at %s)\n", run.ID, run.State, run.Stage) })
		})
}

// printRun writes a run (and its diff) for people.
func printRun(w io.Writer, run *api.PipelineRun, d *api.PipelineDiff) {
	if c := run.Config; c != nil {
		fmt.Fprintf(w, "run %s: %s %s value %s (parent %s)\n", run.ID, c.Target, c.Name, shortDigest(c.Digest), orNone(shortDigest(c.Parent)))
		if c.Summary != "" {
			fmt.Fprintf(w, "change: %s\n", c.Summary)
		}
	} else {
		fmt.Fprintf(w, "run %s: agent %s version %s (parent %s)\n", run.ID, run.Agent, shortDigest(run.Bundle), orNone(shortDigest(run.Parent)))
	}
	fmt.Fprintf(w, "state %s at %s, by %s %s\n", run.State, run.Stage, run.Principal.Kind, run.Principal.ID)
	if run.Error != "" {
		fmt.Fprintf(w, "error: %s\n", run.Error)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tSTATE\tMS\tREASON")
	for _, s := range run.Stages {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", s.Name, s.State, s.DurationMs, firstLine(s.Reason))
	}
	tw.Flush()
	if run.Decision != nil {
		fmt.Fprintf(w, "policy: %s (%s)\n", run.Decision.Result, strings.Join(run.Decision.Reasons, ", "))
	}
	if run.Review != nil && run.Review.Decision != "" {
		fmt.Fprintf(w, "review: %s by %s\n", run.Review.Decision, run.Review.By)
	}
	if d == nil {
		return
	}
	for _, f := range d.Files {
		fmt.Fprintf(w, "--- %s (%s)\n", f.Path, f.Status)
		if f.Diff != "" {
			fmt.Fprintln(w, strings.TrimRight(f.Diff, "\n"))
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func newRollbackCmd(g *globals) *cobra.Command {
	var to, reason string
	cmd := g.clientCmd("rollback AGENT [--to VERSION]", "Serve an earlier version again (the one the latest rollout replaced, or --to)", 1,
		func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			target := to
			if target != "" && !strings.HasPrefix(target, "sha256:") {
				vs, err := c.Versions(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				var match []string
				for _, v := range vs {
					if strings.HasPrefix(strings.TrimPrefix(v.Digest, "sha256:"), target) {
						match = append(match, v.Digest)
					}
				}
				if len(match) != 1 {
					return fmt.Errorf("--to %q matches %d versions of %s: give more of the digest (agentcloud agents versions %s)", to, len(match), args[0], args[0])
				}
				target = match[0]
			}
			dep, err := c.Rollback(cmd.Context(), args[0], target, reason)
			if err != nil {
				return err
			}
			return g.print(dep, func(w io.Writer) { printDeployment(w, dep) })
		})
	cmd.Flags().StringVar(&to, "to", "", "the version to serve (a digest or its prefix; default: the one the latest rollout replaced)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the ledger)")
	return cmd
}

// printDeployment writes which versions serve which share.
func printDeployment(w io.Writer, d *api.Deployment) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tROLE\tSHARE\tLIVE\tCREATED")
	for _, v := range d.Versions {
		fmt.Fprintf(tw, "%s\t%s\t%d%%\t%d\t%s\n", shortDigest(v.Version), v.Role, v.Percent, v.LiveSessions, v.Created.Local().Format(time.DateTime))
	}
	tw.Flush()
	if r := d.Rollout; r != nil {
		fmt.Fprintf(w, "rollout of %s: %s, step %d (%d%%)", shortDigest(r.Canary), r.Phase, r.Step, r.Percent)
		if r.Reason != "" {
			fmt.Fprintf(w, ": %s", r.Reason)
		}
		fmt.Fprintln(w)
	}
}
