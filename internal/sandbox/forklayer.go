package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// A fork of a sandbox whose /workspace is a host directory does not copy
// the workspace once per copy: Fork copies it once into a frozen layer
// (Dir/.layers/NAME) and each copy's host workspace is an overlay mount
// with that layer below and a directory of its own above, so n copies cost
// one copy and n mounts. The copy's host directory names its layer in a
// file "lower"; the layer is removed with the last directory naming it.
// Mounts are the daemon's: Close unmounts them, load mounts them again
// (a kill -9 leaves them, and mounting is idempotent).

// layersDir is where frozen workspace layers live, under the Manager's Dir.
const layersDir = ".layers"

// wsMountSource names the overlay mounts in /proc/mounts.
const wsMountSource = "agentcloud-ws"

// layers counts, per layer name, the host directories (and forks in
// progress) that use it.
type layers struct {
	mu   sync.Mutex
	refs map[string]int
	// mounted is set once an overlay of a layer was mounted here: a tier
	// that mounts its copies itself then gets only the directories; until
	// then the Manager mounts one first, so that where overlays cannot be
	// mounted (no privilege, a data dir on a filesystem overlayfs refuses)
	// a fork copies the files instead of starting copies with no workspace.
	mounted atomic.Bool
}

// layerPath is the directory of layer name, or "" when name is not one
// this package makes (a damaged "lower" file must not point elsewhere).
func (m *Manager) layerPath(name string) string {
	if m.cfg.Dir == "" || !strings.HasPrefix(name, "l-") || len(name) != 2+24 {
		return ""
	}
	for _, c := range name[2:] { // lowercase hex only: the name goes into mount options
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return filepath.Join(m.cfg.Dir, layersDir, name)
}

// canLayer reports whether the Manager's Dir can hold overlay layers: a
// path with a comma, colon or backslash would break the mount options.
func (m *Manager) canLayer() bool {
	return m.cfg.Dir != "" && !strings.ContainsAny(m.cfg.Dir, ",:\\")
}

// newLayer copies ws into a new frozen layer and returns its name, holding
// one reference for the caller (release it).
func (m *Manager) newLayer(ws string) (string, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	name := "l-" + hex.EncodeToString(b[:])
	dir := m.layerPath(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("fork layer: %w", err)
	}
	m.layerRef(name, 1)
	if err := copyTree(ws, dir); err != nil {
		m.layerRef(name, -1)
		return "", fmt.Errorf("fork layer: copy workspace: %w", err)
	}
	if err := layerOwner(dir); err != nil {
		m.layerRef(name, -1)
		return "", fmt.Errorf("fork layer: %w", err)
	}
	return name, nil
}

// layerOwner gives every file below the layer dir (not dir itself, which
// stays root's, mode 0700, so no host user reaches the files) to
// SandboxUID:SandboxGID, the ids of the sandbox user inside a sandbox: a
// tier that idmaps the layer into a sandbox's user namespace (the process
// tier, ForkLayerOf) shows them as that sandbox's user without a chown
// per copy.
func layerOwner(dir string) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		return os.Lchown(p, SandboxUID, SandboxGID)
	})
}

// ForkLayer is what a fork copy's host workspace overlay is made of: its
// frozen layer (files owned by SandboxUID:SandboxGID), and its own upper
// and work dirs (host paths).
type ForkLayer struct {
	Lower, Upper, Work string
}

// ForkLayerOf returns the layers of hostWorkspace (a Spec.HostWorkspace)
// when it is a fork copy's workspace, for a tier that mounts its overlay
// itself (ForkLayerMounter; the process tier idmaps the layer). The layer
// is the one the "lower" file beside hostWorkspace names, checked as the
// Manager checks it; hostWorkspace may be mounted already (the Manager
// mounts it again when it loads a kept copy).
func ForkLayerOf(hostWorkspace string) (ForkLayer, bool) {
	if filepath.Base(hostWorkspace) != "workspace" {
		return ForkLayer{}, false
	}
	dir := filepath.Dir(hostWorkspace)
	m := &Manager{cfg: ManagerConfig{Dir: filepath.Dir(dir)}}
	lower := m.layerPath(dirLayer(dir))
	if lower == "" {
		return ForkLayer{}, false
	}
	return ForkLayer{Lower: lower, Upper: filepath.Join(dir, "ws-upper"), Work: filepath.Join(dir, "ws-work")}, true
}

// ForkMountSource is the source of fork copies' workspace overlay mounts,
// for a tier that mounts one again.
const ForkMountSource = wsMountSource

// layerRef adds d to layer name's count and removes the layer at zero.
func (m *Manager) layerRef(name string, d int) {
	m.layers.mu.Lock()
	if m.layers.refs == nil {
		m.layers.refs = map[string]int{}
	}
	had, ok := m.layers.refs[name]
	if !ok && d < 0 {
		m.layers.mu.Unlock()
		return
	}
	n := had + d
	if n > 0 {
		m.layers.refs[name] = n
	} else {
		delete(m.layers.refs, name)
	}
	m.layers.mu.Unlock()
	if n <= 0 {
		if err := os.RemoveAll(m.layerPath(name)); err != nil {
			m.log.Warn("remove fork layer", "layer", name, logKeyErr, err)
		}
	}
}

// ForkLayerMounter is implemented by a tier that mounts a fork copy's
// workspace overlay itself when it activates the copy (ForkLayerOf): the
// Manager then only lays the host directory out, and a mount it would
// make first would only be unmounted again (a umount waits for an RCU
// grace period).
type ForkLayerMounter interface {
	MountsForkLayers() bool
}

// useLayer makes id's host workspace an overlay over layer name: it
// mounts (unless tier t mounts it itself), then records the layer in the
// host directory and takes a reference. On an error nothing is left
// mounted or counted.
func (m *Manager) useLayer(t Tier, id, name string) error {
	dir := m.HostDir(id)
	if fm, ok := t.(ForkLayerMounter); ok && fm.MountsForkLayers() && m.layers.mounted.Load() {
		if err := m.layOut(dir, name); err != nil {
			return err
		}
	} else if err := m.mountWorkspace(dir, name); err != nil {
		return err
	}
	m.layers.mounted.Store(true)
	if err := os.WriteFile(filepath.Join(dir, "lower"), []byte(name), 0o600); err != nil {
		_ = unmountWorkspace(dir)
		return fmt.Errorf("fork layer: %w", err)
	}
	m.layerRef(name, 1)
	return nil
}

// mountWorkspace mounts dir/workspace as an overlay of layer name below
// dir/ws-upper, unless it is mounted already. metacopy lets the tier give
// the files to the sandbox's uid without copying their data up.
func (m *Manager) mountWorkspace(dir, name string) error {
	if err := m.layOut(dir, name); err != nil {
		return err
	}
	ws := filepath.Join(dir, "workspace")
	if IsMountPoint(ws) {
		return nil
	}
	fl := ForkLayer{Lower: m.layerPath(name), Upper: filepath.Join(dir, "ws-upper"), Work: filepath.Join(dir, "ws-work")}
	if err := fl.Mount(ws); err != nil {
		return fmt.Errorf("fork layer: mount workspace overlay: %w", err)
	}
	return nil
}

// Mount mounts fl's overlay (nosuid, nodev) on dir, as the Manager mounts
// a fork copy's workspace.
func (fl ForkLayer) Mount(dir string) error {
	opts := "lowerdir=" + fl.Lower + ",upperdir=" + fl.Upper + ",workdir=" + fl.Work + ",redirect_dir=on,metacopy=on"
	return unix.Mount(wsMountSource, dir, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts)
}

// layOut makes the directories of a fork copy's overlay of layer name in
// its host directory dir.
func (m *Manager) layOut(dir, name string) error {
	if m.layerPath(name) == "" {
		return fmt.Errorf("fork layer %q: not a layer name", name)
	}
	for _, d := range []string{"workspace", "ws-upper", "ws-work"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return fmt.Errorf("fork layer: %w", err)
		}
	}
	return nil
}

// unmountWorkspace unmounts dir/workspace while it is a mount point (a
// directory removed through a mount left over would remove the layer's
// files).
func unmountWorkspace(dir string) error {
	return UnmountAll(filepath.Join(dir, "workspace"))
}

// UnmountAll unmounts (detached) what is mounted on p until p is no mount
// point, so that nothing is removed through a mount and a new mount there
// is the only one.
func UnmountAll(p string) error {
	for range 8 {
		if !IsMountPoint(p) {
			return nil
		}
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	return fmt.Errorf("unmount %s: still a mount point", p)
}

// IsMountPoint reports whether p is on another filesystem than its parent.
func IsMountPoint(p string) bool {
	var a, b unix.Stat_t
	if unix.Lstat(p, &a) != nil || unix.Lstat(filepath.Dir(p), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// dirLayer is the layer named by host directory dir, or "".
func dirLayer(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "lower"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// loadLayers counts the layers of the kept host directories ids, mounts
// their workspaces again where a restart lost the mount, and removes the
// layers no directory names.
func (m *Manager) loadLayers(ids []string) {
	if m.cfg.Dir == "" {
		return
	}
	for _, id := range ids {
		dir := m.HostDir(id)
		name := dirLayer(dir)
		if name == "" || m.layerPath(name) == "" {
			continue
		}
		m.layerRef(name, 1)
		if err := m.mountWorkspace(dir, name); err != nil {
			m.log.Warn("mount fork workspace", logKeySandbox, id, logKeyErr, err)
		}
	}
	ents, err := os.ReadDir(filepath.Join(m.cfg.Dir, layersDir))
	if err != nil {
		return
	}
	m.layers.mu.Lock()
	var unused []string
	for _, d := range ents {
		if m.layers.refs[d.Name()] == 0 {
			unused = append(unused, d.Name())
		}
	}
	m.layers.mu.Unlock()
	for _, n := range unused {
		if err := os.RemoveAll(filepath.Join(m.cfg.Dir, layersDir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("remove unused fork layer", "layer", n, logKeyErr, err)
		}
	}
}
