//go:build linux

package sbinit

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Build mode (ActivateConfig.Build) runs a template's build steps as root of
// the sandbox's user namespace, which is mapped to the sandbox's own
// unprivileged host uid range, never to host root. The steps keep only the
// capabilities package managers use to install files with their owners and
// modes and to drop to their own service users; everything that changes
// mounts, namespaces, the network, the kernel, limits or other processes
// stays out (and seccomp, landlock and the cgroups apply as in every
// sandbox). See docs/RATIONALE.md ("Build mode").
var BuildCaps = []uintptr{
	unix.CAP_CHOWN,
	unix.CAP_DAC_OVERRIDE,
	unix.CAP_FOWNER,
	unix.CAP_FSETID,
	unix.CAP_SETUID,
	unix.CAP_SETGID,
	unix.CAP_KILL,
}

// capMask is caps as a 64-bit capability set.
func capMask(caps []uintptr) uint64 {
	var m uint64
	for _, c := range caps {
		m |= 1 << c
	}
	return m
}

// lastCap is the kernel's highest capability number.
func lastCap() (uintptr, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("cap_last_cap: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 || n > 63 {
		return 0, fmt.Errorf("cap_last_cap %q", b)
	}
	return uintptr(n), nil
}

// dropToBuildCaps leaves the calling OS thread (and so every process it
// later starts) with only BuildCaps: the bounding set loses every other
// capability (so no exec, setuid program or file capability can bring one
// back), the ambient and inheritable sets are emptied, and the effective and
// permitted sets become BuildCaps. The caller holds the thread
// (runtime.LockOSThread) and is root of the sandbox's user namespace.
func dropToBuildCaps() error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	keep := capMask(BuildCaps)
	for c := uintptr(0); c <= last; c++ {
		if keep&(1<<c) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(keep), Permitted: uint32(keep)},
		{Effective: uint32(keep >> 32), Permitted: uint32(keep >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}
