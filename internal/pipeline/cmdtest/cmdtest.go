// Package cmdtest is the pipeline's test stage for a manifest's test
// command ("test": "python3 -m pytest"): it creates a sandbox (the sandbox
// manager's tiers, limits and egress rules), checks the bundle out in
// /workspace, runs the command with /bin/sh -c, and reports its exit
// status and the end of its output. The sandbox is deleted afterwards.
//
// Tester combines it with the JS tests (jstest): both run, and the report
// holds both results.
package cmdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/pipeline"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// Sandboxes creates and deletes sandboxes (*sandbox.Manager).
type Sandboxes interface {
	Create(ctx context.Context, id string, spec sandbox.Spec) (sandbox.Sandbox, error)
	Delete(ctx context.Context, id string) error
}

// Config configures a Runner.
type Config struct {
	Sandboxes Sandboxes
	// Tier and Limits of the test sandbox ("" and zero: the manager's
	// defaults).
	Tier   string
	Limits sandbox.Limits
	// Timeout bounds the command (default 5 minutes); the stage's own time
	// limit bounds it too.
	Timeout time.Duration
	// MaxOutput is how much of the end of the output is kept (default 16 KiB).
	MaxOutput int
}

// Runner runs a manifest's test command. It satisfies pipeline.Tester.
type Runner struct{ cfg Config }

// New returns a Runner.
func New(cfg Config) (*Runner, error) {
	if cfg.Sandboxes == nil {
		return nil, errors.New("cmdtest: Sandboxes is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	if cfg.MaxOutput <= 0 {
		cfg.MaxOutput = 16 << 10
	}
	return &Runner{cfg: cfg}, nil
}

var _ pipeline.Tester = (*Runner)(nil)

// Test implements pipeline.Tester. A manifest without a test command
// passes with no command result.
func (r *Runner) Test(ctx context.Context, in pipeline.TestInput) (api.PipelineTestReport, error) {
	rep := api.PipelineTestReport{Passed: true, Files: []api.PipelineTestFile{}}
	cmd := in.Bundle.Manifest.Test
	if cmd == "" {
		return rep, nil
	}
	res := &api.PipelineTestCommand{Command: cmd, ExitCode: -1}
	rep.Command = res
	id := "pipeline-" + in.Run
	sb, err := r.cfg.Sandboxes.Create(ctx, id, sandbox.Spec{Tier: r.cfg.Tier, Limits: r.cfg.Limits, Timeout: r.cfg.Timeout + time.Minute,
		Labels: map[string]string{"pipeline.run": in.Run, "agent": in.Agent}})
	if err != nil {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		return rep, fmt.Errorf("test sandbox: %w", err)
	}
	defer func() { _ = r.cfg.Sandboxes.Delete(context.WithoutCancel(ctx), id) }()
	for _, p := range in.Bundle.Paths() {
		if dir := path.Dir(p); dir != "." {
			if err := sb.Mkdir(ctx, "/workspace/"+dir, 0o755); err != nil {
				return rep, fmt.Errorf("check out %s: %w", p, err)
			}
		}
		if err := sb.WriteFile(ctx, "/workspace/"+p, bytes.NewReader(in.Bundle.Files[p]), 0o644); err != nil {
			return rep, fmt.Errorf("check out %s: %w", p, err)
		}
	}
	tail := &tailBuffer{max: r.cfg.MaxOutput}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	code, err := sb.Exec(cctx, sandbox.ExecSpec{Cmd: "/bin/sh", Args: []string{"-c", cmd}, Cwd: "/workspace"}, tail, tail)
	res.ExitCode, res.Output = code, tail.String()
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return rep, ctx.Err()
	case errors.Is(err, sandbox.ErrTimeout):
		res.TimedOut = true
		if res.ExitCode == 0 {
			res.ExitCode = -1
		}
	default:
		res.Output += "\n" + err.Error()
		if res.ExitCode == 0 {
			res.ExitCode = -1
		}
	}
	rep.Passed = res.ExitCode == 0
	return rep, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped int64
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.dropped += int64(over)
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(bytes.ToValidUTF8(t.buf, nil))
	if t.dropped > 0 {
		s = fmt.Sprintf("…(%d bytes cut)\n", t.dropped) + s
	}
	return s
}

// Tester runs several testers and merges their reports: every file of
// each, the command result of the first that has one; it passes when all
// pass.
type Tester []pipeline.Tester

// Test implements pipeline.Tester.
func (ts Tester) Test(ctx context.Context, in pipeline.TestInput) (api.PipelineTestReport, error) {
	out := api.PipelineTestReport{Passed: true, Files: []api.PipelineTestFile{}}
	for _, t := range ts {
		rep, err := t.Test(ctx, in)
		if err != nil {
			return out, err
		}
		out.Files = append(out.Files, rep.Files...)
		if out.Command == nil {
			out.Command = rep.Command
		}
		out.Passed = out.Passed && rep.Passed
	}
	return out, nil
}
