//go:build linux && (amd64 || arm64)

package sbinit

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The seccomp filter is a deny list modelled on the intent of Docker's
// default profile: everything a sandboxed program needs is allowed, and the
// calls that reconfigure the kernel, namespaces or other processes, or that
// widen the kernel attack surface, fail with EPERM. It is built by hand from
// classic BPF (no cgo, no libseccomp).

const (
	seccompRetKillProcess = 0x80000000
	seccompRetErrno       = 0x00050000
	seccompRetAllow       = 0x7fff0000

	seccompSetModeFilter   = 1
	seccompFilterFlagTsync = 1

	// offsets into struct seccomp_data
	offNr   = 0
	offArch = 4
	offArg0 = 16
	offArg1 = 24
	offArg2 = 32
)

// Socket address families a sandboxed program may open are an allowlist, so a
// family the kernel gains later (or one loaded as a module on demand) is
// refused too. AF_UNIX and AF_INET/AF_INET6 (not raw) are what programs use;
// inside the sandbox's network namespace they reach only loopback and the
// egress proxy. AF_NETLINK is allowed for NETLINK_ROUTE alone, which libc's
// getaddrinfo and interface listings read; it sees only the sandbox's own
// namespace. Everything else fails with EAFNOSUPPORT, as on a kernel built
// without the family, so libraries fall back instead of crashing: AF_VSOCK
// (talks to the hypervisor or host, outside any network namespace),
// AF_PACKET (raw frames), AF_ALG, AF_KEY, AF_XDP, AF_BLUETOOTH, AF_CAN,
// AF_TIPC, AF_RDS and the rest (kernel attack surface no sandboxed program
// needs). SOCK_RAW and SOCK_PACKET of AF_INET/AF_INET6 fail with EPERM, as
// without CAP_NET_RAW. See docs/RATIONALE.md.
//
// socketFilter checks socket(2) and socketpair(2) (domain, type, protocol)
// against that allowlist. It expects the syscall number in A and falls
// through to the next check, A unchanged, for other calls.
func socketFilter() []unix.SockFilter {
	const (
		retEAFNO   = seccompRetErrno | uint32(unix.EAFNOSUPPORT)
		retEPROTO  = seccompRetErrno | uint32(unix.EPROTONOSUPPORT)
		sockPacket = 10 // SOCK_PACKET: the obsolete packet socket of AF_INET
	)
	a := &asm{}
	a.jeq(unix.SYS_SOCKET, "check", "")
	a.jeq(unix.SYS_SOCKETPAIR, "check", "end")
	a.label("check")
	a.op(stmt(ldAbs, offArg0)) // domain (an int: the low 32 bits)
	a.jeq(unix.AF_UNIX, "allow", "")
	a.jeq(unix.AF_INET, "inet", "")
	a.jeq(unix.AF_INET6, "inet", "")
	a.jeq(unix.AF_NETLINK, "netlink", "")
	a.op(stmt(retK, retEAFNO))
	a.label("inet")
	a.op(stmt(ldAbs, offArg1), stmt(andK, 0xf)) // type & SOCK_TYPE_MASK
	a.jeq(unix.SOCK_RAW, "eperm", "")
	a.jeq(sockPacket, "eperm", "allow")
	a.label("eperm")
	a.op(stmt(retK, retEPERM))
	a.label("netlink")
	a.op(stmt(ldAbs, offArg2)) // protocol
	a.jeq(unix.NETLINK_ROUTE, "allow", "")
	a.op(stmt(retK, retEPROTO))
	a.label("allow")
	a.op(stmt(retK, seccompRetAllow))
	a.label("end")
	return a.assemble()
}

// asm assembles a classic BPF fragment with named jump targets ("" is the
// next instruction), so that branch offsets are computed, not counted.
type asm struct {
	prog   []unix.SockFilter
	jumps  map[int][2]string // instruction index -> true/false targets
	labels map[string]int
}

func (a *asm) op(f ...unix.SockFilter) { a.prog = append(a.prog, f...) }

func (a *asm) jeq(k uint32, jt, jf string) {
	if a.jumps == nil {
		a.jumps = map[int][2]string{}
	}
	a.jumps[len(a.prog)] = [2]string{jt, jf}
	a.prog = append(a.prog, jump(jeqK, k, 0, 0))
}

func (a *asm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.prog)
}

func (a *asm) assemble() []unix.SockFilter {
	off := func(from int, to string) uint8 {
		if to == "" {
			return 0
		}
		target, ok := a.labels[to]
		if !ok || target <= from || target-from-1 > 255 {
			panic(fmt.Sprintf("seccomp: bad jump from %d to %q", from, to))
		}
		return uint8(target - from - 1)
	}
	for i, j := range a.jumps {
		a.prog[i].Jt, a.prog[i].Jf = off(i, j[0]), off(i, j[1])
	}
	return a.prog
}

// deniedSyscalls fail with EPERM. Architecture-specific extras are in
// archDeniedSyscalls.
var deniedSyscalls = []uintptr{
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT,
	unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK,
	unix.SYS_MOVE_MOUNT, unix.SYS_OPEN_TREE, unix.SYS_MOUNT_SETATTR,
	unix.SYS_UNSHARE, unix.SYS_SETNS,
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD,
	unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD,
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV,
	unix.SYS_KCMP, unix.SYS_PIDFD_GETFD,
	unix.SYS_REBOOT, unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_ACCT,
	unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME, unix.SYS_CLOCK_ADJTIME, unix.SYS_ADJTIMEX,
	unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_NAME_TO_HANDLE_AT,
	unix.SYS_QUOTACTL, unix.SYS_SYSLOG, unix.SYS_VHANGUP, unix.SYS_LOOKUP_DCOOKIE,
	unix.SYS_SETHOSTNAME, unix.SYS_SETDOMAINNAME, unix.SYS_FANOTIFY_INIT,
	unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER,
}

// cloneNamespaceFlags are refused in clone(2); clone3 is refused outright
// (ENOSYS, so libc falls back to clone) because its flags live in memory the
// filter cannot read.
const cloneNamespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

const (
	ldAbs    = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	jeqK     = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	jsetK    = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	andK     = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
	retK     = unix.BPF_RET | unix.BPF_K
	retEPERM = seccompRetErrno | uint32(unix.EPERM)
)

// buildFilter assembles the program.
func buildFilter() []unix.SockFilter {
	p := []unix.SockFilter{
		stmt(ldAbs, offArch),
		jump(jeqK, auditArch, 1, 0),
		stmt(retK, seccompRetKillProcess),
		stmt(ldAbs, offNr),
	}
	p = append(p, archPrologue()...)

	p = append(p, socketFilter()...)
	// clone(flags, ...): no new namespaces.
	p = append(p,
		jump(jeqK, unix.SYS_CLONE, 0, 4),
		stmt(ldAbs, offArg0),
		jump(jsetK, cloneNamespaceFlags, 0, 1),
		stmt(retK, retEPERM),
		stmt(retK, seccompRetAllow),
		jump(jeqK, unix.SYS_CLONE3, 0, 1),
		stmt(retK, seccompRetErrno|uint32(unix.ENOSYS)),
	)
	// ioctl(fd, TIOCSTI|TIOCLINUX): no injecting input into a terminal.
	p = append(p,
		jump(jeqK, unix.SYS_IOCTL, 0, 5),
		stmt(ldAbs, offArg1),
		jump(jeqK, unix.TIOCSTI, 1, 0),
		jump(jeqK, unix.TIOCLINUX, 0, 1),
		stmt(retK, retEPERM),
		stmt(retK, seccompRetAllow),
	)
	// The argument checks clobbered A only inside their own branches; reload.
	p = append(p, stmt(ldAbs, offNr))
	for _, nr := range append(append([]uintptr{}, deniedSyscalls...), archDeniedSyscalls...) {
		p = append(p, jump(jeqK, uint32(nr), 0, 1), stmt(retK, retEPERM))
	}
	return append(p, stmt(retK, seccompRetAllow))
}

// installSeccomp sets no_new_privs and installs prog (buildFilter's, made
// at setup) on every thread of the process (SECCOMP_FILTER_FLAG_TSYNC also
// carries no_new_privs to the other threads). Children inherit both across
// fork and execve.
func installSeccomp(prog []unix.SockFilter) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, seccompSetModeFilter, seccompFilterFlagTsync, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return fmt.Errorf("seccomp: %w", errno)
	}
	if r != 0 {
		return fmt.Errorf("seccomp: thread %d could not be synchronized", r)
	}
	return nil
}
