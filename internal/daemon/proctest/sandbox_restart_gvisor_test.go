package proctest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/sandbox/gvisor"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

// TestKill9KeepsGVisorSandboxesClass: a gVisor sandbox survives kill -9 of
// its daemon like a process-tier one. The next daemon lists it as stopped
// with its files, nothing of the dead daemon's container is left running,
// mounted or in a cgroup, and start brings it back with its files. The
// class: runsc state a dead daemon left in a directory the next one does
// not look at (a per-run root) orphans sandbox processes, gofers, mounts
// and cgroups. The next daemon runs with another temporary directory (a
// unit's PrivateTmp, a cleaned /tmp): what it must find cannot live there.
func TestKill9KeepsGVisorSandboxesClass(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns daemon processes; skipped in -short")
	}
	if process.Available() != nil || gvisor.Available("") != nil {
		t.Skip("the gVisor sandbox tier is not available here")
	}
	ctx := t.Context()
	// A data directory too long for socket paths below it: the tier's
	// directory is derived from it under /run (gvisor.StateDir).
	data := filepath.Join(t.TempDir(), strings.Repeat("d", 60))
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if gvisor.StateDir(data) == data {
		t.Fatalf("data dir %q kept as the gVisor dir", data)
	}
	tmp1, tmp2 := searchableTempDir(t), searchableTempDir(t)
	t.Setenv("TMPDIR", tmp1)
	p := spawnDaemon(t, data)
	c := p.client
	sb, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Tier: "gvisor", Env: map[string]string{"KEPT": "env"}})
	if err != nil {
		t.Fatalf("create: %v\n%s", err, p.out)
	}
	if _, err := c.WriteFile(ctx, sb.ID, "api.txt", strings.NewReader("through the API\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sh := func(id, script string) string {
		t.Helper()
		var out, errb bytes.Buffer
		code, err := c.Exec(ctx, id, api.ExecRequest{Cmd: "sh", Args: []string{"-c", script}}, &out, &errb)
		if err != nil || code != 0 {
			t.Fatalf("%s: %d %v %s", script, code, err, errb.String())
		}
		return out.String()
	}
	sh(sb.ID, "echo from inside > inside.txt && (sleep 1000 >/dev/null 2>&1 &)")
	// A paused sandbox's processes are frozen: a SIGKILL waits for a thaw.
	paused, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Tier: "gvisor"})
	if err != nil {
		t.Fatal(err)
	}
	if paused, err = c.PauseSandbox(ctx, paused.ID); err != nil || paused.State != api.SandboxStatePaused {
		t.Fatalf("pause: %+v %v", paused, err)
	}
	dir := sandboxDir(t, p.out.String())
	// runsc's processes name their root and bundle: the tier's state
	// directory, wherever the daemon keeps it.
	gdir := gvisor.StateDir(data) + "/gvisor"
	before := append(gvisorHolders(dir), gvisorHolders(gdir)...)
	if len(before) == 0 {
		t.Fatalf("no runsc process names %s or %s", dir, gdir)
	}
	t.Cleanup(func() { // what a failing daemon left
		killPids(before)
		for _, d := range []string{dir, gdir} {
			process.DetachMountsBelow(d)
		}
		gvisor.RemoveLeftovers(filepath.Dir(gdir))
		gvisor.RemoveLeftovers(dir)
		if root := filepath.Dir(gdir); gvisor.InRunDir(root) && process.DetachMountsBelow(root) {
			_ = os.RemoveAll(root) // under /run: no t.TempDir removes it
		}
	})
	cgroups := holderCgroups(before)
	if len(cgroups) == 0 {
		t.Fatal("the sandbox's processes are in no agentcloud-gvisor cgroup")
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited

	t.Setenv("TMPDIR", tmp2)
	p = spawnDaemon(t, data)
	c = p.client
	defer func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.exited
	}()
	// The dead daemon's runsc processes, mounts and cgroups are gone.
	for _, pid := range before {
		if syscall.Kill(pid, 0) == nil && !zombie(pid) {
			t.Errorf("runsc process %d of the killed daemon still runs", pid)
		}
	}
	m, _ := os.ReadFile("/proc/self/mountinfo")
	for _, d := range []string{dir, gdir + "/bundles"} {
		if bytes.Contains(m, []byte(d+"/")) {
			t.Errorf("mounts of the killed daemon left below %s", d)
		}
	}
	for _, cg := range cgroups {
		if _, err := os.Stat(cg); err == nil {
			t.Errorf("cgroup %s of the killed daemon left", cg)
		}
	}
	list, states := sandboxesByID(ctx, t, c)
	if len(states) != 2 || states[sb.ID].State != api.SandboxStateStopped || states[paused.ID].State != api.SandboxStateStopped || states[sb.ID].Tier != "gvisor" {
		t.Fatalf("after kill -9: %+v", list)
	}
	if s, err := c.StartSandbox(ctx, sb.ID); err != nil || s.State != api.SandboxStateRunning {
		t.Fatalf("start: %+v %v\n%s", s, err, p.out)
	}
	if got := sh(sb.ID, "cat api.txt inside.txt; echo $KEPT; pgrep -c sleep || true"); got != "through the API\nfrom inside\nenv\n0\n" {
		t.Fatalf("started sandbox sees %q", got)
	}
	for _, id := range []string{sb.ID, paused.ID} {
		if err := c.DeleteSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "sandboxes", sb.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleted sandbox's dir: %v", err)
	}
	// A clean stop removes the tier's directory (under /run for a long
	// data directory, where nothing else would).
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited
	if _, err := os.Stat(filepath.Dir(gdir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("gVisor dir after a clean stop: %v", err)
	}
}

// sandboxDir is the tier state directory a daemon logged at start.
func sandboxDir(t *testing.T, log string) string {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		var rec struct {
			Msg string `json:"msg"`
			Dir string `json:"dir"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "sandboxes ready" && rec.Dir != "" {
			return rec.Dir
		}
	}
	t.Fatalf("no sandbox dir logged:\n%s", log)
	return ""
}

// gvisorHolders are the processes whose command line names dir.
func gvisorHolders(dir string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(dir+"/")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// holderCgroups are the agentcloud-gvisor cgroup directories of pids.
func holderCgroups(pids []int) []string {
	seen := map[string]bool{}
	var dirs []string
	for _, pid := range pids {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		for _, line := range strings.Split(string(b), "\n") {
			// hierarchy-id:controllers:path
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 || !strings.Contains(parts[2], "/agentcloud-gvisor/") {
				continue
			}
			ctrl := strings.TrimPrefix(strings.Split(parts[1], ",")[0], "name=")
			if ctrl == "" {
				continue
			}
			d := filepath.Join("/sys/fs/cgroup", ctrl, parts[2])
			if !seen[d] {
				seen[d] = true
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

// zombie reports whether pid has exited and waits for its parent.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// searchableTempDir is a temporary directory the process tier's uid-mapped
// inits may search (t.TempDir's parent is 0700), short: socket paths
// of a per-run state directory below it must fit in 108 bytes.
func searchableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "t")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	return dir
}

// killPids kills what still runs of pids.
func killPids(pids []int) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
