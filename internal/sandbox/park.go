package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Parked copies (ForkOptions.Parked): a fork's copy that runs nothing until
// it is asked to. Starting a hundred gVisor sandboxes from one checkpoint
// is a hundred runsc restores (~150 ms of CPU each); a parked copy is a
// record and links, on disk, to one checkpoint image and one copy of the
// source's files, which every copy of the fork shares (hard links: the
// files are only read, and each goes when its last copy does). A copy with
// memory is paused: Resume (or StartSandbox) restores it, with the source's
// processes where they were, and drops its links. A copy without memory
// (a tier that does not checkpoint) is stopped with its files, and
// StartSandbox runs it. Parked copies survive a daemon restart as they
// are: their state is on disk.

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
		return fmt.Errorf("copy workspace: %w", err)
	}
	o.seed = ws
	if o.upper != "" {
		up := filepath.Join(dir, SnapshotUpper)
		if err := os.Mkdir(up, 0o700); err != nil {
			return err
		}
		if err := CopyUpper(o.upper, up); err != nil {
			return fmt.Errorf("copy overlay upper dir: %w", err)
		}
		o.upper = up
	}
	return nil
}

// park makes one parked copy of a fork from o, admitted and recorded like
// a create, and returns its id.
func (m *Manager) park(ctx context.Context, spec Spec, o origin) (string, error) {
	t, ok := m.tiers[spec.Tier]
	if !ok {
		return "", fmt.Errorf("fork: tier %q: %w", spec.Tier, ErrUnknownTier)
	}
	if o.image != "" && m.cfg.Dir == "" {
		return "", fmt.Errorf("fork: a paused copy keeps its memory on disk, and this node has no sandbox directory: %w", ErrUnsupported)
	}
	id := m.NewID()
	if err := m.checkVolumes(spec); err != nil {
		return "", fmt.Errorf("fork: %w", err)
	}
	if err := m.admit(id, &spec); err != nil {
		return "", err
	}
	defer func() {
		m.mu.Lock()
		delete(m.pending, id)
		m.mu.Unlock()
	}()
	spec = spec.normalize(spec.Tier)
	if err := m.makeHostDir(id, &spec); err != nil {
		return "", fmt.Errorf("fork copy %s: %w", id, err)
	}
	if err := m.parkFiles(t, id, spec, o); err != nil {
		m.removeHostDir(id)
		return "", fmt.Errorf("fork copy %s: %w", id, err)
	}
	e := &entry{id: id, spec: spec, created: m.now(), remaining: m.timeoutOf(spec),
		state: StateStopped, reason: "forked stopped: start it to run it"}
	if o.image != "" {
		e.state, e.reason = StatePaused, "forked paused: resuming restores the source's memory"
	}
	if err := m.persist(ctx, e); err != nil {
		if m.unrecord(ctx, id) == nil {
			m.removeHostDir(id)
		}
		return "", err
	}
	m.mu.Lock()
	m.sandboxes[id] = e
	m.mu.Unlock()
	return id, nil
}

// parkFiles gives parked copy id its files: links to the fork's memory
// image and files, or its workspace as a running copy would have it (the
// fork layer mounted, else a copy).
func (m *Manager) parkFiles(t Tier, id string, spec Spec, o origin) error {
	if o.image != "" {
		return linkParked(o, filepath.Join(m.HostDir(id), parkedDir))
	}
	seed := o.seed
	if o.lower != "" && spec.HostWorkspace != "" {
		if err := m.useLayer(t, id, o.lower); err == nil {
			return nil
		}
		seed = m.layerPath(o.lower) // no overlay here: copy the layer
	}
	if spec.HostWorkspace == "" {
		return fmt.Errorf("tier %s keeps /workspace in memory, so a stopped copy would have no files: %w", spec.Tier, ErrUnsupported)
	}
	if seed == "" {
		return nil
	}
	return copyTree(seed, spec.HostWorkspace)
}

// parked reports whether sandbox id is a parked copy with a memory image
// still to restore.
func (m *Manager) parked(id string) bool {
	if m.cfg.Dir == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(m.HostDir(id), parkedDir, SnapshotMemory))
	return err == nil
}

// unpark restores parked copy e from its memory image and starts its
// clock; the caller holds e.op and has entered the Manager.
func (m *Manager) unpark(ctx context.Context, e *entry) (Sandbox, error) {
	m.mu.Lock()
	spec := e.spec
	m.mu.Unlock()
	t, ok := m.tiers[spec.Tier]
	if !ok {
		return nil, fmt.Errorf("resume sandbox %s: tier %q: %w", e.id, spec.Tier, ErrUnknownTier)
	}
	if over, err := m.overQuota(spec); err != nil || over != "" {
		return nil, fmt.Errorf("resume sandbox %s: %w", e.id, errors.Join(err, quotaErr(over)))
	}
	dir := filepath.Join(m.HostDir(e.id), parkedDir)
	o := origin{image: filepath.Join(dir, SnapshotMemory), seed: filepath.Join(dir, SnapshotWorkspace)}
	if _, err := os.Stat(filepath.Join(dir, SnapshotUpper)); err == nil {
		o.upper = filepath.Join(dir, SnapshotUpper)
	}
	if spec.HostWorkspace != "" { // the tier adopts it: the files go there first, as createFrom puts them
		if err := refill(o.seed, spec.HostWorkspace); err != nil {
			return nil, fmt.Errorf("resume sandbox %s: copy workspace: %w", e.id, err)
		}
	}
	sb, err := m.activateFrom(ctx, t, e.id, spec, o)
	if err != nil {
		return nil, fmt.Errorf("resume sandbox %s: %w", e.id, err)
	}
	m.mu.Lock()
	e.sb, e.state, e.reason = sb, StateRunning, ""
	e.deadline = m.now().Add(e.remaining)
	m.mu.Unlock()
	if err := m.persist(ctx, e); err != nil {
		m.log.Warn("save resumed sandbox", logKeySandbox, e.id, logKeyErr, err)
	}
	// The restore has read the image, and the sandbox holds its own copy
	// of the files: the links go (the data with the last copy's).
	if err := os.RemoveAll(dir); err != nil {
		m.log.Warn("remove a resumed copy's links", logKeySandbox, e.id, logKeyErr, err)
	}
	return sb, nil
}

// refill makes directory ws a copy of seed, whatever an earlier attempt
// left in it.
func refill(seed, ws string) error {
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
// and files, and a copy of its upper dir (whose directories carry overlay
// xattrs that links cannot keep; it is small).
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
	return CopyUpper(o.upper, up)
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
