//go:build linux && (amd64 || arm64)

package sbinit

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// runFilter interprets the classic BPF program prog (only the instructions
// buildFilter emits) on a struct seccomp_data and returns the action.
func runFilter(t testing.TB, prog []unix.SockFilter, nr uint32, args [6]uint64) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.LittleEndian.PutUint32(data[offNr:], nr)
	binary.LittleEndian.PutUint32(data[offArch:], auditArch)
	for i, a := range args {
		binary.LittleEndian.PutUint64(data[offArg0+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case ldAbs:
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case andK:
			acc &= in.K
		case jeqK, jsetK:
			hit := acc == in.K
			if in.Code == jsetK {
				hit = acc&in.K != 0
			}
			if hit {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case retK:
			return in.K
		default:
			t.Fatalf("instruction %d: unexpected code %#x", pc, in.Code)
		}
	}
	t.Fatal("program ran off its end")
	return 0
}

// wantSocketVerdict is the allowlist as a plain function: what the filter
// must answer for socket(domain, typ, proto) and socketpair.
func wantSocketVerdict(domain, typ, proto uint64) uint32 {
	d, ty, p := uint32(domain), uint32(typ)&0xf, uint32(proto)
	switch d {
	case unix.AF_UNIX:
		return seccompRetAllow
	case unix.AF_INET, unix.AF_INET6:
		if ty == unix.SOCK_RAW || ty == 10 {
			return seccompRetErrno | uint32(unix.EPERM)
		}
		return seccompRetAllow
	case unix.AF_NETLINK:
		if p == unix.NETLINK_ROUTE {
			return seccompRetAllow
		}
		return seccompRetErrno | uint32(unix.EPROTONOSUPPORT)
	}
	return seccompRetErrno | uint32(unix.EAFNOSUPPORT)
}

// TestSocketFilterAllowlistClass runs the whole seccomp program over every
// address family number (and ones with high bits set, which the kernel
// truncates to an int like the filter does), each socket type and a set of
// protocols, for socket(2) and socketpair(2): only the allowlist passes.
func TestSocketFilterAllowlistClass(t *testing.T) {
	prog := buildFilter()
	for _, nr := range []uint32{unix.SYS_SOCKET, unix.SYS_SOCKETPAIR} {
		for domain := uint64(0); domain < 300; domain++ {
			for _, hi := range []uint64{0, 1 << 32, 0xffffffff << 32} {
				for typ := uint64(0); typ < 16; typ++ {
					for _, proto := range []uint64{0, 1, 4, 6, 9, 12, 15, 17, 58, 255} {
						args := [6]uint64{domain | hi, typ | unix.SOCK_CLOEXEC, proto}
						got, want := runFilter(t, prog, nr, args), wantSocketVerdict(domain, typ, proto)
						if got != want {
							t.Fatalf("nr %d socket(%#x, %d, %d): %#x, want %#x", nr, domain|hi, typ, proto, got, want)
						}
					}
				}
			}
		}
	}
	// Other calls are not affected by the socket checks.
	if got := runFilter(t, prog, unix.SYS_CONNECT, [6]uint64{40}); got != seccompRetAllow {
		t.Fatalf("connect: %#x", got)
	}
	if got := runFilter(t, prog, unix.SYS_MOUNT, [6]uint64{}); got != seccompRetErrno|uint32(unix.EPERM) {
		t.Fatalf("mount: %#x", got)
	}
}

func FuzzSocketFilter(f *testing.F) {
	for _, c := range [][3]uint64{{1, 1, 0}, {2, 3, 1}, {40, 1, 0}, {16, 3, 15}, {16, 3, 0}, {10, 10, 0}, {1 << 40, 1, 0}} {
		f.Add(c[0], c[1], c[2], true)
	}
	prog := buildFilter()
	f.Fuzz(func(t *testing.T, domain, typ, proto uint64, pair bool) {
		nr := uint32(unix.SYS_SOCKET)
		if pair {
			nr = unix.SYS_SOCKETPAIR
		}
		if got, want := runFilter(t, prog, nr, [6]uint64{domain, typ, proto}), wantSocketVerdict(domain, typ, proto); got != want {
			t.Fatalf("socket(%#x, %#x, %#x): %#x, want %#x", domain, typ, proto, got, want)
		}
	})
}

func TestSeccompFilterSize(t *testing.T) {
	if n := len(buildFilter()); n > 4096 || n < 20 {
		t.Fatalf("filter has %d instructions", n)
	}
}
