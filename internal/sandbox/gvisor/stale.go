//go:build linux

package gvisor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/internal/atomicfile"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"golang.org/x/sys/unix"
)

// The runsc root (stateDir) belongs to one live tier at a time: New takes
// an flock on rootLock there and keeps it until Close. A daemon killed
// with kill -9 leaves its sandboxes running detached, their cgroups under
// agentcloud-gvisor/, their bundles' mounts and files; the lock goes with
// the process. So a tier that takes the lock knows every container in the
// root is an orphan and removes it (removeStale). A tier that finds the
// lock held (a second tier on one data directory, as a test may make)
// shares the root and removes nothing.
const rootLock = ".tier.lock"

// cgroupControllers are the cgroup v1 hierarchies runsc makes a
// container's cgroup in (agentcloud-gvisor/<cid> in each).
var cgroupControllers = []string{"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "net_cls", "net_prio", "perf_event", "pids", "hugetlb", "systemd"}

// lockRoot takes the root's lock; it reports whether this tier owns the
// root alone.
func (t *Tier) lockRoot() bool {
	f, err := atomicfile.Lock(filepath.Join(t.stateDir, rootLock))
	if err != nil {
		t.log.Debug("gvisor state root shared with a live tier; leaving its containers", "err", err)
		return false
	}
	t.lock = f
	return true
}

// removeStale deletes every container in the runsc root (they are a dead
// daemon's: see rootLock), the cgroups runsc made for them, and their
// bundles once nothing is mounted below them. A workspace bind-mounted
// from the sandbox's kept directory is unmounted, never deleted through.
func (t *Tier) removeStale() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := t.run(ctx, "list", "-quiet")
	if err != nil {
		t.log.Warn("gvisor: list the containers a dead daemon left", "err", err)
	}
	ids := strings.Fields(string(out))
	deleted := 0
	for _, id := range ids {
		_, _ = t.run(ctx, "resume", id) // a paused sandbox cannot be killed cleanly
		if _, err := t.run(ctx, "delete", "--force", id); err != nil {
			t.log.Warn("gvisor: delete a dead daemon's container", "cid", id, "err", err)
			continue
		}
		deleted++
	}
	ents, _ := os.ReadDir(t.bundlesDir)
	bundles := 0
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		ids = append(ids, e.Name())
		dir := filepath.Join(t.bundlesDir, e.Name())
		if process.DetachMountsBelow(dir) && os.RemoveAll(dir) == nil {
			bundles++
		}
	}
	cgroups := removeCgroups(ids)
	if deleted+bundles+cgroups > 0 {
		t.log.Info("gvisor: removed what a dead daemon left", "containers", deleted, "bundles", bundles, "cgroups", cgroups)
	}
}

// RemoveLeftovers removes what the host keeps for the gVisor containers
// of a dead daemon's sandbox state directory (the DataDir of a tier that
// no live process uses) once its processes are gone: their cgroups, which
// outlive the processes runsc put in them. process.NewStateDir calls it for
// each stale directory after killing what still ran from there, before it
// removes the directory.
func RemoveLeftovers(dataDir string) {
	ents, err := os.ReadDir(filepath.Join(dataDir, "gvisor", "bundles"))
	if err != nil {
		return
	}
	ids := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "ac-") {
			ids = append(ids, e.Name())
		}
	}
	removeCgroups(ids)
}

// removeCgroups removes the cgroups runsc made for the containers ids in
// every hierarchy, and returns how many it removed. rmdir removes only an
// empty cgroup, so one whose processes still run stays.
func removeCgroups(ids []string) int {
	n := 0
	for _, id := range ids {
		if id == "" || strings.ContainsAny(id, "/.") {
			continue
		}
		for _, ctrl := range cgroupControllers {
			dir := filepath.Join("/sys/fs/cgroup", ctrl, "agentcloud-gvisor", id)
			// Killed processes leave their cgroup a moment after they
			// are reaped: EBUSY until then, so ask again, bounded.
			for try := 0; ; try++ {
				err := os.Remove(dir)
				if err == nil {
					n++
				}
				if !errors.Is(err, unix.EBUSY) || try == 100 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	return n
}
