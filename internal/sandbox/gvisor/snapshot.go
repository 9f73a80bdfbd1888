//go:build linux

package gvisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/hostfs"
)

// Snapshots with memory: runsc checkpoint saves the whole sandbox (the
// sentry's kernel state, every process's memory) as an image, and runsc
// restore starts a new container from it, with a new bundle whose mounts
// have the same destinations. The files of /workspace are not in the
// image (it is a host tmpfs served by the gofer), nor, on an image
// template, the root's writes (the overlay's upper dir on the host,
// image.go): the Manager copies both beside it, and Restore puts them in
// place before the container starts.

var (
	_ sandbox.Checkpointer    = (*container)(nil)
	_ sandbox.WorkspaceHolder = (*container)(nil)
	_ sandbox.Restorer        = (*Tier)(nil)
)

// WorkspacePath is the host tmpfs mounted on /workspace.
func (c *container) WorkspacePath() string { return filepath.Join(c.rwDir, "workspace") }

// Checkpoint saves the sandbox's state to image directory dir with
// runsc checkpoint; the sandbox runs on (--leave-running). A paused
// sandbox is resumed for it, and paused again after.
func (c *container) Checkpoint(ctx context.Context, dir string) error {
	c.mu.Lock()
	closed, paused := c.closed, c.paused
	c.mu.Unlock()
	if closed {
		return fmt.Errorf("sandbox %s: %w", c.id, sandbox.ErrClosed)
	}
	if err := c.Failure(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if paused {
		if _, err := c.tier.run(ctx, "resume", c.cid); err != nil {
			return fmt.Errorf("checkpoint %s: %w", c.id, err)
		}
		defer func() { _, _ = c.tier.run(context.WithoutCancel(ctx), "pause", c.cid) }()
	}
	if _, err := c.tier.run(ctx, "checkpoint", "--image-path", dir, "--leave-running", c.cid); err != nil {
		return fmt.Errorf("checkpoint %s: %w", c.id, err)
	}
	return nil
}

// Restore starts a new container from the checkpoint image in dir, its
// /workspace a copy of seed and an image root's upper dir a copy of upper
// (if not ""), with spec's limits.
func (t *Tier) Restore(ctx context.Context, id string, spec sandbox.Spec, image, seed, upper string) (sandbox.Sandbox, error) {
	spec.Tier = sandbox.TierGVisor
	spec.Limits = spec.Limits.WithDefaults()
	if spec.HostWorkspace != "" {
		seed = "" // the Manager has put the files there; adopted below
	}
	c, err := t.setup(spec.Template, spec.Limits, seed, upper, spec.Volumes)
	if err != nil {
		return nil, err
	}
	// A memory image of an image sandbox without a saved upper dir was
	// taken under runsc's own overlay (before image.go served the root
	// without one): its root's writes are in the image, and runsc restores
	// it only with the same flags.
	c.runscOverlay = c.runscOverlay || (c.imageRootDir != "" && upper == "")
	if spec.HostWorkspace != "" {
		if err := c.adopt(spec.HostWorkspace); err != nil {
			c.cleanupHost()
			return nil, fmt.Errorf("restore %s: %w", id, err)
		}
	}
	pidFile := filepath.Join(c.bundle, "sandbox.pid")
	if err := t.startDetached(ctx, c, "restore", "--image-path", image, "--detach",
		"--pid-file", pidFile, "--bundle", c.bundle, c.cid); err != nil {
		return nil, fmt.Errorf("restore gvisor sandbox: %w", err)
	}
	if err := c.started(ctx, pidFile, agentRestoreWait); err != nil {
		return nil, err
	}
	// The relay of the checkpoint has listened since before it: it does
	// not announce itself again.
	c.relayReady.Store(true)
	c.id, c.spec = id, spec
	if c.fs, err = hostfs.Open(c.rwDir, sandbox.SandboxUID, sandbox.SandboxGID); err != nil {
		_ = c.destroy()
		return nil, fmt.Errorf("restore %s: %w", id, err)
	}
	c.env = sandbox.MergeEnv(spec.Env)
	return c, nil
}
