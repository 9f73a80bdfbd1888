//go:build linux

package gvisor

// Noticing that a gVisor sandbox died. runsc run --detach leaves the
// sandbox process (the sentry) running under the host's init, not as our
// child, so its exit cannot be waited for. Prepare opens a pidfd for it
// instead; every operation checks it with pidfd_send_signal(0), which
// costs one system call and cannot be fooled by pid reuse. A sandbox
// whose sentry is gone (out of memory, killed from the host, its init
// exited) is failed: sandbox.Sandbox.Failure says why, and every
// operation but Close answers that error.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// watch reads the sandbox process's pid from pidFile (runsc run --pid-file)
// and opens a pidfd for it.
func (c *container) watch(pidFile string) error {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return fmt.Errorf("sandbox pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("sandbox pid %q: invalid", b)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("watch sandbox process %d: %w", pid, err)
	}
	c.sandboxPID, c.pidfd = pid, fd
	return nil
}

// unwatch closes the pidfd.
func (c *container) unwatch() {
	c.mu.Lock()
	fd := c.pidfd
	c.pidfd = -1
	c.mu.Unlock()
	if fd >= 0 {
		_ = unix.Close(fd)
	}
}

// alive reports whether the sandbox process still runs.
func (c *container) alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pidfd < 0 {
		return true // not watched (closed): nothing to report
	}
	return unix.PidfdSendSignal(c.pidfd, 0, nil, 0) == nil
}

// Failure implements sandbox.Sandbox.
func (c *container) Failure() error {
	c.mu.Lock()
	closed, failure := c.closed, c.failure
	c.mu.Unlock()
	switch {
	case closed:
		return nil
	case failure != nil:
		return failure
	case c.alive():
		return nil
	}
	f := &sandbox.FailedError{ID: c.id, Reason: c.deathReason()}
	c.mu.Lock()
	if c.failure == nil {
		c.failure = f
		c.tier.log.Warn("gvisor sandbox failed", "sandbox", c.id, "reason", f.Reason)
	}
	f = c.failure
	c.mu.Unlock()
	return f
}

// waitFailure gives a sandbox whose runsc exec just failed up to d to show
// whether it died, and returns its failure, or nil if it lives on.
func (c *container) waitFailure(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if err := c.Failure(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// deathReason says why the sandbox process is gone: the host killed it at
// the memory limit (the cgroup counted an OOM kill), or it exited.
func (c *container) deathReason() string {
	c.mu.Lock()
	l := c.spec.Limits
	c.mu.Unlock()
	switch {
	case c.oomKills() > 0:
		return fmt.Sprintf("out of memory: the host killed the gVisor sandbox at its memory limit "+
			"(%d MiB for processes, plus the files in /workspace, /tmp and /dev/shm and %d MiB for the sandbox kernel)",
			l.MemoryMB, sentryMemoryOverhead)
	case c.hostPidsHits() > 0:
		return fmt.Sprintf("the gVisor sandbox kernel could not create host threads: it reached its ceiling of %d host tasks "+
			"(under runsc's ptrace platform every process inside costs host threads; a fork bomb that runs for long gets there)",
			hostPids(l))
	}
	return fmt.Sprintf("the gVisor sandbox kernel (host process %d) exited", c.sandboxPID)
}

// hostPidsHits is how often the host pids cgroup refused a new task.
func (c *container) hostPidsHits() int64 {
	b, err := os.ReadFile(c.cgroupFile("pids", "pids.events"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "max "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
