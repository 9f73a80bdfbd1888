package sandboxhttp

import (
	"context"
	"errors"
	"io/fs"
	"syscall"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// ProblemFor maps an error from the Manager or a Sandbox to a problem of
// the right kind, for the other surfaces over the Manager (e2bhttp).
func ProblemFor(err error) error { return problemFor(err) }

// problemFor maps an error from the Manager or a Sandbox to a problem of
// the right kind. Errors it does not recognise stay internal (500, logged).
func problemFor(err error) error {
	var p *api.Problem
	switch {
	case err == nil:
		return nil
	case errors.As(err, &p):
		return p
	case errors.Is(err, sandbox.ErrFailed):
		return api.Errorf(api.KindSandboxFailed, "%v; it takes no more calls: delete it (DELETE /v1/sandboxes/ID) and create a new one", err)
	case errors.Is(err, sandbox.ErrNotFound), errors.Is(err, sandbox.ErrClosed):
		return api.Errorf(api.KindNotFound, "%v: it was deleted or timed out; list live sandboxes with GET /v1/sandboxes", err)
	case errors.Is(err, sandbox.ErrUnknownTier):
		return api.FieldErrorf(api.KindValidation, "tier", "%v", err)
	case errors.Is(err, sandbox.ErrUnknownTemplate):
		return api.FieldErrorf(api.KindValidation, "template", "%v", err)
	case errors.Is(err, sandbox.ErrPathNotAllowed):
		return api.FieldErrorf(api.KindForbidden, "path",
			"%v: file operations are confined to %s and %s (relative paths are under %s)",
			err, sandbox.WorkspaceDir, sandbox.TmpDir, sandbox.WorkspaceDir)
	case errors.Is(err, sandbox.ErrPaused):
		return api.Errorf(api.KindConflict, "%v: resume it first (POST .../resume)", err)
	case errors.Is(err, sandbox.ErrStopped):
		return api.Errorf(api.KindConflict, "%v: POST /v1/sandboxes/ID/start", err)
	case errors.Is(err, sandbox.ErrBadMountPath):
		return api.FieldErrorf(api.KindValidation, "volumes", "%v", err)
	case errors.Is(err, sandbox.ErrTerminalSize):
		return api.FieldErrorf(api.KindValidation, "size", "%v", err)
	case errors.Is(err, sandbox.ErrTerminals):
		return api.Errorf(api.KindRateLimited, "%v: close one, or retry", err)
	case errors.Is(err, sandbox.ErrUnsupported):
		return api.Errorf(api.KindBadRequest, "%v", err)
	case errors.Is(err, sandbox.ErrUnavailable):
		return api.Errorf(api.KindUnavailable, "%v", err)
	case errors.Is(err, sandbox.ErrTimeout):
		return api.Errorf(api.KindTimeout, "%v", err)
	case errors.Is(err, sandbox.ErrMemoryLimit), errors.Is(err, sandbox.ErrPidsLimit), errors.Is(err, sandbox.ErrDiskLimit):
		return api.Errorf(api.KindSandboxLimit, "%v", err)
	case errors.Is(err, context.Canceled):
		return api.Errorf(api.KindBadRequest, "request cancelled: %v", err)
	case errors.Is(err, syscall.ESRCH):
		return api.Errorf(api.KindNotFound, "%v: no such process in the sandbox", err)
	case errors.Is(err, fs.ErrNotExist):
		return api.Errorf(api.KindNotFound, "%v", err)
	case errors.Is(err, fs.ErrExist):
		return api.Errorf(api.KindConflict, "%v", err)
	case errors.Is(err, fs.ErrPermission):
		return api.Errorf(api.KindForbidden, "%v", err)
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENOTEMPTY),
		errors.Is(err, syscall.ENAMETOOLONG), errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.EINVAL):
		return api.Errorf(api.KindBadRequest, "%v", err)
	}
	return err
}
