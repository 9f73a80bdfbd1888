package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
)

// deployProgress uploads tgz without waiting, then follows its pipeline run
// stage by stage: on a terminal one line per stage redrawn as it runs
// (progress.go), elsewhere one plain line per stage change (with -o json,
// each event as a JSON document, then the run). A run that fails or is cancelled is an
// error naming the failing stage and its reason; one that waits for review
// says who may approve it and succeeds.
func (g *globals) deployProgress(ctx context.Context, c *client.Client, path string, tgz []byte) error {
	v, err := c.DeployAsync(ctx, tgz)
	if err != nil {
		return fmt.Errorf("deploy %s: %w", path, err)
	}
	if v.Run == "" {
		return g.print(v, func(w io.Writer) {
			fmt.Fprintf(w, "%s version %s serves already\n", v.Agent, shortDigest(v.Digest))
		})
	}
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	if g.output != "json" {
		fmt.Fprintf(g.stdout, "run %s: %s version %s\n", v.Run, v.Agent, shortDigest(v.Digest))
	}
	var board *stageBoard
	if g.output != "json" && isTerminal(g.stdout) {
		if run, err := c.PipelineRun(ctx, v.Run); err == nil {
			board = newStageBoard(g.stdout, run.Stages)
		}
	}
	err = c.RunEvents(ctx, v.Run, 0, func(ev api.PipelineEvent) error {
		if g.output == "json" {
			return enc.Encode(ev)
		}
		if board != nil {
			board.event(ev)
			return nil
		}
		if ev.Type != api.EventStage {
			return nil
		}
		line := fmt.Sprintf("  %-9s %s", ev.Stage, ev.State)
		if ev.Message != "" {
			line += ": " + firstLine(ev.Message)
		}
		fmt.Fprintln(g.stdout, line)
		return nil
	})
	if err != nil {
		return fmt.Errorf("follow run %s: %w", v.Run, err)
	}
	run, err := c.WaitRun(ctx, v.Run)
	if err != nil {
		return fmt.Errorf("run %s: %w", v.Run, err)
	}
	if g.output == "json" {
		if err := enc.Encode(run); err != nil {
			return err
		}
	}
	switch {
	case run.State == api.RunPassed:
		if g.output != "json" {
			fmt.Fprintf(g.stdout, "deployed %s version %s\ncall it: agentcloud call %s/SESSION /\n", run.Agent, shortDigest(run.Bundle), run.Agent)
		}
		return nil
	case run.State == api.RunFailed || run.State == api.RunCancelled:
		stage, reason := run.Stage, run.Error
		for _, st := range run.Stages {
			if st.State == api.StageFailed {
				stage, reason = st.Name, st.Reason
			}
		}
		return fmt.Errorf("deploy %s: run %s %s at its %s stage: %s (details: agentcloud pipeline logs %s)", path, run.ID, run.State, stage, reason, run.ID)
	default:
		if g.output != "json" {
			fmt.Fprintf(g.stdout, "run %s waits for review (%s): agentcloud pipeline show %s --diff; agentcloud pipeline approve %s\n",
				run.ID, strings.Join(reasonsOf(run), ", "), run.ID, run.ID)
		}
		return nil
	}
}

func reasonsOf(run *api.PipelineRun) []string {
	if run.Decision == nil {
		return nil
	}
	return run.Decision.Reasons
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}
