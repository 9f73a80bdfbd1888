package isolate

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Fault-around: a read fault on a file mapping maps not only the page read
// but every neighbour in the same aligned 64 KiB window that is in the
// page cache (the kernel's fault_around_bytes). A template's pages are all
// in its memfd's page cache, so each read fault of a restored isolate on
// its template mapping (mapImage) maps up to 16 pages, and RSS counts
// every mapped page in every session though RAM holds it once. From
// /proc/self/smaps and a perf trace of page faults after 200 fresh
// sessions of a hello agent: 93 read-only template pages mapped per
// session, of which 24 remain mapped with fault-around off; RSS per live
// session ~740 KiB, ~370 KiB of it those pages (docs/PERFORMANCE.md).
//
// madvise(MADV_RANDOM) does not turn fault-around off (Linux 6.18: the
// mapping's smaps flags gain "rr", its resident pages stay the same). What
// does is registering the mapping with a userfaultfd for write-protection:
// the kernel does no fault-around on such a mapping
// (uffd_disable_fault_around, include/linux/userfaultfd_k.h). No page is
// ever write-protected (nothing calls UFFDIO_WRITEPROTECT), so no fault
// ever reaches the descriptor and nothing reads it: the kernel handles
// every fault as before, one page at a time. One descriptor serves the
// process and stays open for its life (closing it would unregister every
// mapping). Where userfaultfd is unavailable (seccomp, the
// vm.unprivileged_userfaultfd sysctl before Linux 5.11, a kernel without
// write-protection of shmem) mappings keep fault-around: only larger.

// userfaultfd ABI (linux/userfaultfd.h; the ioctl numbers are the same on
// every Linux architecture).
const (
	uffdUserModeOnly     = 1          // UFFD_USER_MODE_ONLY
	uffdAPI              = 0xaa       // UFFD_API
	uffdioAPI            = 0xc018aa3f // _IOWR(0xaa, 0x3f, struct uffdio_api)
	uffdioRegister       = 0xc020aa00 // _IOWR(0xaa, 0x00, struct uffdio_register)
	uffdioRegisterModeWP = 1 << 1     // UFFDIO_REGISTER_MODE_WP
	uffdFeatureSigbus    = 1 << 7     // UFFD_FEATURE_SIGBUS
	uffdFeatureWPAsync   = 1 << 15    // UFFD_FEATURE_WP_ASYNC
)

// keepFaultAround leaves fault-around on (benchmarks compare the two).
var keepFaultAround atomic.Bool

// faultAroundBroken is set once registration fails in a way that will not
// change (the kernel or a policy refuses it), so later mappings skip it.
var faultAroundBroken atomic.Bool

// uffd is the process's userfaultfd, or -1 where there is none (logged
// once: sessions then keep fault-around, and RSS per session is larger).
var uffd = sync.OnceValue(func() int {
	fd, err := openUffd()
	if err != nil {
		slog.Warn("userfaultfd unavailable: session template mappings keep the kernel's fault-around (more RSS per live session)", "err", err)
		return -1
	}
	return fd
})

// openUffd opens a userfaultfd for write-protect registrations that can
// never hold a faulting thread: with UFFD_FEATURE_WP_ASYNC (Linux 6.7) the
// kernel resolves a write-protect fault itself, else with
// UFFD_FEATURE_SIGBUS (Linux 4.14) such a fault is a loud SIGBUS, not a
// thread waiting forever on a descriptor nothing reads. No page is ever
// write-protected, so neither should happen.
func openUffd() (int, error) {
	for _, features := range []uint64{uffdFeatureWPAsync, uffdFeatureSigbus} {
		fd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK|uffdUserModeOnly, 0, 0)
		if e == unix.EINVAL { // before Linux 5.11: no user-mode-only flag
			fd, _, e = unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK, 0, 0)
		}
		if e != 0 {
			return -1, fmt.Errorf("userfaultfd: %w", e)
		}
		api := struct{ api, features, ioctls uint64 }{api: uffdAPI, features: features}
		_, _, e = unix.Syscall(unix.SYS_IOCTL, fd, uffdioAPI, uintptr(unsafe.Pointer(&api)))
		if e == 0 {
			return int(fd), nil
		}
		// UFFDIO_API takes one handshake per descriptor: a refused
		// feature needs a new one.
		_ = unix.Close(int(fd))
		if e != unix.EINVAL {
			return -1, fmt.Errorf("userfaultfd api: %w", e)
		}
	}
	return -1, errors.New("userfaultfd offers neither WP_ASYNC nor SIGBUS")
}

// disableFaultAround turns fault-around off for mem, a whole mapping of a
// template file (see above); false if it stays on.
func disableFaultAround(mem []byte) bool {
	if keepFaultAround.Load() || faultAroundBroken.Load() || len(mem) == 0 {
		return false
	}
	fd := uffd()
	if fd < 0 {
		faultAroundBroken.Store(true)
		return false
	}
	reg := struct{ start, len, mode, ioctls uint64 }{
		start: uint64(uintptr(unsafePointer(mem))), len: uint64(len(mem)), mode: uffdioRegisterModeWP}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uffdioRegister, uintptr(unsafe.Pointer(&reg)))
	if e != 0 {
		if errors.Is(e, syscall.EINVAL) || errors.Is(e, syscall.EPERM) || errors.Is(e, syscall.ENOTTY) {
			faultAroundBroken.Store(true)
		}
		return false
	}
	return true
}
