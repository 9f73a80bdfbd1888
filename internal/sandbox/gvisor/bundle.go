//go:build linux

package gvisor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// The "host" template for gVisor mirrors the process tier's: a shared,
// read-only root directory holding only mount points and the /bin -> usr/bin
// style symlinks, the host's system directories bind-mounted read-only (the
// gofer mediates every access), secrets masked by an empty file, and
// /workspace and /tmp bind-mounted from per-sandbox host tmpfs mounts whose
// size is the disk limit.

var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"}

var maskedFiles = []string{
	"/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-",
	"/etc/sudoers", "/etc/security/opasswd", "/etc/machine-id",
}

// buildTemplateRoot creates the shared read-only root directory.
func buildTemplateRoot(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range []string{"proc", "dev", "workspace", "tmp", "sys", "run/agentcloud"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for _, p := range systemDirs {
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		dst := filepath.Join(dir, p)
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if _, err := os.Lstat(dst); err == nil {
				continue
			}
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
		} else if fi.IsDir() {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		}
	}
	return os.WriteFile(filepath.Join(dir, ".empty"), nil, 0o444)
}

// ociSpec builds the container spec for one sandbox.
func ociSpec(templateRoot, rwDir string, l sandbox.Limits, seccomp bool) *specs.Spec {
	nofile := uint64(4096)
	s := &specs.Spec{
		Version:  specs.Version,
		Hostname: "sandbox",
		Root:     &specs.Root{Path: templateRoot, Readonly: true},
		Process: &specs.Process{
			// pid 1 only keeps the sandbox alive; work arrives via runsc exec.
			// With python3 and --host-uds, setup makes it the supervisor of
			// the egress relay and the exec agent instead (initpy.go).
			// It runs as a user of its own: the sandbox user cannot signal
			// it (kill -9 -1 would otherwise stop the whole container).
			Args:            []string{"/bin/sh", "-c", "trap '' TERM HUP INT; while :; do sleep 3600; done"},
			Env:             sandbox.MergeEnv(),
			Cwd:             sandbox.WorkspaceDir,
			User:            specs.User{UID: initUID, GID: initGID},
			NoNewPrivileges: true,
			Capabilities:    &specs.LinuxCapabilities{},
			// runsc exec processes inherit these: RLIMIT_NPROC, which the
			// sentry enforces per user, is the sandbox's pids limit.
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Hard: nofile, Soft: nofile},
				{Type: "RLIMIT_CORE", Hard: 0, Soft: 0},
				{Type: "RLIMIT_NPROC", Hard: uint64(l.Pids), Soft: uint64(l.Pids)},
			},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "mode=755", "size=65536k"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "nodev", "noexec", "mode=1777", fmt.Sprintf("size=%dm", sandbox.ShmMB)}},
			{Destination: sandbox.WorkspaceDir, Type: "bind", Source: filepath.Join(rwDir, "workspace"), Options: []string{"rbind", "rw", "nosuid", "nodev"}},
			{Destination: sandbox.TmpDir, Type: "bind", Source: filepath.Join(rwDir, "tmp"), Options: []string{"rbind", "rw", "nosuid", "nodev"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			Resources: resources(l),
			MaskedPaths: []string{
				"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/sysrq-trigger",
			},
			ReadonlyPaths: []string{"/proc/sys", "/proc/irq", "/proc/bus", "/proc/fs"},
		},
	}
	for _, p := range systemDirs {
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() && fi.Mode()&os.ModeSymlink == 0 {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: p, Type: "bind", Source: p, Options: []string{"rbind", "ro", "nosuid", "nodev"}})
		}
	}
	for _, p := range maskedFiles {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: p, Type: "bind", Source: filepath.Join(templateRoot, ".empty"), Options: []string{"bind", "ro"}})
		}
	}
	if seccomp {
		s.Linux.Seccomp = seccompProfile()
	}
	return s
}

// initUID and initGID run the container's keep-alive pid 1 or the egress
// relay: an id no sandboxed program runs as, inside the sentry.
const (
	initUID = 65534
	initGID = 65534
)

// The host cgroup holds the sentry and gofer as well as the application:
// their threads and memory come on top of the sandbox's own limits.
// Tasks inside the sandbox are bounded by RLIMIT_NPROC (Limits.Pids); on
// the host, runsc's ptrace platform keeps a stub process per address
// space with a thread for every sentry thread that ran in it, so one task
// inside costs many host threads (about 20 per task after a fork bomb at
// the limit; see docs/RATIONALE.md). The host pids limit is a ceiling
// against a runaway sentry, far above what the sandbox's own limit lets
// its programs cause.
const (
	sentryPidsOverhead   = 512
	hostTasksPerTask     = 32
	sentryMemoryOverhead = 256 // MiB
)

// hostPids is the host pids cgroup limit for a sandbox with limits l.
func hostPids(l sandbox.Limits) int { return sentryPidsOverhead + hostTasksPerTask*l.Pids }

// hostMemoryMB is the host memory cgroup limit for a sandbox with limits l.
func hostMemoryMB(l sandbox.Limits) int { return l.HostMemoryMB() + sentryMemoryOverhead }

func resources(l sandbox.Limits) *specs.LinuxResources {
	mem := int64(hostMemoryMB(l)) << 20
	period := uint64(100000)
	quota := int64(l.CPUs * float64(period))
	return &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &mem},
		CPU:    &specs.LinuxCPU{Period: &period, Quota: &quota},
		Pids:   &specs.LinuxPids{Limit: int64(hostPids(l))},
	}
}

// seccompProfile is applied by the sentry to the sandboxed application
// (runsc --oci-seccomp): the same deny list as the process tier.
func seccompProfile() *specs.LinuxSeccomp {
	eperm := uint(unix.EPERM)
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchAARCH64},
		Syscalls: []specs.LinuxSyscall{{
			Names: []string{
				"mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
				"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
				"bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
				"ptrace", "process_vm_readv", "process_vm_writev", "reboot", "swapon", "swapoff",
				"acct", "settimeofday", "clock_settime", "adjtimex", "open_by_handle_at",
				"name_to_handle_at", "syslog", "io_uring_setup", "io_uring_enter", "io_uring_register",
			},
			Action:   specs.ActErrno,
			ErrnoRet: &eperm,
		}, {
			// clone with namespace flags
			Names:    []string{"clone"},
			Action:   specs.ActErrno,
			ErrnoRet: &eperm,
			Args: []specs.LinuxSeccompArg{{
				Index: 0, Value: unix.CLONE_NEWUSER, ValueTwo: unix.CLONE_NEWUSER, Op: specs.OpMaskedEqual,
			}},
		}},
	}
}

func writeSpec(bundle string, s *specs.Spec) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		return fmt.Errorf("write OCI spec: %w", err)
	}
	return nil
}
