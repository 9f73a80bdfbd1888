//go:build linux

package hostfs

import (
	"context"
	"io"
	"io/fs"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// Files implements sandbox.Files once for every tier: each operation asks
// Open for the sandbox's FS (which fails with sandbox.ErrClosed or the
// sandbox's *sandbox.FailedError when it can no longer be used) and then runs
// the operation on it. A tier embeds Files in its sandbox type and sets Open
// to its own accessor, so the file half of sandbox.Sandbox is not written
// per tier.
type Files struct {
	Open func() (*FS, error)
}

var _ sandbox.Files = Files{}

// WriteFile implements sandbox.Files.
func (f Files) WriteFile(ctx context.Context, p string, r io.Reader, perm fs.FileMode) error {
	fsys, err := f.Open()
	if err != nil {
		return err
	}
	return fsys.WriteFile(ctx, p, r, perm)
}

// ReadFile implements sandbox.Files.
func (f Files) ReadFile(ctx context.Context, p string, w io.Writer) error {
	fsys, err := f.Open()
	if err != nil {
		return err
	}
	return fsys.ReadFile(ctx, p, w)
}

// List implements sandbox.Files.
func (f Files) List(ctx context.Context, p string) ([]sandbox.FileInfo, error) {
	fsys, err := f.Open()
	if err != nil {
		return nil, err
	}
	return fsys.List(ctx, p)
}

// Stat implements sandbox.Files.
func (f Files) Stat(ctx context.Context, p string) (sandbox.FileInfo, error) {
	fsys, err := f.Open()
	if err != nil {
		return sandbox.FileInfo{}, err
	}
	return fsys.Stat(ctx, p)
}

// Mkdir implements sandbox.Files.
func (f Files) Mkdir(ctx context.Context, p string, perm fs.FileMode) error {
	fsys, err := f.Open()
	if err != nil {
		return err
	}
	return fsys.Mkdir(ctx, p, perm)
}

// Remove implements sandbox.Files.
func (f Files) Remove(ctx context.Context, p string) error {
	fsys, err := f.Open()
	if err != nil {
		return err
	}
	return fsys.Remove(ctx, p)
}
