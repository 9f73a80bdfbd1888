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
	copies, err := m.ForkEach(ctx, id, n, 0)
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

// ForkCopy is the outcome of one copy of a ForkEach: the copy, or the
// error that kept it from starting.
type ForkCopy struct {
	Sandbox Sandbox
	Err     error
}

// ForkEach is Fork answering each copy's outcome on its own, for callers
// that report them one by one (E2B's fork answers a list of sandboxes and
// errors). err is set when no copy was attempted: the source cannot be
// copied. Otherwise copies has n entries. A positive timeout is the
// copies' timeout (admitted like a create's); otherwise each copy gets
// what remains of the source's.
func (m *Manager) ForkEach(ctx context.Context, id string, n int, timeout time.Duration) ([]ForkCopy, error) {
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
	spec, sb, state := e.spec, e.sb, e.state
	m.mu.Unlock()
	if spec.Build {
		return nil, fmt.Errorf("fork sandbox %s: a template build's sandbox cannot be copied: %w", id, ErrUnsupported)
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
	o, done, err := m.forkOrigin(ctx, spec, sb, ws, n)
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
			c, err := m.createFrom(ctx, "", one, o)
			copies[i] = ForkCopy{Sandbox: c, Err: err}
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
func (m *Manager) forkOrigin(ctx context.Context, spec Spec, sb Sandbox, ws string, n int) (o origin, done func(), err error) {
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
	if m.cfg.Dir != "" {
		copies := n
		if layered {
			copies = 1
		}
		if err := checkFreeSpace(ws, m.cfg.Dir, copies); err != nil {
			return o, done, err
		}
	}
	o.seed = ws
	if uh, ok := unwrap(sb).(UpperHolder); ok && sb != nil {
		o.upper = uh.UpperDir() // frozen while the copies are prepared
	}
	switch {
	case withMemory: // checkpoint once, restore n times
		img, err := os.MkdirTemp(m.cfg.Dir, ".fork-")
		if err != nil {
			return o, done, err
		}
		cleanups = append(cleanups, func() { _ = os.RemoveAll(img) })
		if err := unwrap(sb).(Checkpointer).Checkpoint(ctx, img); err != nil {
			return o, done, fmt.Errorf("checkpoint: %w", err)
		}
		o.image = img
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
