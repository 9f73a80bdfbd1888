//go:build linux

package sbinit

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Landlock, written against the raw syscalls (no cgo, no psx): the whole
// tree is readable and executable, writes are allowed only beneath
// /workspace, /tmp and /dev/shm and to a few device files (and beneath /
// for an image template, whose root is the sandbox's own overlay). The rights
// handled depend on the kernel's ABI version; on a kernel without Landlock
// the sandbox still has its mount namespace, seccomp and uid separation.

const (
	llExecute    = 1 << 0
	llWriteFile  = 1 << 1
	llReadFile   = 1 << 2
	llReadDir    = 1 << 3
	llRemoveDir  = 1 << 4
	llRemoveFile = 1 << 5
	llMakeChar   = 1 << 6
	llMakeDir    = 1 << 7
	llMakeReg    = 1 << 8
	llMakeSock   = 1 << 9
	llMakeFifo   = 1 << 10
	llMakeBlock  = 1 << 11
	llMakeSym    = 1 << 12
	llRefer      = 1 << 13 // ABI 2
	llTruncate   = 1 << 14 // ABI 3
	llIoctlDev   = 1 << 15 // ABI 5

	llCreateRulesetVersion = 1
	llRulePathBeneath      = 1
)

type llRulesetAttr struct {
	handledAccessFS  uint64
	handledAccessNet uint64
	scoped           uint64
}

type llPathBeneathAttr struct {
	allowedAccess uint64
	parentFD      int32
}

// landlockABI returns the kernel's Landlock ABI version, 0 if unsupported.
func landlockABI() int {
	r, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, llCreateRulesetVersion)
	if errno != 0 {
		return 0
	}
	return int(r)
}

// restrictLandlock restricts the calling OS thread (and every process it
// later forks) to the sandbox's write set. The caller must hold the thread
// (runtime.LockOSThread) and have no_new_privs set.
func restrictLandlock(writableRoot bool, writable []string) error {
	abi := landlockABI()
	if abi <= 0 {
		return nil
	}
	fileRights := uint64(llExecute | llWriteFile | llReadFile)
	handled := fileRights | llReadDir | llRemoveDir | llRemoveFile | llMakeChar | llMakeDir |
		llMakeReg | llMakeSock | llMakeFifo | llMakeBlock | llMakeSym
	if abi >= 2 {
		handled |= llRefer
	}
	if abi >= 3 {
		handled |= llTruncate
		fileRights |= llTruncate
	}
	if abi >= 5 {
		handled |= llIoctlDev
		fileRights |= llIoctlDev
	}
	attr := llRulesetAttr{handledAccessFS: handled}
	size := unsafe.Sizeof(attr.handledAccessFS) // only the fields this ABI knows
	r, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), size, 0)
	if errno != 0 {
		return fmt.Errorf("landlock create ruleset: %w", errno)
	}
	rfd := int(r)
	defer unix.Close(rfd)

	rules := []struct {
		path   string
		access uint64
	}{
		{"/", llExecute | llReadFile | llReadDir},
		{"/workspace", handled},
		{"/tmp", handled},
		{"/dev/shm", handled},
		{"/proc", llReadFile | llReadDir | llWriteFile},
		{"/dev/pts", fileRights &^ llExecute}, // the sandbox's own terminals
	}
	if writableRoot {
		// An image template's root is the sandbox's own overlay: writes
		// land in its upper dir, never in the shared layers. Read-only
		// mounts (/proc/sys, /dev) stay read-only.
		rules[0].access = handled
	}
	for _, p := range writable { // the sandbox's writable volumes
		rules = append(rules, struct {
			path   string
			access uint64
		}{p, handled})
	}
	for _, d := range devices {
		rules = append(rules, struct {
			path   string
			access uint64
		}{"/dev/" + d, fileRights &^ llExecute})
	}
	for _, rule := range rules {
		fd, err := unix.Open(rule.path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return fmt.Errorf("landlock open %s: %w", rule.path, err)
		}
		pb := llPathBeneathAttr{allowedAccess: rule.access, parentFD: int32(fd)}
		_, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(rfd), llRulePathBeneath, uintptr(unsafe.Pointer(&pb)), 0, 0, 0)
		unix.Close(fd)
		if errno != 0 {
			return fmt.Errorf("landlock rule %s: %w", rule.path, errno)
		}
	}
	if _, _, errno := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(rfd), 0, 0); errno != 0 {
		return fmt.Errorf("landlock restrict self: %w", errno)
	}
	return nil
}
