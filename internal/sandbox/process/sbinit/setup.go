//go:build linux

package sbinit

import (
	"fmt"
	"os"
	"path"
	"syscall"

	"golang.org/x/sys/unix"
)

// devices bind-mounted from the host into the sandbox's /dev.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// setupRoot builds the sandbox root on a fresh tmpfs and pivots into it. It
// runs in init as root of the new user namespace, in private mount, pid and
// network namespaces, before anything untrusted runs.
func setupRoot(cfg *SetupConfig, files []*os.File) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	root := cfg.RootDir
	if err := unix.Mount("sandbox-root", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=4m,mode=0755"); err != nil {
		return fmt.Errorf("mount root tmpfs on %s: %w", root, err)
	}
	empty := path.Join(root, ".empty")
	if cfg.Layers > 0 { // an image template: the root is the sandbox's overlay
		var err error
		if root, err = mountOverlay(root, cfg.Layers, files); err != nil {
			return err
		}
	}
	in := func(p string) string { return path.Join(root, p) }
	for _, d := range []string{"proc", "dev", "workspace", "tmp", "mnt"} { // mnt: volumes.go
		if err := os.Mkdir(in(d), 0o755); err != nil && (cfg.Layers == 0 || !os.IsExist(err)) {
			return err
		}
	}
	if err := os.WriteFile(empty, nil, 0o444); err != nil {
		return err
	}
	for p, target := range cfg.Symlinks {
		if err := os.Symlink(target, in(p)); err != nil {
			return fmt.Errorf("symlink %s: %w", p, err)
		}
	}
	for _, src := range cfg.Binds {
		dst := in(src)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if err := bindReadOnly(src, dst); err != nil {
			return err
		}
	}
	for _, p := range cfg.Masks {
		if err := mask(in(p), empty); err != nil {
			return err
		}
	}
	if err := setupProc(in("proc"), empty); err != nil {
		return err
	}
	if err := setupDev(in("dev"), cfg.ShmMB); err != nil {
		return err
	}

	// pivot_root(".", ".") stacks the old root on top of the new one; a lazy
	// unmount then drops it and every host mount below it.
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if cfg.Layers == 0 {
		if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			return fmt.Errorf("remount root read-only: %w", err)
		}
	}
	return loopbackUp()
}

// bindReadOnly bind-mounts src on dst and makes the bind read-only, nosuid
// and nodev, keeping the flags the kernel locks for a user namespace.
func bindReadOnly(src, dst string) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dst, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dst, err)
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
	for _, f := range []struct{ st, ms uintptr }{
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f.st != 0 {
			flags |= f.ms
		}
	}
	if err := unix.Mount("", dst, "", flags, ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", src, err)
	}
	return nil
}

// mask hides p (which must exist in the new root) behind an empty read-only
// file or directory.
func mask(p, empty string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil // not present in this template
	}
	if fi.IsDir() {
		if err := unix.Mount("masked", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=4k,mode=0555"); err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
		return nil
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	if err := unix.Mount(empty, p, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("mask %s: %w", p, err)
	}
	if err := unix.Mount("", p, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mask %s read-only: %w", p, err)
	}
	return nil
}

// setupProc mounts a proc for the sandbox's pid namespace, hides the files
// Docker's default profile hides and makes /proc/sys read-only.
func setupProc(dir, empty string) error {
	if err := unix.Mount("proc", dir, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount proc: %w", err)
	}
	for _, p := range []string{"kcore", "keys", "timer_list", "sched_debug", "sysrq-trigger", "kallsyms"} {
		if err := mask(path.Join(dir, p), empty); err != nil {
			return err
		}
	}
	for _, p := range []string{"sys", "irq", "bus", "fs"} {
		d := path.Join(dir, p)
		if _, err := os.Stat(d); err != nil {
			continue
		}
		if err := bindReadOnly(d, d); err != nil {
			return err
		}
	}
	return nil
}

// setupDev builds a minimal /dev: host device nodes bind-mounted (a user
// namespace cannot mknod), the usual symlinks and a small /dev/shm.
func setupDev(dir string, shmMB int) error {
	if err := unix.Mount("sandbox-dev", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "size=64k,mode=0755"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, d := range devices {
		p := path.Join(dir, d)
		if err := os.WriteFile(p, nil, 0o666); err != nil {
			return err
		}
		if err := unix.Mount("/dev/"+d, p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", d, err)
		}
	}
	for name, target := range map[string]string{
		"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
		"stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx",
	} {
		if err := os.Symlink(target, path.Join(dir, name)); err != nil {
			return err
		}
	}
	// The sandbox's own devpts instance: terminals made inside (by the
	// terminal op, or by a program such as script or python's pty) are
	// invisible to the host's and to other sandboxes' /dev/pts.
	pts := path.Join(dir, "pts")
	if err := os.Mkdir(pts, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return fmt.Errorf("mount /dev/pts: %w", err)
	}
	shm := path.Join(dir, "shm")
	if err := os.Mkdir(shm, 0o1777); err != nil {
		return err
	}
	if shmMB <= 0 {
		shmMB = 64
	}
	opts := fmt.Sprintf("size=%dm,mode=1777", shmMB)
	if err := unix.Mount("shm", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	return unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC, "")
}

// mountWritable mounts the size-limited /workspace and /tmp (tmpfs size= is
// the disk limit; the pages also count against the memory cgroup). When the
// host passed the sandbox's workspace directory (cfg.HostWorkspace, the
// first file), /workspace is that directory bind-mounted instead: it lives
// on host storage and survives the sandbox (the Manager checks its size).
func mountWritable(cfg *ActivateConfig, files []*os.File) error {
	size := cfg.DiskMB
	if size <= 0 {
		size = DefaultDiskMB
	}
	type wdir struct {
		dir  string
		mode string
	}
	dirs := []wdir{{WorkspaceDir, "0755"}, {TmpDir, "1777"}}
	if cfg.HostWorkspace {
		if len(files) == 0 {
			return fmt.Errorf("mount %s: the host passed no workspace directory", WorkspaceDir)
		}
		// A detached mount (open_tree OPEN_TREE_CLONE on the host): a
		// plain bind of another namespace's mount is refused.
		if err := unix.MoveMount(int(files[0].Fd()), "", unix.AT_FDCWD, WorkspaceDir, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return fmt.Errorf("attach %s: %w", WorkspaceDir, err)
		}
		if err := unix.Mount("", WorkspaceDir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			return fmt.Errorf("remount %s: %w", WorkspaceDir, err)
		}
		dirs = dirs[1:]
		files = files[1:]
	}
	for _, m := range dirs {
		opts := fmt.Sprintf("size=%dm,mode=%s,uid=%d,gid=%d", size, m.mode, SandboxUID, SandboxGID)
		if err := unix.Mount("sandbox", m.dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	return mountVolumes(cfg.Volumes, files)
}

func setRlimits(cfg *ActivateConfig) error {
	nofile := uint64(cfg.NoFile)
	if nofile == 0 {
		nofile = 4096
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: nofile, Max: nofile}); err != nil {
		return fmt.Errorf("rlimit nofile: %w", err)
	}
	lims := map[int]uint64{unix.RLIMIT_CORE: 0}
	if cfg.Pids > 0 {
		// Above the pids cgroup limit, so that the cgroup (which reports
		// the hit in pids.events) is what stops a fork bomb.
		lims[unix.RLIMIT_NPROC] = uint64(2 * cfg.Pids)
	}
	if cfg.DiskMB > 0 {
		lims[unix.RLIMIT_FSIZE] = uint64(cfg.DiskMB) << 20
	}
	for res, v := range lims {
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: v, Max: v}); err != nil {
			return fmt.Errorf("rlimit %d: %w", res, err)
		}
	}
	return nil
}

// loopbackUp brings lo up in the sandbox's fresh network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}
