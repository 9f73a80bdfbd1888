//go:build linux

package gvisor

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
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
// with no owner. It is dataDir itself when every socket path below it
// fits in sun_path, else a directory named for a hash of dataDir's
// absolute path under /run (under the temporary directory where there is
// no /run): still one per data directory, and short.
func StateDir(dataDir string) string {
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	if len(dataDir)+socketSuffix <= maxSocketPath {
		return dataDir
	}
	sum := sha256.Sum256([]byte(dataDir))
	parent := "/run"
	if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
		parent = os.TempDir()
	}
	return filepath.Join(parent, "agentcloud-gvisor", hex.EncodeToString(sum[:8]))
}
