//go:build linux

package process

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// newVolumeDir makes a volume data dir as internal/sandbox/volume does:
// owned on disk by the sandbox user's in-namespace ids.
func newVolumeDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, sandbox.SandboxUID, sandbox.SandboxGID); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestVolumeMountClass: one volume shared by two live sandboxes (each its
// own host uid range): one writes it below /workspace, the other mounts it
// read-only below /mnt and reads what the first wrote but cannot write;
// owners on disk are the in-namespace ids, never a sandbox's host uid; a
// mount point that is a symlink in a kept workspace is refused; nothing
// stays mounted on the host.
func TestVolumeMountClass(t *testing.T) {
	tier := newTestTier(t)
	vol := newVolumeDir(t)
	run := func(sb sandbox.Sandbox, script string) (string, int) {
		t.Helper()
		var out, errb bytes.Buffer
		code, err := sb.Exec(t.Context(), sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", script}}, &out, &errb)
		if err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		return out.String() + errb.String(), code
	}
	rw, err := sandbox.Create(t.Context(), tier, "v1", sandbox.Spec{Volumes: []sandbox.VolumeMount{
		{Name: "data", Path: "/workspace/data", HostDir: vol, LimitBytes: 1 << 20}}})
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	ro, err := sandbox.Create(t.Context(), tier, "v2", sandbox.Spec{Volumes: []sandbox.VolumeMount{
		{Name: "data", Path: "/mnt/shared/data", HostDir: vol, ReadOnly: true, LimitBytes: 1 << 20}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if out, code := run(rw, "echo hello > /workspace/data/f && mkdir /workspace/data/d && stat -c %u /workspace/data/f"); code != 0 || out != "1000\n" {
		t.Fatalf("write through the rw mount: %q code %d", out, code)
	}
	if out, code := run(ro, "cat /mnt/shared/data/f && stat -c %u /mnt/shared/data/f"); code != 0 || out != "hello\n1000\n" {
		t.Fatalf("read through the ro mount: %q code %d", out, code)
	}
	for _, script := range []string{
		"echo x > /mnt/shared/data/g",   // a read-only volume
		"rm /mnt/shared/data/f",         // likewise
		"touch /mnt/other",              // /mnt itself is read-only
		"umount /mnt/shared/data",       // no mount syscalls
		"echo x > /mnt/shared/data/d/h", // below it too
	} {
		if out, code := run(ro, script); code == 0 {
			t.Errorf("%s succeeded in the read-only sandbox: %q", script, out)
		}
	}
	st, err := os.Stat(filepath.Join(vol, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != sandbox.SandboxUID {
		t.Errorf("file owner on disk %d, want the in-namespace %d", uid, sandbox.SandboxUID)
	}

	// A kept workspace whose mount point is a symlink (to /proc) is refused.
	ws := filepath.Join(t.TempDir(), "workspace")
	if err := os.Mkdir(ws, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc", filepath.Join(ws, "data")); err != nil {
		t.Fatal(err)
	}
	_, err = sandbox.Create(t.Context(), tier, "v3", sandbox.Spec{HostWorkspace: ws, Volumes: []sandbox.VolumeMount{
		{Name: "data", Path: "/workspace/data", HostDir: vol, LimitBytes: 1 << 20}}})
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("symlinked mount point: %v", err)
	}
	// Paths the tier refuses before anything runs.
	for _, p := range []string{"/proc", "/workspace", "/mnt", "/tmp/x", "/workspace/../etc", "/etc/x", "/mnt/a/../../proc"} {
		_, err := sandbox.Create(t.Context(), tier, "v4", sandbox.Spec{Volumes: []sandbox.VolumeMount{
			{Name: "data", Path: p, HostDir: vol, LimitBytes: 1 << 20}}})
		if !errors.Is(err, sandbox.ErrBadMountPath) {
			t.Errorf("path %q: %v, want ErrBadMountPath", p, err)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if bytes.Contains(mounts, []byte(vol)) {
		t.Fatalf("%s is mounted on the host", vol)
	}
}
