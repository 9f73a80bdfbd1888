//go:build linux

package gvisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// Image templates (sandbox.Images) on gVisor: the host mounts an overlay
// of the template's read-only layers with the sandbox's own upper/ and
// work/ dirs (in its bundle) at <bundle>/rootfs, and that is the
// container's root, writable. The gofer serves it; writes land in the
// bundle's upper/, never in the shared layers, and go with the bundle. The
// host's system dirs are not bound in (the host's /etc is not visible).
//
// runsc runs such a container with --overlay2=none: by default it stacks
// an overlay of its own on the root (root:self), whose upper layer is a
// file store the host cannot read as files, and the writes would never
// reach upper/. With none, upper/ holds every change to the root, as on
// the process tier: the sandbox is a sandbox.UpperHolder, and snapshots,
// restores and forks carry that dir (sandbox.CopyUpper; docs/RATIONALE.md).

var (
	_ sandbox.UpperPreparer = (*Tier)(nil)
	_ sandbox.UpperHolder   = (*container)(nil)
)

// imageRoot mounts the overlay, its upper dir first a copy of seedUpper
// when set, and points spec at it instead of the host template.
func (c *container) imageRoot(spec *specs.Spec, layers []string, seedUpper string) error {
	root := filepath.Join(c.bundle, "rootfs")
	for _, d := range []string{root, filepath.Join(c.bundle, "upper"), filepath.Join(c.bundle, "work")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if seedUpper != "" { // before the overlay is mounted on it
		if err := sandbox.CopyUpper(seedUpper, filepath.Join(c.bundle, "upper")); err != nil {
			return fmt.Errorf("copy saved upper dir: %w", err)
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

// UpperDir is the host directory of an image sandbox's overlay upper dir
// ("" for the host template, and for a root under runsc's own overlay,
// whose writes are not there): sandbox.UpperHolder.
func (c *container) UpperDir() string {
	if c.imageRootDir == "" || c.runscOverlay {
		return ""
	}
	return filepath.Join(c.bundle, "upper")
}

// runscFlags are the global flags of the runsc calls that start c (run,
// restore): an image root is served without runsc's own overlay, so that
// its writes reach the host's upper dir.
func (c *container) runscFlags() []string {
	if c.imageRootDir == "" || c.runscOverlay {
		return nil
	}
	return []string{"--overlay2=none"}
}

// PrepareWithUpper is Prepare for a sandbox of an image template whose
// overlay upper dir starts as a copy of upper (a snapshot's or a forked
// sandbox's: sandbox.UpperPreparer), with vols mounted (volumes.go).
func (t *Tier) PrepareWithUpper(ctx context.Context, template, upper string, vols []sandbox.VolumeMount) (sandbox.Prepared, error) {
	if err := sandbox.CheckMounts(vols); err != nil {
		return nil, fmt.Errorf("prepare gvisor sandbox: %w", err)
	}
	return t.prepare(ctx, template, upper, vols)
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
