package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/config"
)

// TestLogsAndAgentsDeleteCommands: `logs` prints an agent's console lines
// and request errors (all sessions, one session, JSON), `logs -f` follows
// until the agent is deleted, `agents delete` deletes once and then names
// the agent as not deployed.
func TestLogsAndAgentsDeleteCommands(t *testing.T) {
	clearClientEnv(t)
	var data string
	d := newDaemon(t, func(c *config.Config) { data = c.Data })
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "talker")
	_ = os.MkdirAll(dir, 0o755)
	_ = os.WriteFile(filepath.Join(dir, "agent.json"), []byte(`{"name":"talker","entry":"agent.js"}`), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "agent.js"), []byte(`export default { async fetch(req) {
  const p = new URL(req.url).pathname;
  if (p === "/boom") throw new Error("boom");
  console.log("line " + p + "\nsecond line");
  return new Response("ok");
} };`), 0o644)
	cli := func(args ...string) (int, string, string) {
		return runCLI(t, append([]string{"--data", data}, args...)...)
	}
	if code, out, errOut := cli("deploy", dir); code != 0 {
		t.Fatalf("deploy: %d %q %q", code, out, errOut)
	}
	cli("call", "talker/alice", "/a")
	cli("call", "talker/bob", "/boom")
	code, out, errOut := cli("logs", "talker")
	if code != 0 || !strings.Contains(out, "alice log line /a") || !strings.Contains(out, "alice log second line") ||
		!strings.Contains(out, "bob exception agent-error: agent threw js: Error: boom") {
		t.Fatalf("logs: %d %q %q", code, out, errOut)
	}
	code, out, _ = cli("logs", "talker", "--session", "bob", "-o", "json")
	if code != 0 || !strings.Contains(out, `"level": "exception"`) || strings.Contains(out, "alice") {
		t.Fatalf("logs --session bob -o json: %d %q", code, out)
	}
	if code, _, errOut := cli("logs", "talker", "--session", "no/such"); code == 0 || !strings.Contains(errOut, "session") {
		t.Fatalf("bad --session: %d %q", code, errOut)
	}

	follow := startCLI(t, "--data", data, "logs", "talker", "-f")
	time.Sleep(2 * time.Second) // let it connect; lines before that are replayed anyway
	cli("call", "talker/carol", "/c")
	if code, _, errOut := cli("agents", "delete", "talker"); code != 0 || !strings.Contains(errOut, "deleted agent talker") {
		t.Fatalf("agents delete: %d %q", code, errOut)
	}
	r := result(t, follow)
	if r.code != 0 || !strings.Contains(r.out, "alice log line /a") || !strings.Contains(r.out, "carol log line /c") {
		t.Fatalf("logs -f: %d %q %q", r.code, r.out, r.err)
	}
	if code, _, errOut := cli("agents", "delete", "talker"); code == 0 || !strings.Contains(errOut, "not deployed") {
		t.Fatalf("second delete: %d %q", code, errOut)
	}
	if code, _, errOut := cli("logs", "talker"); code == 0 || !strings.Contains(errOut, "not deployed") {
		t.Fatalf("logs of a deleted agent: %d %q", code, errOut)
	}
}
