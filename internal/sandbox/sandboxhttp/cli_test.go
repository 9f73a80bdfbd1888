package sandboxhttp_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/cli"
)

// agentcloud runs the CLI in-process against s.
func (s *testServer) agentcloud(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Main(context.Background(), append([]string{"--server", s.URL, "--token", testToken}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLIRun(t *testing.T) {
	s := startServer(t)
	code, out, errOut := s.agentcloud(t, "run", "--", "sh", "-c", "echo hi; echo err >&2; exit 3")
	if code != 3 || out != "hi\n" || errOut != "err\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, _ := s.agentcloud(t, "-o", "json", "sandbox", "list"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("run left a sandbox behind: %d %s", code, out)
	}
	if code, _, errOut := s.agentcloud(t, "run", "--tier", "vm", "--", "true"); code != 1 || !strings.Contains(errOut, "tier") {
		t.Fatalf("bad tier: exit %d, stderr %q", code, errOut)
	}
}

func TestCLISandbox(t *testing.T) {
	s := startServer(t)
	code, out, errOut := s.agentcloud(t, "sandbox", "create", "--timeout", "5m", "--env", "A=1")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errOut)
	}
	id := strings.TrimSpace(out)
	local := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(local, []byte("data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := s.agentcloud(t, "sandbox", "cp", local, id+":/workspace/"); code != 0 {
		t.Fatalf("cp in: %d %s", code, errOut)
	}
	if code, out, errOut := s.agentcloud(t, "sandbox", "exec", id, "sh", "-c", `cat in.txt; echo $A; cp in.txt out.txt`); code != 0 || out != "data\n1\n" {
		t.Fatalf("exec: %d %q %s", code, out, errOut)
	}
	if code, out, _ := s.agentcloud(t, "sandbox", "ls", id+":/workspace"); code != 0 || !strings.Contains(out, "out.txt") {
		t.Fatalf("ls: %d %s", code, out)
	}
	back := filepath.Join(t.TempDir(), "out.txt")
	if code, _, errOut := s.agentcloud(t, "sandbox", "cp", id+":/workspace/out.txt", back); code != 0 {
		t.Fatalf("cp out: %d %s", code, errOut)
	}
	if b, _ := os.ReadFile(back); string(b) != "data\n" {
		t.Fatalf("copied back %q", b)
	}
	for _, op := range []string{"pause", "resume"} {
		if code, _, errOut := s.agentcloud(t, "sandbox", op, id); code != 0 {
			t.Fatalf("%s: %d %s", op, code, errOut)
		}
	}
	if code, _, errOut := s.agentcloud(t, "sandbox", "cp", local, "/tmp/x"); code != 1 || !strings.Contains(errOut, "ID:/path") {
		t.Fatalf("cp local to local: %d %s", code, errOut)
	}
	if code, _, errOut := s.agentcloud(t, "sandbox", "rm", id); code != 0 {
		t.Fatalf("rm: %d %s", code, errOut)
	}
	if code, _, errOut := s.agentcloud(t, "sandbox", "show", id); code != 1 || !strings.Contains(errOut, "not-found") {
		t.Fatalf("show deleted: %d %s", code, errOut)
	}
}
