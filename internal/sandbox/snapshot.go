package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
)

// Snapshots (snapshot.go): the Manager saves a sandbox's files, and on
// tiers that can, its whole memory, into a directory, and makes new
// sandboxes from one. internal/sandbox/snapshot keeps the records, the
// directories and the quotas.

// Checkpointer is implemented by live sandboxes whose tier can save their
// whole state (memory, processes, open files) as an image (gVisor: runsc
// checkpoint). The sandbox runs on afterwards.
type Checkpointer interface {
	Checkpoint(ctx context.Context, dir string) error
}

// Restorer is implemented by tiers that run a new sandbox from a
// Checkpointer image, its /workspace seeded from directory seed first and,
// on an image template, its overlay upper dir from upper (if not "";
// CopyUpper): the image holds neither.
type Restorer interface {
	Restore(ctx context.Context, id string, spec Spec, image, seed, upper string) (Sandbox, error)
}

// WorkspaceHolder is implemented by live sandboxes whose /workspace is a
// host directory the tier keeps itself (gVisor's tmpfs), not
// Spec.HostWorkspace.
type WorkspaceHolder interface {
	WorkspacePath() string
}

// Layout of a snapshot directory.
const (
	SnapshotWorkspace = "workspace" // a copy of /workspace
	SnapshotMemory    = "memory"    // the tier's checkpoint image, if any
)

// SnapshotResult describes what Snapshot saved.
type SnapshotResult struct {
	// Spec is the sandbox's spec as created (tier, template, limits, env,
	// labels) without host paths; Timeout is what was left of its clock.
	Spec Spec
	// Memory: the memory state was saved (dir/memory); Note says why not.
	Memory bool
	Note   string
}

// Snapshot saves sandbox id into dir (which must not exist): a copy of
// its /workspace in dir/workspace, taken while its processes are frozen,
// of an image template's overlay upper dir in dir/upper (whiteouts kept),
// and, when the tier can, its memory state in dir/memory. A stopped
// sandbox gives its files only.
func (m *Manager) Snapshot(ctx context.Context, id, dir string) (SnapshotResult, error) {
	e, err := m.lockEntry(id)
	if err != nil {
		return SnapshotResult{}, err
	}
	defer e.op.Unlock()
	m.mu.Lock()
	spec, sb, state, parked := e.spec, e.sb, e.state, e.parked
	m.mu.Unlock()
	if spec.Build {
		return SnapshotResult{}, fmt.Errorf("snapshot sandbox %s: a template build's sandbox cannot be copied: %w", id, ErrUnsupported)
	}
	if parked {
		return SnapshotResult{}, fmt.Errorf("snapshot sandbox %s: %w (a copy of a fork not yet run: resume or start it first)", id, ErrPaused)
	}
	res := SnapshotResult{Spec: spec}
	res.Spec.HostWorkspace, res.Spec.Timeout = "", m.remainingOf(e)
	ws := spec.HostWorkspace
	inner := unwrap(sb)
	if wh, ok := inner.(WorkspaceHolder); ok {
		ws = wh.WorkspacePath()
	}
	if ws == "" {
		return SnapshotResult{}, fmt.Errorf("snapshot sandbox %s: its files are gone (stopped on a tier that keeps /workspace in memory): %w", id, ErrUnsupported)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return SnapshotResult{}, fmt.Errorf("snapshot sandbox %s: %w", id, err)
	}
	if sb != nil && state == StateRunning { // a consistent copy: frozen while saved
		if err := sb.Pause(ctx); err != nil {
			return SnapshotResult{}, fmt.Errorf("snapshot sandbox %s: %w", id, err)
		}
		defer func() { _ = sb.Resume(context.WithoutCancel(ctx)) }()
	}
	if err := os.Mkdir(filepath.Join(dir, SnapshotWorkspace), 0o700); err != nil {
		return SnapshotResult{}, err
	}
	if err := copyTree(ws, filepath.Join(dir, SnapshotWorkspace)); err != nil {
		return SnapshotResult{}, fmt.Errorf("snapshot sandbox %s: copy workspace: %w", id, err)
	}
	if uh, ok := inner.(UpperHolder); ok && uh.UpperDir() != "" { // an image template's writes outside /workspace
		if err := os.Mkdir(filepath.Join(dir, SnapshotUpper), 0o700); err != nil {
			return SnapshotResult{}, err
		}
		if err := CopyUpper(uh.UpperDir(), filepath.Join(dir, SnapshotUpper)); err != nil {
			return SnapshotResult{}, fmt.Errorf("snapshot sandbox %s: copy overlay upper dir: %w", id, err)
		}
	}
	cp, canCheckpoint := inner.(Checkpointer)
	_, canRestore := m.tiers[spec.Tier].(Restorer)
	switch {
	case sb == nil:
		res.Note = "the sandbox is stopped: no processes to save; filesystem only"
	case !canCheckpoint || !canRestore:
		res.Note = memoryNote(spec.Tier)
	default:
		if err := cp.Checkpoint(ctx, filepath.Join(dir, SnapshotMemory)); err != nil {
			return SnapshotResult{}, fmt.Errorf("snapshot sandbox %s: checkpoint: %w", id, err)
		}
		res.Memory = true
	}
	return res, nil
}

// memoryNote says why a tier's snapshots hold files only.
func memoryNote(tier string) string {
	if _, err := exec.LookPath("criu"); err != nil {
		return "tier " + tier + " saves memory only with CRIU, which is not installed on this host; filesystem only"
	}
	return "tier " + tier + " does not save memory (CRIU is installed but not used yet); filesystem only"
}

// Restore makes a new sandbox from snapshot directory dir: with its
// memory state (the processes carry on where they were) when memory is
// set and the tier is a Restorer, otherwise a fresh sandbox whose
// /workspace holds the saved files. spec is SnapshotResult.Spec; the new
// sandbox is admitted like any create.
func (m *Manager) Restore(ctx context.Context, spec Spec, dir string, memory bool) (Sandbox, error) {
	o := origin{seed: filepath.Join(dir, SnapshotWorkspace)}
	if _, err := os.Stat(o.seed); err != nil {
		return nil, fmt.Errorf("restore snapshot: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, SnapshotUpper)); err == nil {
		o.upper = filepath.Join(dir, SnapshotUpper)
	}
	if memory {
		if _, ok := m.tiers[spec.Tier].(Restorer); !ok {
			return nil, fmt.Errorf("restore snapshot: tier %s cannot restore memory: %w", spec.Tier, ErrUnsupported)
		}
		o.image = filepath.Join(dir, SnapshotMemory)
	}
	spec.HostWorkspace = ""
	return m.createFrom(ctx, "", spec, o)
}

// origin is where a new sandbox's state comes from: seed is a directory
// copied into its /workspace, image a checkpoint to restore (Restorer),
// upper an image template's overlay upper dir to start from
// (UpperPreparer), lower a fork layer to mount the host workspace over
// instead of copying seed (forklayer.go).
type origin struct{ seed, image, upper, lower string }

// unwrap returns the tier's own sandbox under the Manager's wrappers.
func unwrap(sb Sandbox) Sandbox {
	for {
		switch s := sb.(type) {
		case metered:
			sb = s.Sandbox
		case meteredTerminal:
			sb = s.Sandbox
		default:
			return sb
		}
	}
}

// seedHeld copies seed into a tier-kept /workspace (WorkspaceHolder) and
// gives the files to the sandbox user.
func seedHeld(sb Sandbox, seed string) error {
	wh, ok := unwrap(sb).(WorkspaceHolder)
	if !ok {
		return fmt.Errorf("tier %s has no host directory for /workspace: %w", sb.Tier(), ErrUnsupported)
	}
	return SeedWorkspace(seed, wh.WorkspacePath())
}

// SeedWorkspace copies the files under seed into ws and gives them to
// SandboxUID:SandboxGID (tiers that keep /workspace themselves).
func SeedWorkspace(seed, ws string) error {
	if err := copyTree(seed, ws); err != nil {
		return err
	}
	return filepath.WalkDir(ws, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if p == ws {
			return nil
		}
		return os.Lchown(p, SandboxUID, SandboxGID)
	})
}
