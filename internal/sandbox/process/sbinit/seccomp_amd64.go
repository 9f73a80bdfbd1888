//go:build linux

package sbinit

import "golang.org/x/sys/unix"

const auditArch = 0xc000003e // AUDIT_ARCH_X86_64

// x32 system calls (nr | 0x40000000) are refused.
func archPrologue() []unix.SockFilter {
	return []unix.SockFilter{
		jump(jsetK, 0x40000000, 0, 1),
		stmt(retK, retEPERM),
	}
}

var archDeniedSyscalls = []uintptr{
	unix.SYS_IOPL, unix.SYS_IOPERM, unix.SYS_MODIFY_LDT, unix.SYS_USELIB,
	unix.SYS_CREATE_MODULE, unix.SYS_GET_KERNEL_SYMS, unix.SYS_QUERY_MODULE,
	unix.SYS_NFSSERVCTL, unix.SYS__SYSCTL,
}
