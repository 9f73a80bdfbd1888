//go:build linux

package gvisor

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// TestVolumeMountClass (gVisor): one volume in two sandboxes, read-write
// below /workspace in one and read-only below /mnt in the other; the
// owner inside is the sandbox user; a read-only mount refuses writes.
func TestVolumeMountClass(t *testing.T) {
	tier := newTestTier(t)
	vol := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(vol, sandbox.SandboxUID, sandbox.SandboxGID); err != nil {
		t.Fatal(err)
	}
	create := func(id string, m sandbox.VolumeMount) sandbox.Sandbox {
		t.Helper()
		m.Name, m.HostDir, m.LimitBytes = "data", vol, 1<<20
		pr, err := tier.PrepareWithVolumes(t.Context(), sandbox.TemplateHost, []sandbox.VolumeMount{m})
		if err != nil {
			t.Fatal(err)
		}
		sb, err := pr.Activate(t.Context(), id, sandbox.Spec{Volumes: []sandbox.VolumeMount{m}})
		if err != nil {
			_ = pr.Discard()
			t.Fatal(err)
		}
		t.Cleanup(func() { sb.Close() })
		return sb
	}
	run := func(sb sandbox.Sandbox, script string) (string, int) {
		t.Helper()
		var out bytes.Buffer
		code, err := sb.Exec(t.Context(), sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", script}}, &out, &out)
		if err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		return out.String(), code
	}
	rw := create("gv1", sandbox.VolumeMount{Path: "/workspace/data"})
	ro := create("gv2", sandbox.VolumeMount{Path: "/mnt/data", ReadOnly: true})
	if out, code := run(rw, "echo hi > /workspace/data/f && stat -c %u /workspace/data/f"); code != 0 || out != "1000\n" {
		t.Fatalf("rw: %q %d", out, code)
	}
	if out, code := run(ro, "cat /mnt/data/f"); code != 0 || out != "hi\n" {
		t.Fatalf("ro read: %q %d", out, code)
	}
	if out, code := run(ro, "echo x > /mnt/data/g"); code == 0 {
		t.Errorf("ro write succeeded: %q", out)
	}
	if _, err := tier.PrepareWithVolumes(t.Context(), sandbox.TemplateHost, []sandbox.VolumeMount{{Name: "data", HostDir: vol, Path: "/proc/x"}}); err == nil {
		t.Error("a mount below /proc was prepared")
	}
}
