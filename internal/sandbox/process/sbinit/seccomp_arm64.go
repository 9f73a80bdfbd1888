//go:build linux

package sbinit

import "golang.org/x/sys/unix"

const auditArch = 0xc00000b7 // AUDIT_ARCH_AARCH64

func archPrologue() []unix.SockFilter { return nil }

var archDeniedSyscalls = []uintptr{unix.SYS_NFSSERVCTL}
