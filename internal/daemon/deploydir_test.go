package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/bundle"
)

// TestDeployDirClass: client.DeployDir deploys a directory as the bundle
// the daemon's own loader makes of it (same digest, .git and node_modules
// left out), and refuses what a bundle cannot hold with the file named:
// a symbolic link (even one pointing inside), a missing directory, a
// directory without agent.json (the daemon's validation error).
func TestDeployDirClass(t *testing.T) {
	_, admin := startDaemon(t)
	ctx := context.Background()
	dir := t.TempDir()
	write := func(p, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("agent.json", `{"name":"packed","entry":"src/agent.js"}`)
	write("src/agent.js", echoAgent)
	write("src/lib/util.js", "export const x = 1;\n")
	write(".git/HEAD", "ref: refs/heads/main\n")
	write("node_modules/dep/index.js", "module.exports = 1;\n")
	v, err := admin.DeployDir(ctx, dir)
	if err != nil {
		t.Fatalf("DeployDir: %v", err)
	}
	want, err := bundle.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v.Agent != "packed" || v.Digest != want.Digest || v.Files != 3 {
		t.Fatalf("deployed %+v, want digest %s and 3 files", v, want.Digest)
	}
	// Same tree, same bytes: deploying again is the same version.
	if v2, err := admin.DeployDir(ctx, dir); err != nil || v2.Digest != v.Digest {
		t.Fatalf("second DeployDir: %+v %v", v2, err)
	}

	if err := os.Symlink("agent.js", filepath.Join(dir, "src", "link.js")); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DeployDir(ctx, dir); err == nil || !strings.Contains(err.Error(), `"src/link.js"`) {
		t.Errorf("DeployDir with a symbolic link: %v", err)
	}
	if _, err := admin.DeployDir(ctx, filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("DeployDir of a missing directory: %v", err)
	}
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "agent.js"), []byte(echoAgent), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DeployDir(ctx, empty); err == nil || !strings.Contains(err.Error(), "agent.json") {
		t.Errorf("DeployDir without agent.json: %v", err)
	}
}
