package proctest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/testdeps"
)

// TestWasmAgentDeployAndRestart builds examples/wasm-counter from its C
// source, deploys it with the CLI, calls it over HTTP and sees its C global
// and its stored counter continue across hibernation and a daemon restart.
func TestWasmAgentDeployAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns daemon processes; skipped in -short")
	}
	if _, err := exec.LookPath("clang"); err != nil {
		testdeps.Missing(t, "clang not found: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32 (scripts/deps.sh) to build examples/wasm-counter")
	}
	src := "../../../examples/wasm-counter"
	bundleDir := t.TempDir()
	if b, err := exec.Command(filepath.Join(src, "build.sh"), filepath.Join(bundleDir, "agent.wasm")).CombinedOutput(); err != nil {
		t.Fatalf("build examples/wasm-counter: %v\n%s", err, b)
	}
	for _, f := range []string{"agent.json", "agent.c", "README.md"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bundleDir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	data := t.TempDir()
	p := spawnDaemon(t, data)
	cmd := exec.Command(os.Args[0], "deploy", bundleDir, "--data", data)
	cmd.Env = append(os.Environ(), "AGENTCLOUD_TEST_MAIN=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("agentcloud deploy: %v\n%s", err, out)
	}

	type counter struct {
		Global, Stored int
		Session        string
	}
	get := func(c *client.Client, id string) counter {
		t.Helper()
		resp, err := c.Call(context.Background(), "wasm-counter", id, "GET", "/", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		var r counter
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return r
	}
	for i := 1; i <= 2; i++ {
		if r := get(p.client, "w"); r.Global != i || r.Stored != i || r.Session != "w" {
			t.Fatalf("call %d: %+v", i, r)
		}
	}
	if _, err := p.client.Hibernate(context.Background(), "wasm-counter", "w"); err != nil {
		t.Fatal(err)
	}
	if r := get(p.client, "w"); r.Global != 3 || r.Stored != 3 {
		t.Fatalf("after hibernation: %+v", r)
	}

	// A graceful stop hibernates the live session; the next daemon restores it.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon did not stop on SIGTERM\n%s", p.out)
	}
	p2 := spawnDaemon(t, data)
	if r := get(p2.client, "w"); r.Global != 4 || r.Stored != 4 {
		t.Fatalf("after restart: %+v", r)
	}
	s, err := p2.client.Session(context.Background(), "wasm-counter", "w")
	if err != nil || s.State != "live" {
		t.Fatalf("session after restart: %+v %v", s, err)
	}
}
