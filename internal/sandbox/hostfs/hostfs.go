//go:build linux

// Package hostfs performs a sandbox's file operations from the host side,
// confined to the sandbox's writable roots (/workspace and /tmp). Every
// lookup goes through openat2(2) with RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS
// and RESOLVE_NO_XDEV relative to a directory fd of the root, so symlinks,
// ".." and mount points planted by sandboxed code can never lead outside it;
// special files (FIFOs, devices) are refused so a read cannot block. Files
// and directories are created with the sandbox user's fsuid/fsgid.
//
// hostfs does not decide which paths a caller may touch beyond that
// confinement, and it knows nothing about tiers: the process tier points it at
// /proc/PID/root of the sandbox init, the gVisor tier at the host directories
// it bind-mounts into the sandbox.
package hostfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// FS is a set of writable roots of one sandbox, opened as directory fds.
type FS struct {
	mu       sync.RWMutex        // held shared by every operation, exclusively by Close
	roots    map[string]*os.File // sandbox.WorkspaceDir / sandbox.TmpDir -> O_PATH dir fd
	uid, gid int                 // host ids that new files are chowned to
}

// Open opens the writable roots below base, a host path that stands for the
// sandbox's "/" (for example /proc/PID/root). uid and gid are the host ids of
// the sandbox user.
func Open(base string, uid, gid int) (*FS, error) {
	bfd, err := unix.Open(base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open sandbox root %s: %w", base, err)
	}
	defer unix.Close(bfd)
	f := &FS{roots: map[string]*os.File{}, uid: uid, gid: gid}
	for _, r := range []string{sandbox.WorkspaceDir, sandbox.TmpDir} {
		fd, err := unix.Openat2(bfd, strings.TrimPrefix(r, "/"), &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("open sandbox %s: %w", r, err)
		}
		f.roots[r] = os.NewFile(uintptr(fd), r)
	}
	return f, nil
}

// Close closes the root fds.
func (f *FS) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.roots {
		r.Close()
	}
	f.roots = nil
	return nil
}

// asUser switches the calling OS thread's filesystem ids to the sandbox
// user, so that the kernel checks permissions and assigns ownership exactly
// as for the sandbox's own processes (a root-owned inode could not even be
// created on a tmpfs that belongs to the sandbox's user namespace). The
// returned func restores root and unlocks the thread.
func (f *FS) asUser() func() {
	runtime.LockOSThread()
	unix.Setfsgid(f.gid)
	unix.Setfsuid(f.uid)
	return func() {
		unix.Setfsuid(0)
		unix.Setfsgid(0)
		runtime.UnlockOSThread()
	}
}

func (f *FS) resolve(p string) (rootFD int, rel string, err error) {
	root, rel, err := sandbox.ResolvePath(p)
	if err != nil {
		return -1, "", err
	}
	r, ok := f.roots[root]
	if !ok {
		return -1, "", fmt.Errorf("resolve %q: %w", p, sandbox.ErrClosed)
	}
	return int(r.Fd()), rel, nil
}

func (f *FS) openat(rootFD int, rel string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat2(rootFD, rel, &unix.OpenHow{
			Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: resolveFlags,
		})
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// openParent opens the directory containing rel and returns it with the base
// name. rel must not be ".".
func (f *FS) openParent(rootFD int, rel string) (int, string, error) {
	dir, base := path.Split(rel)
	if dir == "" {
		dir = "."
	}
	fd, err := f.openat(rootFD, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	return fd, base, err
}

// WriteFile creates or truncates p and copies r into it.
func (f *FS) WriteFile(ctx context.Context, p string, r io.Reader, perm fs.FileMode) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	defer f.asUser()()
	rootFD, rel, err := f.resolve(p)
	if err != nil {
		return err
	}
	if rel == "." {
		return fmt.Errorf("write %s: is a directory", p)
	}
	if perm == 0 {
		perm = 0o644
	}
	fd, err := f.openat(rootFD, rel, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_NONBLOCK, uint32(perm.Perm()))
	if err != nil {
		return fmt.Errorf("write %s: %w", p, mapErr(err))
	}
	file := os.NewFile(uintptr(fd), p)
	defer file.Close()
	if err := checkRegular(fd); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if _, err := io.Copy(file, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("write %s: %w", p, mapErr(err))
	}
	return nil
}

// ReadFile copies the contents of p to w.
func (f *FS) ReadFile(ctx context.Context, p string, w io.Writer) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	defer f.asUser()()
	rootFD, rel, err := f.resolve(p)
	if err != nil {
		return err
	}
	fd, err := f.openat(rootFD, rel, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("read %s: %w", p, mapErr(err))
	}
	file := os.NewFile(uintptr(fd), p)
	defer file.Close()
	if err := checkRegular(fd); err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	if _, err := io.Copy(w, ctxReader{ctx, file}); err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	return nil
}

// Stat describes p without following a final symlink.
func (f *FS) Stat(ctx context.Context, p string) (sandbox.FileInfo, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	defer f.asUser()()
	rootFD, rel, err := f.resolve(p)
	if err != nil {
		return sandbox.FileInfo{}, err
	}
	fd, err := f.openat(rootFD, rel, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return sandbox.FileInfo{}, fmt.Errorf("stat %s: %w", p, mapErr(err))
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return sandbox.FileInfo{}, fmt.Errorf("stat %s: %w", p, err)
	}
	return fileInfo(displayPath(p), &st), nil
}

// List returns the entries of directory p.
func (f *FS) List(ctx context.Context, p string) ([]sandbox.FileInfo, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	defer f.asUser()()
	rootFD, rel, err := f.resolve(p)
	if err != nil {
		return nil, err
	}
	fd, err := f.openat(rootFD, rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", p, mapErr(err))
	}
	dir := os.NewFile(uintptr(fd), p)
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", p, err)
	}
	out := make([]sandbox.FileInfo, 0, len(names))
	base := displayPath(p)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // raced with a removal
		}
		out = append(out, fileInfo(path.Join(base, n), &st))
	}
	return out, nil
}

// Mkdir creates directory p and any missing parents.
func (f *FS) Mkdir(ctx context.Context, p string, perm fs.FileMode) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	defer f.asUser()()
	rootFD, rel, err := f.resolve(p)
	if err != nil {
		return err
	}
	if perm == 0 {
		perm = 0o755
	}
	cur, err := unix.Dup(rootFD)
	if err != nil {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	defer func() { unix.Close(cur) }()
	if rel == "." {
		return nil
	}
	for _, comp := range strings.Split(rel, "/") {
		err := unix.Mkdirat(cur, comp, uint32(perm.Perm()))
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("mkdir %s: %w", p, mapErr(err))
		}
		next, err := f.openat(cur, comp, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return fmt.Errorf("mkdir %s: %w", p, mapErr(err))
		}
		unix.Close(cur)
		cur = next
	}
	return nil
}

// Remove deletes p and, for a directory, everything below it. Removing a
// missing path is not an error. The roots themselves cannot be removed.
func (f *FS) Remove(ctx context.Context, p string) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	defer f.asUser()()
	rootFD, rel, err := f.resolve(p)
	if err != nil {
		return err
	}
	if rel == "." {
		return fmt.Errorf("remove %s: %w", p, sandbox.ErrPathNotAllowed)
	}
	pfd, base, err := f.openParent(rootFD, rel)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("remove %s: %w", p, mapErr(err))
	}
	defer unix.Close(pfd)
	if err := removeAt(ctx, pfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %s: %w", p, mapErr(err))
	}
	return nil
}

func removeAt(ctx context.Context, dirFD int, name string, depth int) error {
	if depth > 256 {
		return errors.New("directory tree too deep")
	}
	err := unix.Unlinkat(dirFD, name, 0)
	if err == nil || (err != unix.EISDIR && err != unix.EPERM) {
		return err
	}
	fd, err := unix.Openat(dirFD, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = ctx.Err(); err != nil {
				break
			}
			if err = removeAt(ctx, fd, n, depth+1); err != nil && err != unix.ENOENT {
				break
			}
			err = nil
		}
	}
	d.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(dirFD, name, unix.AT_REMOVEDIR)
}

// FreeBytes reports the free space of the filesystem holding root
// (sandbox.WorkspaceDir or sandbox.TmpDir).
func (f *FS) FreeBytes(root string) (uint64, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, ok := f.roots[root]
	if !ok {
		return 0, sandbox.ErrPathNotAllowed
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(r.Fd()), &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

func checkRegular(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return errors.New("not a regular file")
	}
	return nil
}

func mapErr(err error) error {
	switch {
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ELOOP):
		return fmt.Errorf("%w (%v)", sandbox.ErrPathNotAllowed, err)
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return fmt.Errorf("%w (%v)", sandbox.ErrDiskLimit, err)
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w (%v)", fs.ErrNotExist, err)
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("%w (%v)", fs.ErrExist, err)
	}
	return err
}

func displayPath(p string) string {
	root, rel, err := sandbox.ResolvePath(p)
	if err != nil {
		return p
	}
	return path.Join(root, rel)
}

func fileInfo(p string, st *unix.Stat_t) sandbox.FileInfo {
	mode := fs.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	return sandbox.FileInfo{
		Name:    path.Base(p),
		Path:    p,
		Size:    st.Size,
		Mode:    mode,
		ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		IsDir:   mode.IsDir(),
	}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
