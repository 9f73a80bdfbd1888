//go:build linux

package process

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// TestHostWorkspaceOutlivesSandbox: a workspace on host storage keeps
// what a sandbox wrote after it closes, and the next sandbox given the same
// directory (another host uid) reads and writes it.
func TestHostWorkspaceOutlivesSandbox(t *testing.T) {
	tier := newTestTier(t)
	ws := filepath.Join(t.TempDir(), "workspace")
	if err := os.Mkdir(ws, 0o700); err != nil {
		t.Fatal(err)
	}
	run := func(sb sandbox.Sandbox, script string) string {
		t.Helper()
		var out, errb bytes.Buffer
		code, err := sb.Exec(t.Context(), sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", script}}, &out, &errb)
		if err != nil || code != 0 {
			t.Fatalf("%s: code %d err %v stderr %s", script, code, err, errb.String())
		}
		return out.String()
	}
	first, err := sandbox.Create(t.Context(), tier, "ws1", sandbox.Spec{HostWorkspace: ws})
	if err != nil {
		t.Fatal(err)
	}
	run(first, "mkdir -p /workspace/d && echo kept > /workspace/d/f && ln -s d/f /workspace/l")
	first.Close()
	if b, err := os.ReadFile(filepath.Join(ws, "d", "f")); err != nil || string(b) != "kept\n" {
		t.Fatalf("host file after close: %q %v", b, err)
	}
	second, err := sandbox.Create(t.Context(), tier, "ws2", sandbox.Spec{HostWorkspace: ws})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if got := run(second, "cat /workspace/l && echo more >> /workspace/d/f && id -u && stat -c %u /workspace/d/f"); got != "kept\n1000\n1000\n" {
		t.Fatalf("second sandbox sees %q", got)
	}
	var buf bytes.Buffer
	if err := second.ReadFile(t.Context(), "d/f", &buf); err != nil || !strings.Contains(buf.String(), "more") {
		t.Fatalf("files API: %q %v", buf.String(), err)
	}
	// The mount is the sandbox's, not the host's: nothing is mounted on ws.
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if bytes.Contains(mounts, []byte(ws)) {
		t.Fatalf("%s is mounted on the host", ws)
	}
}
