package daemon_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/cli"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

// TestSandboxes runs the sandbox API end to end in a real daemon, and
// `agentcloud run` against it, finding the daemon through its data dir.
func TestSandboxes(t *testing.T) {
	if err := process.Available(); err != nil {
		t.Skipf("process sandbox tier unavailable (needs root and user namespaces): %v", err)
	}
	d, c := startDaemon(t)
	ctx := context.Background()
	sb, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Tier: api.SandboxTierProcess})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code, err := c.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "python3", Args: []string{"-c", "print(1)"}}, &out, &out)
	if err != nil || code != 0 || out.String() != "1\n" {
		t.Fatalf("exec: %d %v %q", code, err, out.String())
	}
	if err := c.DeleteSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	code = cli.Main(ctx, []string{"--data", d.DataDir(), "run", "--", "sh", "-c", "echo hi; exit 3"}, &stdout, &stderr)
	if code != 3 || stdout.String() != "hi\n" {
		t.Fatalf("agentcloud run: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}
