//go:build linux

package gvisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Image templates (sandbox.Images) on gVisor: the host mounts an overlay
// of the template's read-only layers with the sandbox's own upper/ and
// work/ dirs (in its bundle) at <bundle>/rootfs, and that is the
// container's root, writable. The gofer serves it; writes land in the
// bundle, never in the shared layers, and go with the bundle. The host's
// system dirs are not bound in (the host's /etc is not visible).

// imageRoot mounts the overlay and points spec at it instead of the host
// template.
func (c *container) imageRoot(spec *specs.Spec, layers []string) error {
	root := filepath.Join(c.bundle, "rootfs")
	for _, d := range []string{root, filepath.Join(c.bundle, "upper"), filepath.Join(c.bundle, "work")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	lower := make([]string, len(layers))
	for i, l := range layers {
		if strings.ContainsAny(l, ",:") {
			return fmt.Errorf("layer path %q cannot be named in overlay options", l)
		}
		lower[len(layers)-1-i] = l // top layer first
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lower, ":"),
		filepath.Join(c.bundle, "upper"), filepath.Join(c.bundle, "work"))
	if err := unix.Mount("agentcloud-image", root, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount image overlay: %w", err)
	}
	c.imageRootDir = root
	for _, d := range []string{"proc", "dev", "workspace", "tmp", "sys"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	spec.Root = &specs.Root{Path: root}
	kept := spec.Mounts[:0]
	for _, m := range spec.Mounts {
		if m.Type == "bind" && (isSystemDir(m.Destination) || strings.HasPrefix(m.Source, c.tier.templateRoot)) {
			continue // the host template's binds and masks
		}
		kept = append(kept, m)
	}
	spec.Mounts = kept
	return nil
}

func isSystemDir(p string) bool {
	for _, d := range systemDirs {
		if p == d {
			return true
		}
	}
	return false
}

// hasProgram reports whether the sandbox's root has an executable at p (the
// host template always has the host's).
func (c *container) hasProgram(p string) bool {
	if c.imageRootDir == "" {
		return true
	}
	fi, err := os.Stat(filepath.Join(c.imageRootDir, p))
	return err == nil && fi.Mode().IsRegular()
}

// unmountImageRoot detaches the overlay before the bundle is removed.
func (c *container) unmountImageRoot() {
	if c.imageRootDir == "" {
		return
	}
	if err := unix.Unmount(c.imageRootDir, unix.MNT_DETACH); err != nil {
		c.tier.log.Warn("unmount image root", "dir", c.imageRootDir, "err", err)
	}
}
