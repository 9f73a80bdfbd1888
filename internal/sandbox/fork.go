package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// MaxForks is the most copies one Fork call makes; the owner's caps
// (Admission) bound them further.
const MaxForks = 100

// Fork makes n copies of sandbox id: each a new sandbox with the same
// tier, template, limits, env and labels (owner included) and a copy of its
// workspace, taken while its processes are frozen: filesystem only (the
// copies start fresh processes), or, on a tier that checkpoints (gVisor),
// with its memory, checkpointed once and restored n times. Each copy is
// admitted like a create, so an owner's caps bound them; the copies made
// before one is refused are returned with the error. The workspace must
// be a host directory, the Manager's or the tier's (ErrUnsupported
// otherwise).
func (m *Manager) Fork(ctx context.Context, id string, n int) ([]Sandbox, error) {
	copies, err := m.ForkWith(ctx, id, ForkOptions{Count: n})
	if err != nil {
		return nil, err
	}
	out := make([]Sandbox, 0, n)
	var errs []error
	for _, c := range copies {
		if c.Err != nil {
			errs = append(errs, c.Err)
			continue
		}
		out = append(out, c.Sandbox)
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("fork sandbox %s: %d of %d copies failed: %w", id, len(errs), n, errors.Join(errs...))
	}
	return out, nil
}

// ForkCopy is the outcome of one copy of a ForkWith: the copy's id and
// live sandbox (nil for a paused or stopped copy), or the error that kept
// it from being made.
type ForkCopy struct {
	ID      string
	Sandbox Sandbox
	Err     error
}

// ForkOptions says how ForkWith copies a sandbox.
type ForkOptions struct {
	// Count is how many copies: 1 to MaxForks.
	Count int
	// Timeout, if positive, is the copies' timeout (admitted like a
	// create's); otherwise each gets what remains of the source's.
	Timeout time.Duration
	// Parked copies run nothing until they are asked to (park.go): where
	// the tier saves memory each holds the source's memory image on disk
	// and is paused (Resume restores it), otherwise each is stopped with
	// its files (StartSandbox runs it). The fork then costs one checkpoint
	// and one copy of the files, not a start per copy.
	Parked bool
}

// ForkEach is ForkWith of n running copies with timeout, answering each
// copy's outcome on its own (E2B's fork answers a list of sandboxes and
// errors).
func (m *Manager) ForkEach(ctx context.Context, id string, n int, timeout time.Duration) ([]ForkCopy, error) {
	return m.ForkWith(ctx, id, ForkOptions{Count: n, Timeout: timeout})
}

// ForkWith is Fork with options, answering each copy's outcome on its own.
// err is set when no copy was attempted: the source cannot be copied.
// Otherwise copies has o.Count entries.
func (m *Manager) ForkWith(ctx context.Context, id string, fo ForkOptions) ([]ForkCopy, error) {
	n, timeout := fo.Count, fo.Timeout
	if n < 1 || n > MaxForks {
		return nil, fmt.Errorf("fork sandbox %s: count %d: must be 1 to %d", id, n, MaxForks)
	}
	leave, err := m.enter("fork", id)
	if err != nil {
		return nil, err
	}
	defer leave()
	e, err := m.lockEntry(id)
	if err != nil {
		return nil, err
	}
	defer e.op.Unlock()
	m.mu.Lock()
	spec, sb, state, parked := e.spec, e.sb, e.state, e.parked
	m.mu.Unlock()
	if spec.Build {
		return nil, fmt.Errorf("fork sandbox %s: a template build's sandbox cannot be copied: %w", id, ErrUnsupported)
	}
	if parked {
		return nil, fmt.Errorf("fork sandbox %s: %w (a copy of a fork not yet run: resume or start it first)", id, ErrPaused)
	}
	ws := spec.HostWorkspace
	if wh, ok := unwrap(sb).(WorkspaceHolder); ok {
		ws = wh.WorkspacePath()
	}
	if ws == "" {
		return nil, fmt.Errorf("fork sandbox %s: tier %s keeps /workspace in memory: %w", id, spec.Tier, ErrUnsupported)
	}
	cs := spec
	cs.HostWorkspace, cs.Timeout = "", timeout
	if rem := m.remainingOf(e); timeout <= 0 && rem > 0 {
		cs.Timeout = rem
	}
	if err := m.preAdmit(cs); err != nil {
		return nil, fmt.Errorf("fork sandbox %s: %w", id, err)
	}
	if sb != nil && state == StateRunning { // a consistent copy: freeze while copying
		if err := sb.Pause(ctx); err != nil {
			return nil, fmt.Errorf("fork sandbox %s: %w", id, err)
		}
		defer func() { _ = sb.Resume(context.WithoutCancel(ctx)) }()
	}
	o, done, err := m.forkOrigin(ctx, spec, sb, ws, n, fo.Parked)
	defer done()
	if err != nil {
		return nil, fmt.Errorf("fork sandbox %s: %w", id, err)
	}
	// forkParallel copies and activations at a time: the copies are I/O,
	// the activations wait on init.
	var (
		copies = make([]ForkCopy, n)
		wg     sync.WaitGroup
		sem    = make(chan struct{}, forkParallel)
	)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			one := cs
			one.Labels, one.Env = maps.Clone(spec.Labels), maps.Clone(spec.Env)
			if fo.Parked {
				cid, err := m.park(ctx, one, o)
				copies[i] = ForkCopy{ID: cid, Err: err}
				return
			}
			c, err := m.createFrom(ctx, "", one, o)
			copies[i] = ForkCopy{Sandbox: c, Err: err}
			if c != nil {
				copies[i].ID = c.ID()
			}
		})
	}
	wg.Wait()
	return copies, nil
}

// forkOrigin prepares what n copies of a (frozen) sandbox start from: a
// checkpoint image where the tier restores memory, else its workspace ws,
// copied once into a layer the copies mount below their own writes where
// their workspaces are host directories (forklayer.go), else copied per
// copy. done (always set, also with an error) removes what only the fork
// needed.
func (m *Manager) forkOrigin(ctx context.Context, spec Spec, sb Sandbox, ws string, n int, parked bool) (o origin, done func(), err error) {
	var cleanups []func()
	done = func() {
		for _, f := range cleanups {
			f()
		}
	}
	_, checkpoints := unwrap(sb).(Checkpointer)
	_, restores := m.tiers[spec.Tier].(Restorer)
	withMemory := checkpoints && restores && sb != nil
	layered := !withMemory && m.hostWorkspace(spec.Tier) && m.canLayer()
	o.seed = ws
	if uh, ok := unwrap(sb).(UpperHolder); ok && sb != nil {
		o.upper = uh.UpperDir() // frozen while the copies are prepared
	}
	if m.cfg.Dir != "" {
		var err error
		switch {
		case withMemory && parked: // one copy of the files, the image (at most the memory limit) beside them
			err = checkParkedSpace(o, m.cfg.Dir, spec.Limits.WithDefaults().MemoryMB)
		case layered:
			err = checkFreeSpace(ws, m.cfg.Dir, 1)
		default:
			err = checkFreeSpace(ws, m.cfg.Dir, n)
		}
		if err != nil {
			return o, done, err
		}
	}
	switch {
	case withMemory: // checkpoint once, restore n times
		img, err := os.MkdirTemp(m.cfg.Dir, ".fork-")
		if err != nil {
			return o, done, err
		}
		cleanups = append(cleanups, func() { _ = os.RemoveAll(img) })
		o.image = img
		if parked { // parkOrigin puts the copies' files beside it
			o.image = filepath.Join(img, SnapshotMemory)
		}
		if err := unwrap(sb).(Checkpointer).Checkpoint(ctx, o.image); err != nil {
			return o, done, fmt.Errorf("checkpoint: %w", err)
		}
		if parked { // the copies link these files: the source thaws after the fork
			if err := parkOrigin(&o, img); err != nil {
				return o, done, err
			}
		}
	case layered:
		name, err := m.newLayer(ws)
		if err != nil {
			return o, done, err
		}
		cleanups = append(cleanups, func() { m.layerRef(name, -1) }) // the copies hold their own references
		o.seed, o.lower = "", name
	}
	return o, done, nil
}

const forkParallel = 8

// remainingOf is the rest of e's timeout.
func (m *Manager) remainingOf(e *entry) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.state == StateRunning {
		return e.deadline.Sub(m.now())
	}
	return e.remaining
}

// checkFreeSpace refuses n copies of ws that would not fit in dir's
// filesystem with 2 % of it (at most 1 GiB) to spare.
func checkFreeSpace(ws, dir string, n int) error {
	used, err := DiskUsage(ws)
	if err != nil {
		return err
	}
	return checkFree(dir, used, n)
}

// checkFree refuses n copies of used bytes that would not fit in dir's
// filesystem with 2 % of it (at most 1 GiB) to spare.
func checkFree(dir string, used int64, n int) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	free := int64(st.Bavail) * st.Bsize
	spare := min(int64(st.Blocks)*st.Bsize/50, 1<<30)
	if need := used * int64(n); need > free-spare {
		return fmt.Errorf("%w: %d copies of %d MiB need %d MiB, the host has %d MiB free", ErrDiskLimit, n, used>>20, need>>20, max(free-spare, 0)>>20)
	}
	return nil
}

// copyTree copies the regular files, directories and symlinks under src
// to dst (which exists), keeping modes; other files (sockets, fifos,
// devices) are skipped.
func copyTree(src, dst string) error {
	return walkInto(src, dst, func(p, to string, d fs.DirEntry) error {
		fi, err := d.Info()
		if err != nil {
			return nil // removed while walking
		}
		switch {
		case d.IsDir():
			return os.Mkdir(to, fi.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			return copyFile(p, to, fi.Mode().Perm())
		}
		return nil
	})
}

// walkInto walks src and calls fn for every entry below it with its path
// under dst; entries removed while walking are skipped.
func walkInto(src, dst string, fn func(from, to string, d fs.DirEntry) error) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		return fn(p, filepath.Join(dst, rel), d)
	})
}

func copyFile(from, to string, perm fs.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil { // copy_file_range: a reflink where the filesystem has them
		out.Close()
		return err
	}
	return out.Close()
}
