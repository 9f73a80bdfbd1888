//go:build linux

package gvisor

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// maxSocketPath is the longest path a Unix socket may bind to (sun_path
// holds 108 bytes with the terminating NUL).
const maxSocketPath = 107

// socketSuffix is the longest path a tier adds below its DataDir for a
// socket: gvisor/bundles/<cid>/egress/proxy.sock (exec.sock is as long).
var socketSuffix = len("/gvisor/bundles/") + len(randomID()) + len("/egress/") + len(egressSocketName)

// StateDir is the DataDir a daemon whose data directory is dataDir gives
// the tier: the same for every run, so that a daemon started after one was
// killed (kill -9, a crash) finds the dead one's containers in its runsc
// root and removes them (stale.go) — a directory per run, or one below a
// temporary directory a new run may not see (a unit's PrivateTmp, a
// cleaned /tmp), would leave their processes, mounts and cgroups running
// with no owner. dataDir's symlinks are resolved first: the mount table
// names real paths, and a mount below the root must be found before the
// root is removed (process.DetachMountsBelow); and one data directory
// reached by two paths must give one root. It is dataDir itself when every
// socket path below it fits in sun_path, else a directory named for a hash
// of dataDir's real path under /run, which only root may write (a
// directory of a predictable name under a world-writable one, /tmp, could
// be made first by another user). StateDir returns "" when neither will
// do: the daemon then gives the tier a directory of the run, as before.
func StateDir(dataDir string) string {
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	if real, err := filepath.EvalSymlinks(dataDir); err == nil {
		dataDir = real
	}
	if len(dataDir)+socketSuffix <= maxSocketPath {
		return dataDir
	}
	if !rootOnly(runDir) {
		return ""
	}
	sum := sha256.Sum256([]byte(dataDir))
	return filepath.Join(runDir, "agentcloud-gvisor", hex.EncodeToString(sum[:8]))
}

// InRunDir reports whether dir is a root StateDir made under /run (for a
// long data directory): the daemon removes it at a clean stop.
func InRunDir(dir string) bool {
	return filepath.Dir(dir) == filepath.Join(runDir, "agentcloud-gvisor")
}

// runDir is where StateDir puts a root for a long data directory.
var runDir = "/run"

// rootOnly reports whether dir is a directory, not a symlink, that only
// root may write: owned by uid 0 and not group- or world-writable.
func rootOnly(dir string) bool {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Uid == 0 && st.Mode&0o022 == 0
}
