//go:build linux

package sbinit

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestUseInitFDClass: the spawner refuses a malformed or closed init fd,
// or one among the fds a start places at 0..3; a good one is moved to 64
// or above, close-on-exec, and the original closed.
func TestUseInitFDClass(t *testing.T) {
	old := initPath
	defer func() { initPath = old }()
	for _, v := range []string{"", "x", "3", "0", "-1", "4x", "99999", "1000000000000"} {
		if err := useInitFD(v); err == nil {
			t.Errorf("useInitFD(%q) accepted", v)
		}
		if initPath != old {
			t.Fatalf("useInitFD(%q) changed the init path to %q", v, initPath)
		}
	}
	fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := useInitFD(strconv.Itoa(fd)); err != nil {
		t.Fatal(err)
	}
	high, err := strconv.Atoi(strings.TrimPrefix(initPath, "/proc/self/fd/"))
	if err != nil || high < 64 {
		t.Fatalf("init path %q, want /proc/self/fd/N with N >= 64", initPath)
	}
	defer unix.Close(high)
	if flags, err := unix.FcntlInt(uintptr(high), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("moved fd flags %d %v: want close-on-exec", flags, err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
		t.Fatalf("fd %d still open after the move", fd)
	}
}
