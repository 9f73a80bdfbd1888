package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/console"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"github.com/agentcloud/agentcloud/internal/testdeps"
)

// consoleShots, when set, is where TestConsoleBrowser saves screenshots of
// the console's main views (scripts/console-shots.sh sets docs/img).
var consoleShots = flag.String("console-shots", "", "save screenshots of the web console's main views in this directory")

// chromiumPath finds Debian's chromium (the real binary, not its wrapper
// script, when both exist).
func chromiumPath() string {
	for _, p := range []string{"/usr/lib/chromium/chromium", "/usr/bin/chromium"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// TestConsoleBrowser drives the web console in Debian's headless chromium
// with playwright-core (testdata/console/e2e.mjs) against this live
// daemon: sign in by keyboard, deploy examples/hello, call it and find the
// session in the sessions view, follow an agent's logs and see its
// console.log line, open a sandbox, run a command and type in its
// terminal (a WebSocket through the cookie session), approve
// alice's release waiting for review; axe-core finds no serious or
// critical violation in any main view; alice and bob (two tenants) see
// only their own agents; no token appears in any URL.
func TestConsoleBrowser(t *testing.T) {
	t.Parallel() // its own daemon and browser; waits on the browser
	if testing.Short() {
		t.Skip("starts a browser (-short)")
	}
	chromium := chromiumPath()
	if chromium == "" {
		testdeps.Missing(t, "chromium is not installed: apt-get install chromium (scripts/deps.sh installs it)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testdeps.Missing(t, "node is not installed (scripts/deps.sh installs nodejs and npm)")
	}
	if process.Available() != nil {
		t.Skip("the process sandbox tier is not available here; the test runs a command in a sandbox")
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "console"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		npm, lerr := exec.LookPath("npm")
		if lerr != nil {
			testdeps.Missing(t, "npm is not installed (scripts/deps.sh installs nodejs and npm)")
		}
		cmd := exec.Command(npm, "ci", "--offline", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			testdeps.Missing(t, "playwright-core and axe-core are not installed in %s and not in the npm cache; run scripts/deps.sh (npm ci there): %v\n%s", dir, err, out)
		}
	}
	d, admin := startDaemon(t)
	ctx := context.Background()
	token := func(subject string) string {
		tok, err := admin.CreateToken(ctx, api.TokenRequest{Subject: subject, TTL: "1h"})
		if err != nil {
			t.Fatalf("token for %s: %v", subject, err)
		}
		return tok.Token
	}
	aliceTok, bobTok := token("user:alice"), token("user:bob")
	alice := userClient(t, d, admin, "user:alice")
	if err := deployJS(alice, `{"name":"alicebot","entry":"agent.js"}`, echoAgent); err != nil {
		t.Fatal(err)
	}
	// Alice's release of an agent with an egress host waits for review:
	// the browser approves it from the approvals queue.
	waiting, err := deployFiles(t, alice, map[string]string{"agent.json": `{"name":"fresh","entry":"agent.js","egress":["api.example.com"]}`,
		"agent.js": echoAgent})
	if err != nil || waiting.RunState != api.RunWaiting {
		t.Fatalf("alice's release with an egress host: %+v %v", waiting, err)
	}
	// logbot writes a console.log line per request: the logs panel shows it.
	if err := deployJS(admin, `{"name":"logbot","entry":"agent.js"}`, logbotAgent); err != nil {
		t.Fatal(err)
	}
	b, err := bundle.LoadDir(filepath.Join("..", "..", "examples", "hello"))
	if err != nil {
		t.Fatal(err)
	}
	tgz, err := b.TarGz()
	if err != nil {
		t.Fatal(err)
	}
	bundlePath := filepath.Join(t.TempDir(), "hello.tar.gz")
	if err := os.WriteFile(bundlePath, tgz, 0o600); err != nil {
		t.Fatal(err)
	}
	shots := *consoleShots
	if shots != "" {
		if shots, err = filepath.Abs(shots); err != nil {
			t.Fatal(err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(rctx, node, "e2e.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CONSOLE_URL=http://"+d.Addr(), "CHROMIUM="+chromium, "ADMIN_TOKEN="+adminToken(t, d.DataDir()),
		"ALICE_TOKEN="+aliceTok, "BOB_TOKEN="+bobTok, "BUNDLE="+bundlePath, "SHOTS="+shots)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Logf("browser steps:\n%s", stdout.String())
	if err != nil {
		t.Fatalf("console in the browser: %v\n%s", err, stderr.String())
	}
	consoleTerminalOrigin(t, d, admin, adminToken(t, d.DataDir()))
	// The approval in the browser released alice's change.
	deadline := time.Now().Add(time.Minute)
	for {
		run, err := alice.PipelineRun(ctx, waiting.Run)
		if err == nil && run.State == api.RunPassed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's run after the approval in the console: %+v %v", run, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const logbotAgent = `export default {
  async fetch(request) {
    const u = new URL(request.url);
    console.log("logbot saw " + u.pathname);
    return new Response("logged " + u.pathname);
  }
};`

// consoleTerminalOrigin: cross-site WebSocket hijacking. A console
// cookie opens a sandbox terminal only from the console's own origin; a
// foreign, null or missing Origin is refused with a csrf problem before
// any sandbox work.
func consoleTerminalOrigin(t *testing.T, d *daemon.Daemon, admin *client.Client, token string) {
	t.Helper()
	ctx := context.Background()
	base := "http://" + d.Addr()
	resp, err := http.Post(base+console.SessionPath, "application/json", strings.NewReader(`{"token":"`+token+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != 200 || len(cookies) != 1 {
		t.Fatalf("console sign-in: %d %v", resp.StatusCode, cookies)
	}
	sb, err := admin.CreateSandbox(ctx, api.CreateSandboxRequest{TimeoutS: 120})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = admin.DeleteSandbox(ctx, sb.ID) }()
	open := func(origin string) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/sandboxes/"+sb.ID+"/terminal", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		// What chromium sends besides.
		req.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")
		req.Header.Set("Cache-Control", "no-cache")
		req.Header.Set("Pragma", "no-cache")
		req.Header.Set("Accept-Language", "en-US")
		req.AddCookie(cookies[0])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, origin := range []string{"http://evil.example", "null", "", "http://" + d.Addr() + ".evil.example"} {
		resp := open(origin)
		var p api.Problem
		_ = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || p.Type != api.KindCSRF.TypeURI() {
			t.Errorf("terminal upgrade with the console cookie from Origin %q: %d %+v", origin, resp.StatusCode, p)
		}
	}
	resp = open(base)
	defer resp.Body.Close() // after 101 the body is the socket: closing it hangs up the terminal
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Errorf("terminal upgrade with the console cookie from the console's origin: %d %s", resp.StatusCode, body)
	}
}
