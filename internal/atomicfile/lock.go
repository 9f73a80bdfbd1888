package atomicfile

import (
	"fmt"
	"os"
	"syscall"
)

// Lock takes an exclusive flock on path (created if needed) without
// waiting, so one process at a time uses what it guards (the daemon's
// data dir). It returns the open file that holds the lock; Unlock
// releases it.
func Lock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s is held by another process (another agentcloud daemon?): %w", path, err)
	}
	return f, nil
}

// Unlock releases a lock taken by Lock and closes its file (nil: nothing).
func Unlock(f *os.File) {
	if f != nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}
}
