//go:build linux

package process

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// removeStale removes the cgroup sets of daemons that died without
// closing their tier (kill -9, a crash): sets named sb-<pid>-... whose pid
// no longer runs. Their sandboxes' inits exit with the control socket, but
// a paused (frozen) one cannot: what is left in a stale set is thawed and
// killed, then the set removed (a set still busy is tried again later).
func (p *cgroupPool) removeStale() {
	parents := make([]string, 0, len(p.parents)+1)
	for _, d := range p.parents {
		parents = append(parents, d)
	}
	if p.v2 != "" {
		parents = append(parents, p.v2)
	}
	var stale []string
	for _, parent := range parents {
		ents, err := os.ReadDir(parent)
		if err != nil {
			continue
		}
		for _, e := range ents {
			rest, ok := strings.CutPrefix(e.Name(), "sb-")
			if !ok || !e.IsDir() {
				continue
			}
			pidStr, _, _ := strings.Cut(rest, "-")
			pid, err := strconv.Atoi(pidStr)
			if err != nil || pid == os.Getpid() || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
				continue
			}
			stale = append(stale, filepath.Join(parent, e.Name()))
		}
	}
	for _, d := range stale {
		_ = os.WriteFile(filepath.Join(d, "freezer.state"), []byte("THAWED"), 0) // v1 freezer
		_ = os.WriteFile(filepath.Join(d, "cgroup.freeze"), []byte("0"), 0)      // v2
		if b, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err == nil {
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
	removed := 0
	for _, d := range stale {
		if os.Remove(d) == nil {
			removed++
		}
	}
	if removed > 0 {
		p.log.Info("removed the cgroups of sandboxes of daemons that died", "count", removed)
	}
}
