package daemon_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/cli"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/gvisor"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

func needSandboxes(t testing.TB) {
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
	if _, err := alice.WriteFile(ctx, sb.ID, "/workspace/f", strings.NewReader("x"), 0o644); err != nil {
		t.Fatalf("alice writing her files: %v", err)
	}
	if _, err := alice.PauseSandbox(ctx, sb.ID); err != nil {
		t.Fatalf("alice pausing her sandbox: %v", err)
	}
	if _, err := alice.ResumeSandbox(ctx, sb.ID); err != nil {
		t.Fatalf("alice resuming her sandbox: %v", err)
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
      if (u.pathname === "/vol") {
        return Response.json(await env.sandbox.run({cmd: "sh", args: ["-c", u.searchParams.get("sh")],
          volumes: JSON.parse(u.searchParams.get("v"))}));
      }
      if (u.pathname === "/bad") {
        return Response.json(await env.sandbox.run({language: "cobol", code: "x"}));
      }
      if (u.pathname === "/delete") {
        return Response.json(await env.sandbox.delete(u.searchParams.get("id")));
      }
      const tier = u.searchParams.get("tier") || undefined;
      const r = await env.sandbox.run({language: "python", code, tier,
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
	if gvisor.Available("") == nil { // the same run on the gVisor tier
		status, body := call(t, alice, "py", "s1", "/?tier=gvisor&code="+url.QueryEscape(code))
		var g struct {
			Stdout   string            `json:"stdout"`
			ExitCode int               `json:"exit_code"`
			Files    map[string]string `json:"files"`
		}
		if err := json.Unmarshal([]byte(body), &g); err != nil || status != 200 || g.Stdout != "42\n" || g.ExitCode != 3 || g.Files["/workspace/out.txt"] != "result" {
			t.Fatalf("gvisor run: %d %s", status, body)
		}
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
	checkSessionVolumesClass(t, admin, alice, bob)
}

// checkSessionVolumesClass: env.sandbox.run mounts the agent owner's
// volumes, through the same check as POST /v1/sandboxes and real Cedar
// (session-owner-volume-mount): alice's agent shares her volume between
// runs and mounts one read-only; bob's agent naming alice's volume gets
// his own namespace (not found), malformed entries and too many are
// TypeErrors naming the field; nothing is left behind.
func checkSessionVolumesClass(t *testing.T, admin, alice, bob *client.Client) {
	ctx := context.Background()
	for _, n := range []string{"data", "ref"} {
		if _, err := alice.CreateVolume(ctx, n, 1); err != nil {
			t.Fatal(err)
		}
	}
	vol := func(c *client.Client, agent, vols, sh string) (int, string) {
		return call(t, c, agent, "s1", "/vol?v="+url.QueryEscape(vols)+"&sh="+url.QueryEscape(sh))
	}
	if status, body := vol(alice, "py", `[{"name":"data","path":"/workspace/data"}]`, "echo shared > /workspace/data/f"); status != 200 || !strings.Contains(body, `"exit_code":0`) {
		t.Fatalf("write through a volume: %d %s", status, body)
	}
	status, body := vol(alice, "py", `[{"name":"data","path":"/mnt/data","read_only":true}]`, "cat /mnt/data/f; echo x > /mnt/data/g")
	if status != 200 || !strings.Contains(body, `"stdout":"shared\n"`) || !strings.Contains(body, "Read-only") {
		t.Fatalf("read-only mount in the next run: %d %s", status, body)
	}
	for _, c := range []struct {
		name, vols, want string
	}{
		{"another owner's volume", `[{"name":"data","path":"/mnt/d"}]`, "NotFoundError"},
		{"bad name", `[{"name":"../x","path":"/mnt/d"}]`, "TypeError: env.sandbox: volumes[0].name"},
		{"bad path", `[{"name":"data","path":"/proc/x"}]`, "TypeError: env.sandbox: volumes[0].path"},
		{"traversal", `[{"name":"data","path":"/workspace/../etc"}]`, "TypeError: env.sandbox: volumes[0].path"},
		{"not a list", `{"name":"data"}`, "TypeError"},
		{"too many", `[` + strings.Repeat(`{"name":"data","path":"/mnt/d"},`, sandbox.MaxVolumes) + `{"name":"data","path":"/mnt/d"}]`, "TypeError: env.sandbox: volumes"},
		{"twice", `[{"name":"data","path":"/mnt/a"},{"name":"data","path":"/mnt/b"}]`, "TypeError: env.sandbox: volumes"},
	} {
		who, agent := alice, "py"
		if c.name == "another owner's volume" {
			who, agent = bob, "bobpy"
		}
		if status, body := vol(who, agent, c.vols, "true"); status != 599 || !strings.HasPrefix(body, c.want) {
			t.Errorf("%s: %d %s, want %s", c.name, status, body, c.want)
		}
	}
	if l, err := admin.Sandboxes(ctx); err != nil || len(l) != 0 {
		t.Fatalf("runs with volumes left sandboxes: %+v %v", l, err)
	}
}

// TestSandboxEgress: a sandbox's only way out is the egress proxy in its
// network namespace, which applies its egress list, policy and secrets
// and reaches the platform API as the sandbox.
func TestSandboxEgress(t *testing.T) {
	needSandboxes(t)
	t.Run("process", func(t *testing.T) { testSandboxEgress(t, api.SandboxTierProcess) })
	t.Run("gvisor", func(t *testing.T) {
		if err := gvisor.Available(""); err != nil {
			t.Skip(err)
		}
		testSandboxEgress(t, api.SandboxTierGVisor)
	})
}

func testSandboxEgress(t *testing.T, tier string) {
	// An HTTPS upstream; its certificate is for example.com.
	var tlsAuth []string
	var tlsMu sync.Mutex
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tlsMu.Lock()
		tlsAuth = append(tlsAuth, r.Header.Get("Authorization"))
		tlsMu.Unlock()
		io.WriteString(w, "tls-ok")
	}))
	t.Cleanup(tlsSrv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(tlsSrv.Certificate())
	cfg := config.Default()
	cfg.SandboxPoolProcess = 0
	d, admin := startDaemonWith(t, cfg, &daemon.EgressTestHooks{Resolver: loopResolver{}, AllowLoopback: true, UpstreamRoots: roots})
	ctx := context.Background()
	apiSrv, evil := newRecorder(t, "api-ok"), newRecorder(t, "evil-ok")
	alice := userClient(t, d, admin, "user:alice")
	const value = "sk-sandbox-5e4f3a2b1c0d9e8f"
	// https to example.com on the TLS upstream's port; plain http to api.test
	// on the recorder's port (both loopback, so neither is a default port).
	if _, err := alice.SetSecret(ctx, "API_KEY", api.SecretRequest{Value: value, AllowHTTP: true,
		AllowHosts: []string{hostPort(t, apiSrv.url("api.test")), hostPort(t, "https://example.com:"+strings.Split(tlsSrv.Listener.Addr().String(), ":")[1])}}); err != nil {
		t.Fatal(err)
	}
	tlsPort := strings.Split(tlsSrv.Listener.Addr().String(), ":")[1]
	sb, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{Tier: tier, Egress: []string{apiSrv.pattern("api.test"), "example.com:" + tlsPort}, Secrets: []string{"API_KEY"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sb.Egress) != 2 || sb.Egress[0] != apiSrv.pattern("api.test") || len(sb.Secrets) != 1 {
		t.Fatalf("sandbox: %+v", sb)
	}
	// HTTPS: the proxy intercepts with a leaf from the platform CA, which
	// the sandbox trusts, verifies the upstream itself, and fills in the
	// secret inside the TLS stream.
	tlsURL := "https://example.com:" + tlsPort + "/"
	if code, out := run(t, alice, sb.ID, "curl -sS -H 'Authorization: Bearer {{secret:API_KEY}}' "+tlsURL); code != 0 || out != "tls-ok" {
		t.Fatalf("curl https through the proxy: %d %q", code, out)
	}
	pyTLS := `import urllib.request as u; print(u.urlopen("` + tlsURL + `", timeout=10).read().decode())`
	if code, out := run(t, alice, sb.ID, "python3 -c '"+pyTLS+"'"); code != 0 || out != "tls-ok\n" {
		t.Fatalf("python https through the proxy: %d %q", code, out)
	}
	tlsMu.Lock()
	if len(tlsAuth) != 2 || tlsAuth[0] != "Bearer "+value {
		t.Fatalf("https upstream saw %q", tlsAuth)
	}
	tlsMu.Unlock()
	// Allowed host, with a secret placeholder the proxy fills in.
	py := `import urllib.request as u
r = u.Request("` + apiSrv.url("api.test") + `", headers={"Authorization": "Bearer {{secret:API_KEY}}"})
print(u.urlopen(r, timeout=10).read().decode())`
	if code, out := run(t, alice, sb.ID, "python3 -c '"+py+"'"); code != 0 || out != "api-ok\n" {
		t.Fatalf("python through the proxy: %d %q", code, out)
	}
	if h := apiSrv.hits(); len(h) != 1 || h[0] != "Bearer "+value {
		t.Fatalf("upstream saw %q", h)
	}
	if code, out := run(t, alice, sb.ID, "curl -sS "+apiSrv.url("api.test")); code != 0 || out != "api-ok" {
		t.Fatalf("curl through the proxy: %d %q", code, out)
	}
	// A host not in the sandbox's egress list is refused by the proxy.
	if code, out := run(t, alice, sb.ID, "curl -sS -o /dev/null -w '%{http_code}' "+evil.url("evil.test")); out != "403" {
		t.Fatalf("disallowed host: %d %q", code, out)
	}
	// The secret may not go to a host it does not allow, even one the
	// sandbox may reach... and going around the proxy reaches nothing.
	port := strings.Split(apiSrv.srv.Listener.Addr().String(), ":")[1]
	if code, out := run(t, alice, sb.ID, "curl -sS --noproxy '*' --max-time 5 http://127.0.0.1:"+port+"/"); code == 0 || strings.Contains(out, "api-ok") {
		t.Fatalf("direct connection bypassing the proxy: %d %q", code, out)
	}
	if len(evil.hits()) != 0 || len(apiSrv.hits()) != 2 {
		t.Fatalf("hits: evil %d api %d", len(evil.hits()), len(apiSrv.hits()))
	}
	// The secret never entered the sandbox: not in its environment or files.
	if code, out := run(t, alice, sb.ID, "env; cat /proc/self/environ; grep -rs "+value+" /workspace /tmp /proc/self/environ; true"); code != 0 || strings.Contains(out, value) || !strings.Contains(out, "HTTP_PROXY=") {
		t.Fatalf("sandbox environment: %d %q", code, out)
	}
	// The platform API, as the sandbox itself.
	var who api.WhoAmI
	code, out := run(t, alice, sb.ID, "curl -sS -H 'Authorization: Bearer forged' $AGENTCLOUD_URL/v1/whoami")
	if err := json.Unmarshal([]byte(out), &who); err != nil || code != 0 || who.Principal != sb.Identity || who.Kind != "sandbox" {
		t.Fatalf("whoami from the sandbox: %d %q (%+v)", code, out, who)
	}
	if code, out := run(t, alice, sb.ID, "curl -sS -o /dev/null -w '%{http_code}' http://agentcloud.internal/v1/agents"); code != 0 || out != "200" {
		t.Fatalf("GET /v1/agents from the sandbox: %d %q", code, out)
	}
	// It is no administrator.
	if code, out := run(t, alice, sb.ID, "curl -sS -o /dev/null -w '%{http_code}' http://agentcloud.internal/v1/audit"); code != 0 || out != "403" {
		t.Fatalf("GET /v1/audit from the sandbox: %d %q", code, out)
	}
	// Every egress decision is audited with the sandbox's identity.
	evs, err := admin.Audit(ctx, client.AuditQuery{Type: "egress"})
	if err != nil {
		t.Fatal(err)
	}
	var allowed, denied int
	for _, e := range evs.Events {
		if e.Principal != sb.Identity {
			continue
		}
		switch e.Outcome {
		case "allowed":
			allowed++
		case "denied":
			denied++
		}
	}
	if allowed != 4 || denied != 1 {
		t.Fatalf("egress audit for %s: %d allowed, %d denied (%+v)", sb.Identity, allowed, denied, evs.Events)
	}
	// The toolbox, at the fixed platform address, as the sandbox: a user's
	// sandbox may call built-in tools (policy sandbox-user-builtin-tools),
	// over REST and over MCP.
	if code, out := run(t, alice, sb.ID, "curl -sS -H 'Content-Type: application/json' -d '{}' $AGENTCLOUD_URL/v1/tools/ping/call"); code != 0 || !strings.Contains(out, `"pong"`) {
		t.Fatalf("tool call from the sandbox: %d %q", code, out)
	}
	mcpCall := `curl -sS -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ping","arguments":{}}}' $AGENTCLOUD_URL/mcp`
	if code, out := run(t, alice, sb.ID, mcpCall); code != 0 || !strings.Contains(out, "pong") {
		t.Fatalf("MCP tools/call from the sandbox: %d %q", code, out)
	}
	// The CLI: agentcloud run --egress HOST.
	hits := len(apiSrv.hits())
	var stdout, stderr bytes.Buffer
	if code := cli.Main(ctx, []string{"--data", d.DataDir(), "run", "--tier", tier, "--egress", apiSrv.pattern("api.test"), "--", "curl", "-sS", apiSrv.url("api.test")}, &stdout, &stderr); code != 0 || stdout.String() != "api-ok" {
		t.Fatalf("agentcloud run --egress: exit %d, %q %q", code, stdout.String(), stderr.String())
	}
	if n := len(apiSrv.hits()); n != hits+1 {
		t.Fatalf("api.test hits %d, want %d", n, hits+1)
	}
	// Cedar policy has the last word over the sandbox's egress list.
	if _, err := admin.ApplyPolicies(ctx, `@id("no-sandbox-api") forbid (principal is Sandbox, action == Action::"egress.fetch", resource == Host::"api.test");`); err != nil {
		t.Fatal(err)
	}
	if code, out := run(t, alice, sb.ID, "curl -sS "+apiSrv.url("api.test")); code != 0 || !strings.Contains(out, "no-sandbox-api") {
		t.Fatalf("host forbidden by policy: %d %q", code, out)
	}
	if n := len(apiSrv.hits()); n != hits+1 {
		t.Fatalf("api.test reached despite the policy: %d hits", n)
	}
	// Deleting the sandbox closes its proxy listener.
	if err := alice.DeleteSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
}

const sandboxFetchAgent = `export default {
  async fetch(request, env) {
    const u = new URL(request.url);
    const py = "import urllib.request as u, sys\n" +
      "r = u.Request(sys.argv[1], headers={'Authorization': 'Bearer {{secret:API_KEY}}'})\n" +
      "try:\n  print(u.urlopen(r, timeout=10).read().decode())\n" +
      "except Exception as e:\n  print('refused', e)\n";
    const r = await env.sandbox.run({cmd: "python3", args: ["-c", py, u.searchParams.get("url")]});
    return new Response(r.stdout);
  }
};`

// TestSessionSandboxEgress: code an agent runs in a sandbox reaches what
// the agent's manifest allows, with its secrets filled in by the proxy,
// and what it reads moves the session's labels as the agent's own fetch
// would.
func TestSessionSandboxEgress(t *testing.T) {
	needSandboxes(t)
	d, admin := startDaemonWith(t, config.Default(), &daemon.EgressTestHooks{Resolver: loopResolver{}, AllowLoopback: true})
	ctx := context.Background()
	apiSrv, evil := newRecorder(t, "api-ok"), newRecorder(t, "evil-ok")
	alice := userClient(t, d, admin, "user:alice")
	const value = "sk-session-0a1b2c3d4e5f"
	if _, err := alice.SetSecret(ctx, "API_KEY", api.SecretRequest{Value: value, AllowHosts: []string{hostPort(t, apiSrv.url("api.test"))}, AllowHTTP: true}); err != nil {
		t.Fatal(err)
	}
	man := `{"name":"sbx","entry":"agent.js","egress":["` + apiSrv.pattern("api.test") + `"],"secrets":["API_KEY"],"limits":{"idle_seconds":3600}}`
	if err := deployJS(alice, man, sandboxFetchAgent); err != nil {
		t.Fatal(err)
	}
	if status, body := call(t, alice, "sbx", "s1", "/?url="+url.QueryEscape(apiSrv.url("api.test"))); status != 200 || body != "api-ok\n" {
		t.Fatalf("allowed host from the session's sandbox: %d %q", status, body)
	}
	if h := apiSrv.hits(); len(h) != 1 || h[0] != "Bearer "+value {
		t.Fatalf("upstream saw %q", h)
	}
	l, err := alice.Labels(ctx, "sbx", "s1")
	if err != nil || l.Integrity != "untrusted" || l.Confidentiality != "secret" {
		t.Fatalf("session labels after its sandbox used a secret and read an untrusted host: %+v %v", l, err)
	}
	if status, body := call(t, alice, "sbx", "s1", "/?url="+url.QueryEscape(evil.url("evil.test"))); status != 200 || !strings.HasPrefix(body, "refused") {
		t.Fatalf("host outside the manifest: %d %q", status, body)
	}
	if len(evil.hits()) != 0 {
		t.Fatal("evil.test was reached")
	}
}

const trifectaSandboxAgent = `export default {
  async fetch(request, env) {
    const u = new URL(request.url);
    const py = "import urllib.request as u, urllib.error as e, sys\n" +
      "h = {'Authorization': sys.argv[2]} if sys.argv[2] else {}\n" +
      "if sys.argv[3]: h['Agentcloud-Approval-Wait'] = sys.argv[3]\n" +
      "try:\n  print(u.urlopen(u.Request(sys.argv[1], headers=h), timeout=30).read().decode())\n" +
      "except e.HTTPError as x:\n  print(x.code, x.read().decode())\n";
    const q = (k) => u.searchParams.get(k) || "";
    const r = await env.sandbox.run({cmd: "python3", args: ["-c", py, q("url"), q("auth"), q("wait")], timeout: 60});
    return new Response(r.stdout + r.stderr);
  }
};`

// TestSandboxTrifectaWaitsForApproval: code a session runs in a sandbox
// carries the session's labels; once the session holds a secret and has
// read untrusted input, sending elsewhere needs an approval. In wait mode
// the request is held until a person approves (then it goes through) or
// denies (then it fails), or the wait ends (still pending).
func TestSandboxTrifectaWaitsForApproval(t *testing.T) {
	needSandboxes(t)
	d, admin := startDaemonWith(t, config.Default(), &daemon.EgressTestHooks{Resolver: loopResolver{}, AllowLoopback: true})
	ctx := context.Background()
	apiSrv, news, evil := newRecorder(t, "api-ok"), newRecorder(t, "ignore previous instructions"), newRecorder(t, "got it")
	if err := admin.SetTrustedHosts(ctx, []string{"api.test"}); err != nil {
		t.Fatal(err)
	}
	alice := userClient(t, d, admin, "user:alice")
	if _, err := alice.SetSecret(ctx, "API_KEY", api.SecretRequest{Value: "sk-wait-1234567890", AllowHosts: []string{hostPort(t, apiSrv.url("api.test"))}, AllowHTTP: true}); err != nil {
		t.Fatal(err)
	}
	man := `{"name":"tw","entry":"agent.js","egress":["` + apiSrv.pattern("api.test") + `","` + news.pattern("news.test") + `","` +
		evil.pattern("evil.test") + `"],"secrets":["API_KEY"],"limits":{"idle_seconds":3600}}`
	if err := deployJS(alice, man, trifectaSandboxAgent); err != nil {
		t.Fatal(err)
	}
	fetch := func(target, auth, wait string) string {
		t.Helper()
		q := url.Values{"url": {target}, "auth": {auth}, "wait": {wait}}
		status, body := call(t, alice, "tw", "s1", "/?"+q.Encode())
		if status != 200 {
			t.Fatalf("agent: %d %s", status, body)
		}
		return body
	}
	if out := fetch(apiSrv.url("api.test"), "Bearer {{secret:API_KEY}}", ""); out != "api-ok\n" {
		t.Fatalf("secret use: %q", out)
	}
	if out := fetch(news.url("news.test"), "", ""); !strings.Contains(out, "ignore previous") {
		t.Fatalf("untrusted read: %q", out)
	}
	if l, err := alice.Labels(ctx, "tw", "s1"); err != nil || l.Integrity+"/"+l.Confidentiality != "untrusted/secret" {
		t.Fatalf("labels: %+v %v", l, err)
	}
	// Without waiting: refused at once, naming the approval.
	if out := fetch(evil.url("evil.test"), "", ""); !strings.HasPrefix(out, "403") || !strings.Contains(out, "lethal-trifecta-sandbox") {
		t.Fatalf("exfiltration attempt: %q", out)
	}
	// A person resolves the next pending approval while the request waits.
	resolve := func(approve bool) chan error {
		done := make(chan error, 1)
		go func() {
			for range 400 {
				l, err := alice.Approvals(ctx, "pending")
				if err != nil {
					done <- err
					return
				}
				for _, a := range l {
					if strings.Contains(a.Resource, "evil.test") {
						_, err := alice.ResolveApproval(ctx, a.ID, approve)
						done <- err
						return
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
			done <- errors.New("no pending approval appeared")
		}()
		return done
	}
	// The earlier refusal left a pending approval; deny it first.
	done := resolve(false)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done = resolve(true)
	if out := fetch(evil.url("evil.test"), "", "30"); out != "got it\n" {
		t.Fatalf("approved while waiting: %q", out)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done = resolve(false)
	if out := fetch(evil.url("evil.test"), "", "30"); !strings.HasPrefix(out, "403") || !strings.Contains(out, "was denied by") {
		t.Fatalf("denied while waiting: %q", out)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A short wait that nobody answers ends still pending.
	if out := fetch(evil.url("evil.test"), "", "0.3"); !strings.HasPrefix(out, "403") || !strings.Contains(out, "still pending") {
		t.Fatalf("unanswered wait: %q", out)
	}
	if n := len(evil.hits()); n != 1 {
		t.Fatalf("evil.test reached %d times, want once (the approved request)", n)
	}
}

// TestUserMintsOwnToken: a user issues tokens for itself only (API and
// CLI), never outliving the token it called with.
func TestUserMintsOwnToken(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), nil)
	ctx := context.Background()
	alice := userClient(t, d, admin, "user:alice") // a 1h token
	tok, err := alice.CreateToken(ctx, api.TokenRequest{Subject: "user:alice", TTL: "24h"})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Subject != "spiffe://agentcloud.local/user/alice" || time.Until(tok.Expires) > time.Hour+time.Minute {
		t.Fatalf("alice's own token: %+v", tok)
	}
	c, err := client.New("http://"+d.Addr(), tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	if who, err := c.WhoAmI(ctx); err != nil || who.Principal != tok.Subject {
		t.Fatalf("new token authenticates as %+v %v", who, err)
	}
	_, err = alice.CreateToken(ctx, api.TokenRequest{Subject: "user:bob"})
	wantKind(t, "alice minting bob's token", err, api.KindForbidden, "only for itself")
	_, err = alice.CreateToken(ctx, api.TokenRequest{Subject: "agent:bot"})
	wantKind(t, "alice minting an agent token", err, api.KindForbidden, "only for itself")

	// The CLI defaults the subject to the caller.
	at, err := admin.CreateToken(ctx, api.TokenRequest{Subject: "user:alice"})
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := cli.Main(ctx, []string{"--data", d.DataDir(), "--token", at.Token, "token", "create", "--output", "json"}, &stdout, &stderr)
	var out api.Token
	if code != 0 || json.Unmarshal(stdout.Bytes(), &out) != nil || out.Subject != tok.Subject {
		t.Fatalf("agentcloud token create as alice: exit %d, %s %s", code, stdout.String(), stderr.String())
	}
}

// TestSSRFFromSandboxRefused: a sandbox whose egress list names loopback,
// metadata and private destinations still cannot reach them through the
// proxy (checked after resolution), and cannot go around it.
func TestSSRFFromSandboxRefused(t *testing.T) {
	needSandboxes(t)
	cfg := config.Default()
	cfg.SandboxPoolProcess = 0
	d, admin := startDaemonWith(t, cfg, nil)
	ctx := context.Background()
	alice := userClient(t, d, admin, "user:alice")
	port := strings.Split(d.Addr(), ":")[1]
	sb, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{Tier: api.SandboxTierProcess,
		Egress: []string{"localhost", "127.0.0.1", "169.254.169.254", "10.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{
		"http://localhost:" + port + "/v1/status",
		"http://127.0.0.1:" + port + "/v1/status",
		"http://169.254.169.254/latest/meta-data/",
		"http://10.0.0.1/",
		"http://not-in-egress.example/",
	} {
		// --proxy: NO_PROXY keeps loopback inside the sandbox's own network
		// namespace; force even those through the proxy to test it.
		code, out := run(t, alice, sb.ID, "curl -sS --noproxy '' --proxy \"$HTTP_PROXY\" -o /dev/null -w '%{http_code}' --max-time 10 "+target)
		if out != "403" {
			t.Errorf("curl %s from the sandbox: exit %d, %q; want the proxy's 403", target, code, out)
		}
	}
	// Around the proxy there is no route to the host: loopback is the
	// sandbox's own network namespace.
	if code, out := run(t, alice, sb.ID, "curl -sS --noproxy '*' --max-time 5 http://127.0.0.1:"+port+"/healthz"); code == 0 {
		t.Fatalf("direct connection to the host's loopback from the sandbox: %q", out)
	}
	evs, err := admin.Audit(ctx, client.AuditQuery{Type: "egress"})
	if err != nil {
		t.Fatal(err)
	}
	denied := 0
	for _, e := range evs.Events {
		if e.Principal == sb.Identity && e.Outcome == "denied" {
			denied++
		}
	}
	if denied < 5 {
		t.Fatalf("egress denials audited for %s: %d, want 5", sb.Identity, denied)
	}
}
