package isolate

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Template images live in sealed memfds. A restore maps the file
// copy-on-write over the new isolate's linear memory (mapImage), so restore
// costs O(pages touched) rather than a copy of the whole image, and the
// pages no isolate writes are in RAM once per template, not once per
// session. The Template's own view of the image is a read-only shared
// mapping of the same file, so it is not duplicated in the Go heap either.

// imageFile is a sealed memfd holding one template image.
type imageFile struct {
	fd  int
	buf []byte // read-only shared mapping of the whole file
	// mu guards closed against pool resets (pool.go), which read buf.
	mu     sync.Mutex
	closed bool
	// Prefill's bookkeeping (prefill.go): when a restore of this image
	// last ran (unix ns), and whether the pool refused a prefilled
	// instance of it (then none is made again).
	lastRestore atomic.Int64
	noPrefill   atomic.Bool
}

// newImageFile copies img into a sealed memfd. The caller arranges for
// close to run (Template does so with runtime.AddCleanup).
func newImageFile(img []byte) (*imageFile, error) {
	if len(img) == 0 || len(img)%syscall.Getpagesize() != 0 {
		return nil, fmt.Errorf("isolate: image of %d bytes is not page-aligned", len(img))
	}
	fd, err := unix.MemfdCreate("agentcloud-template", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("isolate: memfd_create: %w", err)
	}
	f := &imageFile{fd: fd}
	ok := false
	defer func() {
		if !ok {
			f.close()
		}
	}()
	if err := unix.Ftruncate(fd, int64(len(img))); err != nil {
		return nil, fmt.Errorf("isolate: memfd truncate: %w", err)
	}
	for off := 0; off < len(img); {
		n, err := unix.Pwrite(fd, img[off:], int64(off))
		if err != nil {
			return nil, fmt.Errorf("isolate: memfd write: %w", err)
		}
		off += n
	}
	seals := unix.F_SEAL_WRITE | unix.F_SEAL_GROW | unix.F_SEAL_SHRINK | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		return nil, fmt.Errorf("isolate: memfd seal: %w", err)
	}
	if f.buf, err = unix.Mmap(fd, 0, len(img), unix.PROT_READ, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("isolate: mmap memfd: %w", err)
	}
	ok = true
	return f, nil
}

func (f *imageFile) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	poolDrop(f)
	if f.buf != nil {
		_ = unix.Munmap(f.buf)
		f.buf = nil
	}
	if f.fd >= 0 {
		_ = unix.Close(f.fd)
		f.fd = -1
	}
}

// attachImage backs t's image with a memfd when possible; on failure t
// keeps its heap copy and restores copy it.
func (t *Template) attachImage(img []byte) {
	t.image = img
	f, err := newImageFile(img)
	if err != nil {
		return
	}
	t.file = f
	t.image = f.buf
	runtime.AddCleanup(t, func(f *imageFile) { f.close() }, f)
}
