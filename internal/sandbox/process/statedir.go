//go:build linux

package process

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stateDirPrefix names a daemon's sandbox state directory in the temporary
// directory: agentcloud-sandbox-<pid>-<random>.
const stateDirPrefix = "agentcloud-sandbox-"

// NewStateDir makes this daemon's sandbox state directory in parent (the
// system's temporary directory when empty), searchable by the uid-mapped
// sandbox inits (0711; not under the daemon's data dir, which is 0700 — an
// init must be able to search the path to its root), and removes the ones daemons that died without
// closing (kill -9, a crash) left there: directories named for a pid that
// no longer runs. What still runs from such a directory (a gVisor sandbox)
// is killed and what is mounted below it detached first; a directory that
// stays mounted is left alone. cleanups then run on each stale directory
// before it is removed (gvisor.RemoveLeftovers removes its containers'
// cgroups, which outlive their processes).
func NewStateDir(parent string, cleanups ...func(staleDir string)) (string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	removeStaleStateDirs(parent, cleanups)
	dir, err := os.MkdirTemp(parent, fmt.Sprintf("%s%d-", stateDirPrefix, os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("sandbox state dir: %w", err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("sandbox state dir: %w", err)
	}
	return dir, nil
}

func removeStaleStateDirs(parent string, cleanups []func(string)) {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	mounted := mountPoints()
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), stateDirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		if killHolders(dir) > 0 || hasMountBelow(mounted, dir) {
			unmountBelow(mounted, dir)
			mounted = mountPoints()
			if hasMountBelow(mounted, dir) {
				continue // never remove through a mount
			}
		}
		for _, c := range cleanups {
			c(dir)
		}
		_ = os.RemoveAll(dir)
	}
}

// killHolders kills the processes a dead daemon's sandboxes left running
// with dir in their command line (the gVisor tier's runsc sandbox and
// gofer processes, named by their --root and --bundle under dir: they are
// not children of the daemon, so its death does not end them), and waits,
// bounded, for them to go. It returns how many it killed.
func killHolders(dir string) int {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	needle := []byte(dir + "/")
	var pids []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmd, needle) {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil && !isZombie(pid); i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return len(pids)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] == 'Z'
	}
	return false
}

// DetachMountsBelow detaches every mount at or below dir, deepest first,
// and reports whether none is left there: a directory still mounted must
// never be removed (RemoveAll would delete through the mount). The gVisor
// tier uses it for a dead daemon's bundles.
func DetachMountsBelow(dir string) bool {
	// mountinfo lists mount points by their real path: a dir reached
	// through a symlink would match none and report nothing mounted.
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	unmountBelow(mountPoints(), dir)
	return !hasMountBelow(mountPoints(), dir)
}

// unmountBelow detaches every mount under dir, deepest first.
func unmountBelow(mounts []string, dir string) {
	var below []string
	for _, m := range mounts {
		if m == dir || strings.HasPrefix(m, dir+"/") {
			below = append(below, m)
		}
	}
	sort.Slice(below, func(i, j int) bool { return len(below[i]) > len(below[j]) })
	for _, m := range below {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
}

// mountPoints lists this mount namespace's mount points.
func mountPoints() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 {
			out = append(out, unescapeMount(fields[4]))
		}
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func hasMountBelow(mounts []string, dir string) bool {
	for _, m := range mounts {
		if m == dir || strings.HasPrefix(m, dir+"/") {
			return true
		}
	}
	return false
}
