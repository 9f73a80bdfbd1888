package cli

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/config"
)

// TestDevRebuildsTypeScriptOnChange: `dev` on a TypeScript agent builds and
// deploys it, and deploys again when a source file changes.
func TestDevRebuildsTypeScriptOnChange(t *testing.T) {
	clearClientEnv(t)
	var data string
	d := newDaemon(t, func(c *config.Config) { data = c.Data })
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "dev-ts")
	if code, _, errOut := runCLI(t, "init", dir); code != 0 {
		t.Fatal(errOut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"--data", data, "dev", dir, "--interval", "50ms"}, io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		<-done
	}()
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute) // a hang, not a speed check
		for {
			code, out, _ := runCLI(t, "--data", data, "call", "--preview", "dev-ts/s", "/")
			if code == 0 && strings.Contains(out, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("never answered %q; last: %d %q", want, code, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor(`"message":"hello from dev-ts"`) // the preview
	if code, out, _ := runCLI(t, "--data", data, "call", "dev-ts/s", "/"); code == 0 {
		t.Fatalf("dev released to production: %q", out)
	}
	src := filepath.Join(dir, "src", "index.ts")
	code, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte(strings.Replace(string(code), "visits });", "visits, edited: true });", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(`"edited":true`) // (the scaffold's test still passes, so the pipeline lets it through)
}
