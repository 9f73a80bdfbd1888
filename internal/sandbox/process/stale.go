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
// no longer runs. Their sandboxes' inits exited with the control socket,
// so the sets are empty; one that is not (a pid reused) is left alone by
// rmdir itself.
func (p *cgroupPool) removeStale() {
	parents := make([]string, 0, len(p.parents)+1)
	for _, d := range p.parents {
		parents = append(parents, d)
	}
	if p.v2 != "" {
		parents = append(parents, p.v2)
	}
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
			if err := os.Remove(filepath.Join(parent, e.Name())); err == nil {
				p.log.Info("removed the cgroup of a sandbox from a daemon that died", "cgroup", e.Name())
			}
		}
	}
}
