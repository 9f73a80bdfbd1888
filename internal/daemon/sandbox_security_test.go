package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

func needSandboxes(t *testing.T) {
	t.Helper()
	if err := process.Available(); err != nil {
		t.Skipf("process sandbox tier unavailable (needs root and user namespaces): %v", err)
	}
}

// run executes a shell command in a sandbox and returns its exit code and
// combined output.
func run(t *testing.T, c *client.Client, id, script string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code, err := c.Exec(context.Background(), id, api.ExecRequest{Cmd: "sh", Args: []string{"-c", script}}, &out, &out)
	if err != nil {
		t.Fatalf("exec %q: %v", script, err)
	}
	return code, out.String()
}

// TestSandboxOwnership: user B cannot read, exec in, change or delete
// user A's sandbox; the administrator can; listings show one's own.
func TestSandboxOwnership(t *testing.T) {
	needSandboxes(t)
	cfg := config.Default()
	cfg.SandboxMaxPerOwner = 2
	d, admin := startDaemonWith(t, cfg, nil)
	ctx := context.Background()
	alice, bob := userClient(t, d, admin, "user:alice"), userClient(t, d, admin, "user:bob")

	sb, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{Metadata: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if sb.Owner != "spiffe://agentcloud.local/user/alice" || sb.Identity != "spiffe://agentcloud.local/sandbox/"+sb.ID ||
		sb.Metadata["k"] != "v" || len(sb.Metadata) != 1 {
		t.Fatalf("alice's sandbox: %+v", sb)
	}
	if code, out := run(t, alice, sb.ID, "echo mine"); code != 0 || out != "mine\n" {
		t.Fatalf("alice exec: %d %q", code, out)
	}
	_, err = bob.Sandbox(ctx, sb.ID)
	wantKind(t, "bob reading alice's sandbox", err, api.KindForbidden, "owner")
	_, err = bob.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "true"}, io.Discard, io.Discard)
	wantKind(t, "bob exec in alice's sandbox", err, api.KindForbidden, "")
	_, err = bob.ReadFile(ctx, sb.ID, "/workspace/x")
	wantKind(t, "bob reading alice's files", err, api.KindForbidden, "")
	_, err = bob.WriteFile(ctx, sb.ID, "/workspace/x", strings.NewReader("x"), 0o644)
	wantKind(t, "bob writing alice's files", err, api.KindForbidden, "")
	_, err = bob.PauseSandbox(ctx, sb.ID)
	wantKind(t, "bob pausing alice's sandbox", err, api.KindForbidden, "")
	wantKind(t, "bob deleting alice's sandbox", bob.DeleteSandbox(ctx, sb.ID), api.KindForbidden, "")
	// The denial is problem+json with status 403.
	resp, err := bob.Raw(ctx, "DELETE", "/v1/sandboxes/"+sb.ID, nil, "")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("raw delete by bob: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	} else if p := api.AsProblem(err); p == nil || p.Status != http.StatusForbidden {
		t.Fatalf("raw delete by bob: %v", err)
	}
	// A sandbox that does not exist looks the same to bob as alice's.
	_, err = bob.Sandbox(ctx, "sb-0000000000000000")
	wantKind(t, "bob probing a missing sandbox", err, api.KindForbidden, "")

	bobs, err := bob.CreateSandbox(ctx, api.CreateSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := bob.Sandboxes(ctx); err != nil || len(l) != 1 || l[0].ID != bobs.ID {
		t.Fatalf("bob's list: %+v %v", l, err)
	}
	if l, err := alice.Sandboxes(ctx); err != nil || len(l) != 1 || l[0].ID != sb.ID {
		t.Fatalf("alice's list: %+v %v", l, err)
	}
	if l, err := admin.Sandboxes(ctx); err != nil || len(l) < 2 {
		t.Fatalf("admin's list: %+v %v", l, err)
	}
	// Reserved metadata keys and bad egress patterns are refused.
	_, err = alice.CreateSandbox(ctx, api.CreateSandboxRequest{Metadata: map[string]string{"agentcloud/owner": "spiffe://agentcloud.local/user/bob"}})
	wantKind(t, "reserved metadata", err, api.KindValidation, "reserved")
	_, err = alice.CreateSandbox(ctx, api.CreateSandboxRequest{Egress: []string{"http://x/"}})
	wantKind(t, "bad egress pattern", err, api.KindValidation, "host pattern")
	// The per-owner quota counts live sandboxes.
	if _, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err = alice.CreateSandbox(ctx, api.CreateSandboxRequest{})
	wantKind(t, "alice past her quota", err, api.KindRateLimited, "sandbox_max_per_owner")

	// The administrator may do anything.
	if code, out := run(t, admin, sb.ID, "echo admin"); code != 0 || out != "admin\n" {
		t.Fatalf("admin exec: %d %q", code, out)
	}
	if err := admin.DeleteSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if err := bob.DeleteSandbox(ctx, bobs.ID); err != nil {
		t.Fatal(err)
	}
	evs, err := admin.Audit(ctx, client.AuditQuery{Type: "decision"})
	if err != nil {
		t.Fatal(err)
	}
	denied := false
	for _, e := range evs.Events {
		denied = denied || (e.Outcome == "deny" && e.Resource == "Sandbox::"+sb.ID && strings.HasSuffix(e.Principal, "/user/bob"))
	}
	if !denied {
		t.Fatal("bob's denials on alice's sandbox were not audited")
	}
}

const sandboxAgent = `export default {
  async fetch(request, env) {
    const u = new URL(request.url);
    const code = u.searchParams.get("code") || "print(6*7)";
    try {
      if (u.pathname === "/keep") {
        const r = await env.sandbox.run({language: "python", code: "open('/workspace/state','w').write('kept')", keep: true});
        const r2 = await env.sandbox.exec(r.id, {cmd: "cat", args: ["/workspace/state"]});
        return Response.json({id: r.id, stdout: r2.stdout});
      }
      if (u.pathname === "/exec") {
        const r = await env.sandbox.exec(u.searchParams.get("id"), {cmd: "true"});
        return Response.json(r);
      }
      if (u.pathname === "/bad") {
        return Response.json(await env.sandbox.run({language: "cobol", code: "x"}));
      }
      if (u.pathname === "/delete") {
        return Response.json(await env.sandbox.delete(u.searchParams.get("id")));
      }
      const r = await env.sandbox.run({language: "python", code,
        files: {"data/in.txt": "21"}, stdin: "from stdin"});
      return Response.json(r);
    } catch (e) {
      return new Response(e.name + ": " + e.message, {status: 599});
    }
  }
};`

func call(t *testing.T, c *client.Client, agent, sess, target string) (int, string) {
	t.Helper()
	resp, err := c.Call(context.Background(), agent, sess, "GET", target, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestSandboxRunFromJS: a JS agent's fetch handler runs Python through
// env.sandbox.run and returns its output; the sandbox is owned by the
// agent's owner, tied to the session, and gone after the call unless kept.
func TestSandboxRunFromJS(t *testing.T) {
	needSandboxes(t)
	d, admin := startDaemonWith(t, config.Default(), nil)
	ctx := context.Background()
	alice, bob := userClient(t, d, admin, "user:alice"), userClient(t, d, admin, "user:bob")
	if err := deployJS(alice, `{"name":"py","entry":"agent.js","limits":{"idle_seconds":3600}}`, sandboxAgent); err != nil {
		t.Fatal(err)
	}
	if err := deployJS(bob, `{"name":"bobpy","entry":"agent.js","limits":{"idle_seconds":3600}}`, sandboxAgent); err != nil {
		t.Fatal(err)
	}
	code := "import sys\nn = int(open('data/in.txt').read())\nprint(n*2)\nprint(sys.stdin.read(), file=sys.stderr)\nopen('out.txt','w').write('result')\nsys.exit(3)"
	status, body := call(t, alice, "py", "s1", "/?code="+url.QueryEscape(code))
	if status != 200 {
		t.Fatalf("run: %d %s", status, body)
	}
	var res struct {
		ID       string            `json:"id"`
		Stdout   string            `json:"stdout"`
		Stderr   string            `json:"stderr"`
		ExitCode int               `json:"exit_code"`
		Files    map[string]string `json:"files"`
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if res.Stdout != "42\n" || res.Stderr != "from stdin\n" || res.ExitCode != 3 || res.Files["/workspace/out.txt"] != "result" || len(res.Files) != 1 || res.ID != "" {
		t.Fatalf("run result: %+v", res)
	}
	if l, err := admin.Sandboxes(ctx); err != nil || len(l) != 0 {
		t.Fatalf("the run's sandbox must be gone: %+v %v", l, err)
	}
	// Bad input is a TypeError naming the field.
	if status, body := call(t, alice, "py", "s1", "/bad"); status != 599 || !strings.HasPrefix(body, "TypeError") || !strings.Contains(body, "language") {
		t.Fatalf("bad language: %d %s", status, body)
	}

	// Kept: exec follows up in the same sandbox; it belongs to alice and
	// records the session; bob's agent may not touch it.
	status, body = call(t, alice, "py", "s1", "/keep")
	var kept struct{ ID, Stdout string }
	if err := json.Unmarshal([]byte(body), &kept); err != nil || status != 200 || kept.Stdout != "kept" {
		t.Fatalf("keep: %d %s", status, body)
	}
	sb, err := alice.Sandbox(ctx, kept.ID)
	if err != nil || sb.Owner != "spiffe://agentcloud.local/user/alice" || sb.Session != "py/s1" {
		t.Fatalf("kept sandbox as alice sees it: %+v %v", sb, err)
	}
	_, err = bob.Sandbox(ctx, kept.ID)
	wantKind(t, "bob reading alice's agent's sandbox", err, api.KindForbidden, "")
	if status, body := call(t, bob, "bobpy", "s1", "/exec?id="+kept.ID); status != 599 || !strings.HasPrefix(body, "PermissionError") {
		t.Fatalf("bob's agent exec in alice's sandbox: %d %s", status, body)
	}
	// Another session of alice's agent is not the creating session either.
	if status, body := call(t, alice, "py", "s2", "/exec?id="+kept.ID); status != 599 || !strings.HasPrefix(body, "PermissionError") {
		t.Fatalf("other session exec: %d %s", status, body)
	}
	if status, body := call(t, alice, "py", "s1", "/delete?id="+kept.ID); status != 200 || body != `{"deleted":true}` {
		t.Fatalf("delete: %d %s", status, body)
	}
	if l, err := admin.Sandboxes(ctx); err != nil || len(l) != 0 {
		t.Fatalf("deleted: %+v %v", l, err)
	}
}

var _ = daemon.PlatformHost
