package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Parked copies (ForkOptions.Parked): a fork's copy that runs nothing until
// it is asked to. Starting a hundred gVisor sandboxes from one checkpoint
// is a hundred runsc restores (~150 ms of CPU each); a parked copy is a
// record and links, on disk, to one checkpoint image and one copy of the
// source's files, which every copy of the fork shares (hard links: the
// files are only read, and each goes when its last copy does). A copy with
// memory is paused: Resume restores it, with the source's processes where
// they were, and drops its links; StartSandbox does the same, or, when the
// image is gone or cannot be restored (a runsc that changed across a
// restart), starts it fresh over its files and says so in its reason. A
// copy without memory (a tier that does not checkpoint) is stopped with its
// files, and StartSandbox runs it. Parked copies survive a daemon restart
// as they are: their state is on disk, and Record.Parked says which they
// are (a parked/ left by an unpark cut short is removed at load).

// parkedDir, under a parked copy's host directory, holds its links: the
// memory image (SnapshotMemory), its /workspace (SnapshotWorkspace) and an
// image template's upper dir (SnapshotUpper).
const parkedDir = "parked"

// parkOrigin copies what the copies of a parked fork start from next to
// the checkpoint image in dir (o.image is dir/SnapshotMemory): the frozen
// source's /workspace and an image template's upper dir. The source thaws
// and changes after the fork; each copy links these.
func parkOrigin(o *origin, dir string) error {
	ws := filepath.Join(dir, SnapshotWorkspace)
	if err := os.Mkdir(ws, 0o700); err != nil {
		return err
	}
	if err := copyTree(o.seed, ws); err != nil {
		return hostFault("copy workspace", err)
	}
	o.seed = ws
	if o.upper != "" {
		up := filepath.Join(dir, SnapshotUpper)
		if err := os.Mkdir(up, 0o700); err != nil {
			return err
		}
		if err := CopyUpper(o.upper, up); err != nil {
			return hostFault("copy overlay upper dir", err)
		}
		o.upper = up
	}
	return nil
}

// park makes one parked copy of a fork from o, admitted and recorded like
// a create, and returns its id.
func (m *Manager) park(ctx context.Context, spec Spec, o origin) (string, error) {
	if o.image != "" && m.cfg.Dir == "" {
		return "", fmt.Errorf("fork: a paused copy keeps its memory on disk, and this node has no sandbox directory: %w", ErrUnsupported)
	}
	t, id, release, err := m.reserve("fork", "", &spec)
	if err != nil {
		return "", err
	}
	defer release()
	if err := m.parkFiles(t, id, spec, o); err != nil {
		m.removeHostDir(id)
		return "", fmt.Errorf("fork copy %s: %w", id, err)
	}
	e := &entry{id: id, spec: spec, created: m.now(), remaining: m.timeoutOf(spec),
		state: StateStopped, reason: "forked stopped: start it to run it"}
	if o.image != "" {
		e.state, e.reason, e.parked = StatePaused, "forked paused: resuming restores the source's memory", true
	}
	if err := m.persist(ctx, e); err != nil {
		if m.unrecord(ctx, id) == nil {
			m.removeHostDir(id)
		}
		return "", err
	}
	m.mu.Lock()
	m.sandboxes[id] = e
	delete(m.pending, id) // listed: counted once from here
	m.mu.Unlock()
	return id, nil
}

// parkFiles gives parked copy id its files: links to the fork's memory
// image and files, or its workspace as a running copy would have it (the
// fork layer mounted, else a copy).
func (m *Manager) parkFiles(t Tier, id string, spec Spec, o origin) error {
	if o.image != "" {
		return hostFault("link the fork's files", linkParked(o, filepath.Join(m.HostDir(id), parkedDir)))
	}
	if spec.HostWorkspace == "" {
		return fmt.Errorf("tier %s keeps /workspace in memory, so a stopped copy would have no files: %w", spec.Tier, ErrUnsupported)
	}
	_, err := m.placeWorkspace(t, id, spec, o)
	return err
}

// hostFault keeps a failure on the platform's own files from reading as
// the caller's (problemFor maps file errors to 4xx): a full disk is
// ErrDiskLimit, anything else an internal error.
func hostFault(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, ErrDiskLimit):
		return fmt.Errorf("%s: %w: %v", what, ErrDiskLimit, err)
	}
	return fmt.Errorf("%s: %v", what, err)
}

// checkParkedSpace refuses a paused fork whose files (o's workspace and
// upper dir, copied once) and memory image (at most memMB) would not fit
// in dir's filesystem with its spare.
func checkParkedSpace(o origin, dir string, memMB int) error {
	used := int64(memMB) << 20
	for _, d := range []string{o.seed, o.upper} {
		if d == "" {
			continue
		}
		n, err := DiskUsage(d)
		if err != nil {
			return err
		}
		used += n
	}
	return checkFree(dir, used, 1)
}

// parkedImage reports whether parked copy id still has its memory image.
func (m *Manager) parkedImage(id string) bool {
	if m.cfg.Dir == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(m.HostDir(id), parkedDir, SnapshotMemory))
	return err == nil
}

// loadParked sets up e from record r at load: a parked copy stays paused
// while its memory image is there, and is stopped (StartSandbox runs it
// over its files) when the image is gone; any other sandbox loses a
// parked/ an unpark cut short left behind. m.mu is held.
func (m *Manager) loadParked(e *entry, r Record) {
	switch {
	case r.Parked && m.parkedImage(r.ID):
		e.parked, e.state = true, StatePaused
	case r.Parked:
		e.parked, e.state = true, StateStopped
		e.reason = "a copy of a fork whose memory image is missing: start runs it fresh with its files"
	case m.cfg.Dir != "":
		_ = os.RemoveAll(filepath.Join(m.HostDir(r.ID), parkedDir))
	}
}

// startParked is StartSandbox of parked copy e: restored from its memory
// image when it can be, else started fresh over its files, its reason
// saying why. A full disk or quota is answered as it is, the copy kept.
func (m *Manager) startParked(ctx context.Context, e *entry) (Sandbox, error) {
	fresh := !m.parkedImage(e.id)
	sb, err := m.unpark(ctx, e, fresh, "")
	if err == nil || fresh || errors.Is(err, ErrDiskLimit) || ctx.Err() != nil || errors.Is(err, ErrUnavailable) {
		return sb, err
	}
	m.log.Warn("restore a copy of a fork failed; starting it fresh over its files", logKeySandbox, e.id, logKeyErr, err)
	sb, ferr := m.unpark(ctx, e, true, "its memory image could not be restored ("+err.Error()+"): started fresh with its files")
	if ferr != nil {
		return nil, errors.Join(err, ferr)
	}
	return sb, nil
}

// unpark runs parked copy e: restored from its memory image, or, with
// fresh, a new start over its files; its clock starts, and reason is what
// it then says. The caller holds e.op and has entered the Manager. On
// failure the copy stays as it was.
func (m *Manager) unpark(ctx context.Context, e *entry, fresh bool, reason string) (Sandbox, error) {
	m.mu.Lock()
	spec := e.spec
	m.mu.Unlock()
	t, ok := m.tiers[spec.Tier]
	if !ok {
		return nil, fmt.Errorf("resume sandbox %s: tier %q: %w", e.id, spec.Tier, ErrUnknownTier)
	}
	dir := filepath.Join(m.HostDir(e.id), parkedDir)
	o := origin{seed: filepath.Join(dir, SnapshotWorkspace)}
	if _, err := os.Stat(o.seed); err != nil {
		return nil, fmt.Errorf("resume sandbox %s: its files are missing (delete it): %v", e.id, err)
	}
	if _, err := os.Stat(filepath.Join(dir, SnapshotUpper)); err == nil {
		o.upper = filepath.Join(dir, SnapshotUpper)
	}
	if !fresh {
		o.image = filepath.Join(dir, SnapshotMemory)
	}
	if spec.HostWorkspace != "" { // the tier adopts it: the files go there first, as createFrom puts them
		if err := checkFreeSpace(o.seed, m.cfg.Dir, 1); err != nil {
			return nil, fmt.Errorf("resume sandbox %s: %w", e.id, err)
		}
		if err := refill(o.seed, spec.HostWorkspace); err != nil {
			return nil, fmt.Errorf("resume sandbox %s: %w", e.id, hostFault("copy workspace", err))
		}
	}
	if over, err := m.overQuota(spec); err != nil || over != "" {
		return nil, fmt.Errorf("resume sandbox %s: %w", e.id, errors.Join(err, quotaErr(over)))
	}
	sb, err := m.activateFrom(ctx, t, e.id, spec, o)
	if err == nil && fresh && spec.HostWorkspace == "" {
		if err = seedHeld(sb, o.seed); err != nil {
			_ = sb.Close()
			m.closed(e.id)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("resume sandbox %s: %w", e.id, err)
	}
	m.mu.Lock()
	e.sb, e.state, e.reason, e.parked = sb, StateRunning, reason, false
	e.deadline = m.now().Add(max(e.remaining, time.Second))
	m.mu.Unlock()
	if err := m.persist(ctx, e); err != nil {
		m.log.Warn("save resumed sandbox", logKeySandbox, e.id, logKeyErr, err)
	}
	// The restore has read the image, and the sandbox holds its own copy
	// of the files: the links go (the data with the last copy's). Should
	// this fail, load removes them (the record is no longer parked).
	if err := os.RemoveAll(dir); err != nil {
		m.log.Warn("remove a resumed copy's links", logKeySandbox, e.id, logKeyErr, err)
	}
	return sb, nil
}

// refill makes directory ws a copy of seed, whatever an earlier attempt
// left in it.
func refill(seed, ws string) error {
	if err := os.MkdirAll(ws, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(ws)
	if err != nil {
		return err
	}
	for _, d := range ents {
		if err := os.RemoveAll(filepath.Join(ws, d.Name())); err != nil {
			return err
		}
	}
	return copyTree(seed, ws)
}

// linkParked gives a parked copy in dir links to the fork's memory image
// and files, its upper dir's directories made anew (they carry overlay
// xattrs, and a directory cannot be linked) around links to the rest.
func linkParked(o origin, dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := linkTree(o.image, filepath.Join(dir, SnapshotMemory)); err != nil {
		return fmt.Errorf("link memory image: %w", err)
	}
	if err := linkTree(o.seed, filepath.Join(dir, SnapshotWorkspace)); err != nil {
		return fmt.Errorf("link workspace: %w", err)
	}
	if o.upper == "" {
		return nil
	}
	up := filepath.Join(dir, SnapshotUpper)
	if err := os.Mkdir(up, 0o700); err != nil {
		return err
	}
	return walkInto(o.upper, up, func(from, to string, d fs.DirEntry) error {
		if d.IsDir() {
			return copyUpperEntry(from, to)
		}
		return os.Link(from, to)
	})
}

// linkTree recreates the tree src at dst (which must not exist) with
// every file a hard link to src's, or a copy where they are on different
// filesystems.
func linkTree(src, dst string) error {
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	return walkInto(src, dst, func(from, to string, d fs.DirEntry) error {
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Mkdir(to, fi.Mode().Perm()|0o700)
		}
		err = os.Link(from, to)
		if errors.Is(err, syscall.EXDEV) && d.Type().IsRegular() {
			return copyFile(from, to, fi.Mode().Perm())
		}
		return err
	})
}
