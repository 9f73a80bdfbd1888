package proctest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

// TestKill9KeepsSandboxes: sandboxes and their files survive kill -9 of
// the daemon. After the restart they are listed as stopped with their
// spec (a paused one keeps the rest of its clock), nothing runs in them,
// start brings one back with its files (written through the files API and
// from inside), and delete removes its files.
func TestKill9KeepsSandboxes(t *testing.T) {
	t.Parallel() // its own daemon process and data directory
	if testing.Short() {
		t.Skip("spawns daemon processes; skipped in -short")
	}
	if process.Available() != nil {
		t.Skip("the process sandbox tier is not available here")
	}
	ctx := t.Context()
	data := t.TempDir()
	p := spawnDaemon(t, data)
	c := p.client
	if _, err := c.CreateVolume(ctx, "keep", 1); err != nil { // a volume survives too
		t.Fatal(err)
	}
	kept, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Env: map[string]string{"KEPT": "env"}, Metadata: map[string]string{"k": "v"},
		Volumes: []api.SandboxVolume{{Name: "keep", Path: "/mnt/keep"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteFile(ctx, kept.ID, "api.txt", strings.NewReader("through the API\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exec := func(c *client.Client, id, script string) string {
		t.Helper()
		var out, errb bytes.Buffer
		code, err := c.Exec(ctx, id, api.ExecRequest{Cmd: "sh", Args: []string{"-c", script}}, &out, &errb)
		if err != nil || code != 0 {
			t.Fatalf("%s: %d %v %s", script, code, err, errb.String())
		}
		return out.String()
	}
	exec(c, kept.ID, "echo from inside > inside.txt && echo in volume > /mnt/keep/v.txt && sleep 1000 >/dev/null 2>&1 &")
	paused, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if paused, err = c.PauseSandbox(ctx, paused.ID); err != nil || paused.State != api.SandboxStatePaused {
		t.Fatalf("pause: %+v %v", paused, err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	dead := p.cmd.Process.Pid

	p = spawnDaemon(t, data)
	c = p.client
	defer func() { // gracefully: its sandboxes' cgroups go with it
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.exited
	}()
	// The next daemon kills what the dead one left running (the paused
	// sandbox's frozen init cannot notice) and removes its cgroups.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		left := 0
		for _, pat := range []string{"/sys/fs/cgroup/*/agentcloud-sandbox/sb-%d-*", "/sys/fs/cgroup/*/*/agentcloud-sandbox/sb-%d-*"} {
			m, _ := filepath.Glob(fmt.Sprintf(pat, dead))
			left += len(m)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d cgroups of the killed daemon left", left)
		}
	}
	list, states := sandboxesByID(ctx, t, c)
	if len(states) != 2 || states[kept.ID].State != api.SandboxStateStopped || states[paused.ID].State != api.SandboxStateStopped {
		t.Fatalf("after kill -9: %+v", list)
	}
	if s := states[kept.ID]; s.Metadata["k"] != "v" || s.Owner != kept.Owner || s.Reason == "" {
		t.Fatalf("kept sandbox lost its record: %+v", s)
	}
	if states[paused.ID].Expires.Before(paused.Expires.Add(-time.Minute)) {
		t.Fatalf("paused clock ran: expires %v, was %v", states[paused.ID].Expires, paused.Expires)
	}
	// A stopped sandbox takes no exec and no file calls: 409 naming start.
	_, err = c.Exec(ctx, kept.ID, api.ExecRequest{Cmd: "true"}, io.Discard, io.Discard)
	var pe *api.Problem
	if !errors.As(err, &pe) || pe.Status != http.StatusConflict || !strings.Contains(pe.Detail, "start") {
		t.Fatalf("exec on a stopped sandbox: %v", err)
	}
	if s, err := c.StartSandbox(ctx, kept.ID); err != nil || s.State != api.SandboxStateRunning {
		t.Fatalf("start: %+v %v", s, err)
	}
	if got := exec(c, kept.ID, "cat api.txt inside.txt /mnt/keep/v.txt; echo $KEPT; pgrep -c sleep || true"); got != "through the API\nfrom inside\nin volume\nenv\n0\n" {
		t.Fatalf("started sandbox sees %q", got)
	}
	dir := filepath.Join(data, "sandboxes", kept.ID)
	if _, err := os.Stat(filepath.Join(dir, "workspace", "inside.txt")); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteVolume(ctx, "keep"); !api.IsKind(err, api.KindConflict) {
		t.Fatalf("delete a volume a kept sandbox mounts: %v", err)
	}
	for _, id := range []string{kept.ID, paused.ID} {
		if err := c.DeleteSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.DeleteVolume(ctx, "keep"); err != nil {
		t.Fatalf("delete the volume: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleted sandbox's dir: %v", err)
	}
}

// sandboxesByID lists c's sandboxes, also by id.
func sandboxesByID(ctx context.Context, t *testing.T, c *client.Client) ([]api.Sandbox, map[string]api.Sandbox) {
	t.Helper()
	list, err := c.Sandboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := make(map[string]api.Sandbox, len(list))
	for _, s := range list {
		byID[s.ID] = s
	}
	return list, byID
}
