package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// ringFile is a read cache's ring: a memfd, memory that no disk or journal
// sees and that goes with the process (docs/RATIONALE.md, "Why a single
// node keeps its session writes in a memfd read cache").
func ringFile(name string) (*os.File, error) {
	fd, err := unix.MemfdCreate("agentcloud-readcache-"+name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}
