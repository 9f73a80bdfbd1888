package daemon_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
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
// session in the sessions view, open a sandbox and run a command, approve
// alice's release waiting for review; axe-core finds no serious or
// critical violation in any main view; alice and bob (two tenants) see
// only their own agents; no token appears in any URL.
func TestConsoleBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser (-short)")
	}
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("chromium is not installed: apt-get install chromium (scripts/deps.sh installs it)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (scripts/deps.sh installs nodejs and npm)")
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
			t.Skip("npm is not installed (scripts/deps.sh installs nodejs and npm)")
		}
		cmd := exec.Command(npm, "ci", "--offline", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("playwright-core and axe-core are not installed in %s and not in the npm cache; run scripts/deps.sh (npm ci there): %v\n%s", dir, err, out)
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
