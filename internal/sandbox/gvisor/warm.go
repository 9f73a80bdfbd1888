//go:build linux

package gvisor

// Warming a pooled container. A container's first command paid 30–450 ms
// more than the same command a moment later (docs/PERFORMANCE.md): it is
// the first process the sentry loads from the template's files beyond
// what pid 1 touched (python's site packages and .pth files, the dentries
// of PATH's directories, the agent's first request thread and fork). A
// container prepared for the warm pool runs one throwaway command through
// its agent before it is ready, so the sandbox a create claims has paid
// that already and its first command costs what a warm one does. A
// create that prepares its own container skips it: the command would only
// move the cost from its first exec into the create.

import (
	"context"
	"io"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// warmArgs is the throwaway command: python3 with its site hooks, as
// `python3 -c ...` runs it. It writes nothing: no history, and no bytecode
// (the host template's /usr is read-only to the sandbox user; an image
// root may not be, so warmEnv turns bytecode writing off).
var warmArgs = []string{forwarderPython, "-c", "pass"}

// warmEnv is every command's environment and PYTHONDONTWRITEBYTECODE, so
// that no __pycache__ lands in an image root's upper dir before a claim
// (or in a layer a claimed build sandbox snapshots).
var warmEnv = sandbox.MergeEnv(map[string]string{"PYTHONDONTWRITEBYTECODE": "1"})

// warmWait bounds the throwaway command; a container whose command takes
// longer is pooled as it is.
const warmWait = 10 * time.Second

// warm runs warmArgs through the agent, as the sandbox user with the
// environment and directory every command gets, and waits for the egress
// relay, so that nothing is left for a claimed container's first command
// to start. A container that died meanwhile is an error (prepare discards
// it instead of pooling a dead sandbox); other failures are logged and
// otherwise ignored: the container works as an unwarmed one would (a dead
// agent sends commands to runsc exec, which is not warmed: the throwaway
// command is not sent there).
func (c *container) warm(ctx context.Context) error {
	defer func() {
		if err := c.Failure(); err != nil {
			c.tier.log.Warn("gvisor warm-up: the sandbox died", "cid", c.cid, "err", err)
		}
	}()
	if c.agent == nil || c.agent.dead.Load() {
		return c.Failure()
	}
	ctx, cancel := context.WithTimeout(ctx, warmWait)
	defer cancel()
	if err := c.waitForwarder(ctx); err != nil {
		c.tier.log.Warn("gvisor warm-up: egress relay", "cid", c.cid, "err", err)
		return c.Failure()
	}
	p := &specs.Process{
		Args:            warmArgs,
		Env:             warmEnv,
		Cwd:             sandbox.WorkspaceDir,
		User:            specs.User{UID: sandbox.SandboxUID, GID: sandbox.SandboxGID},
		NoNewPrivileges: true,
		Capabilities:    &specs.LinuxCapabilities{},
	}
	code, err := c.agentExec(ctx, p, nil, io.Discard, io.Discard)
	if err != nil || code != 0 {
		c.tier.log.Warn("gvisor warm-up command failed", "cid", c.cid, "code", code, "err", err)
		return c.Failure()
	}
	c.agent.warmed.Store(true)
	return c.Failure()
}
