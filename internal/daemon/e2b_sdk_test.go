package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/sandbox/gvisor"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"github.com/agentcloud/agentcloud/internal/testdeps"
)

// e2bSDK finds node and the e2b SDK (npm e2b, pinned in testdata/e2bjs),
// installing it from the local npm cache only; it skips the test when
// either is missing.
func e2bSDK(t *testing.T) (node, dir string) {
	t.Helper()
	if err := process.Available(); err != nil {
		t.Skipf("process sandbox tier unavailable: %v", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testdeps.Missing(t, "node is not installed (scripts/deps.sh installs nodejs and npm)")
	}
	dir, err = filepath.Abs(filepath.Join("testdata", "e2bjs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "e2b", "package.json")); err != nil {
		npm, lerr := exec.LookPath("npm")
		if lerr != nil {
			testdeps.Missing(t, "npm is not installed (scripts/deps.sh installs nodejs and npm)")
		}
		cmd := exec.Command(npm, "ci", "--offline", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			testdeps.Missing(t, "the e2b SDK is not installed in %s and not in the npm cache; run scripts/deps.sh (npm ci there): %v\n%s", dir, err, out)
		}
	}
	return node, dir
}

// e2bKey issues an E2B API key for subject.
// runE2BScript runs script of testdata/e2bjs with node against a new
// daemon, as user alice with an E2B key, within timeout, and returns what
// it printed, with the daemon's admin client.
func runE2BScript(t *testing.T, script string, timeout time.Duration) ([]byte, *client.Client) {
	t.Helper()
	node, dir := e2bSDK(t)
	d, admin := startDaemon(t)
	key := e2bKey(t, d, admin, "user:alice")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	url := "http://" + d.Addr() + "/e2b"
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "E2B_API_URL="+url, "E2B_SANDBOX_URL="+url, "E2B_API_KEY="+key)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	return out, admin
}

func e2bKey(t *testing.T, d *daemon.Daemon, admin *client.Client, subject string) string {
	t.Helper()
	c := userClient(t, d, admin, subject)
	k, err := c.CreateE2BKey(context.Background(), api.E2BKeyRequest{Name: "test"})
	if err != nil {
		t.Fatalf("e2b key for %s: %v", subject, err)
	}
	return k.Key
}

// TestE2BSDK drives the E2B-compatible API with the real e2b SDK from npm
// against a live daemon: create, commands.run with streamed output (three
// lines printed 300 ms apart reach onStdout as three chunks, the first
// well before the command ends) and an exit error, fork (sandbox.fork with
// a timeout, and Sandbox.fork with count 2 and E2B's default timeout: the
// copies see the parent's files, then each writes on its own, and are
// killed), files write/read/list/makeDir/rename/remove, a background
// command listed and killed, stdin, a pty (input, resize, exit),
// setTimeout, pause and connect, list, kill.
func TestE2BSDK(t *testing.T) {
	out, admin := runE2BScript(t, "e2b.mjs", 3*time.Minute)
	ctx := t.Context()
	var got struct {
		ID  string
		Run struct {
			ExitCode        int
			Stdout, Stderr  string
			Chunks          int
			Streamed, Error string
		}
		Stream struct {
			Stdout string
			Chunks []string
			At     []int // ms after the call, of each chunk
			End    int   // ms after the call, when it returned
			Error  string
		}
		Fork struct {
			Count                      int
			Errors                     []string
			ID, Seen, Ran, ParentRuns  string
			ForkInParent, ParentInFork bool
			SecondsLeft                int
			Two                        int
			TwoIDs                     []string `json:"twoIds"`
			TwoLeft                    []int
			TwoSeen                    []string
			Killed                     []bool
			Error                      string
		}
		ExitError struct {
			Thrown   bool
			ExitCode int
			Error    string
		}
		Files struct {
			Written, Read, Moved, Error string
			List                        []string
			Exists, Gone                bool
		}
		Background struct {
			PID            int
			Listed, Killed bool
			Waited, Error  string
			After          int
		}
		Stdin struct{ Stdout, Error string }
		Pty   struct {
			Size, Answer, Resized bool
			ExitCode              int
			Error                 string
		}
		Timeout struct {
			SecondsLeft int
			State       string
			Error       string
		}
		Pause struct {
			Paused                       bool
			StateWhilePaused, StateAfter string
			Stdout, Error                string
		}
		List []struct {
			ID       string
			Metadata map[string]string
		}
		Kill struct {
			Killed, Again bool
			Running       any
			Error         string
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	t.Logf("e2b SDK results: %s", out)
	if r := got.Run; r.Error != "" || r.ExitCode != 0 || r.Stdout != "hi from /bin/bash\nline1\nline2\nline3\n" ||
		r.Stderr != "oops\n" || r.Chunks < 1 || r.Streamed != r.Stdout {
		t.Errorf("commands.run: %+v", r)
	}
	// Three lines printed 300 ms apart reach onStdout as three chunks,
	// the first well before the command ends: streamed, not buffered.
	if st := got.Stream; st.Error != "" || st.Stdout != "tick1\ntick2\ntick3\n" || strings.Join(st.Chunks, "") != st.Stdout ||
		len(st.Chunks) < 3 || len(st.At) != len(st.Chunks) || st.End-st.At[0] < 300 {
		t.Errorf("commands.run streaming (chunks at ms, end): %+v", st)
	}
	if f := got.Fork; f.Error != "" || f.Count != 1 || len(f.Errors) != 0 || f.ID == "" || f.ID == got.ID ||
		f.Seen != "from the parent\n" || f.ForkInParent || f.ParentInFork || f.Ran != "from the parent\nfrom the fork\n" ||
		f.SecondsLeft < 60 || f.SecondsLeft > 90 || f.Two != 2 || len(f.TwoIDs) != 2 || len(f.TwoLeft) != 2 ||
		f.TwoLeft[0] > 15 || f.TwoLeft[1] > 15 || !slices.Equal(f.TwoSeen, []string{"after the fork\n|false", "after the fork\n|false"}) ||
		!slices.Equal(f.Killed, []bool{true, true, true}) || f.ParentRuns != "from the parent\n" {
		t.Errorf("fork: %+v", f)
	}
	for _, id := range append([]string{got.Fork.ID}, got.Fork.TwoIDs...) {
		if _, err := admin.Sandbox(ctx, id); err == nil {
			t.Errorf("fork %s is still there after kill", id)
		}
	}
	if p := got.Pty; p.Error != "" || !p.Size || !p.Answer || !p.Resized || p.ExitCode != 4 {
		t.Errorf("pty (create, sendInput, resize, exit): %+v", p)
	}
	if e := got.ExitError; !e.Thrown || e.ExitCode != 3 {
		t.Errorf("commands.run exit 3: %+v", e)
	}
	if f := got.Files; f.Error != "" || f.Written != "/workspace/hello.txt" || f.Read != "hello from the e2b sdk\n" ||
		!slices.Contains(f.List, "hello.txt:file") || !slices.Contains(f.List, "sub:dir") || !f.Exists ||
		f.Moved != f.Read || f.Gone {
		t.Errorf("files: %+v", f)
	}
	if b := got.Background; b.Error != "" || b.PID <= 1 || !b.Listed || !b.Killed || b.Waited != "CommandExitError" || b.After != 0 {
		t.Errorf("background command: %+v", b)
	}
	if got.Stdin.Stdout != "got typed\n" {
		t.Errorf("stdin: %+v", got.Stdin)
	}
	if tm := got.Timeout; tm.Error != "" || tm.SecondsLeft < 290 || tm.SecondsLeft > 300 || tm.State != "running" {
		t.Errorf("setTimeout: %+v", tm)
	}
	if p := got.Pause; p.Error != "" || !p.Paused || p.StateWhilePaused != "paused" || p.Stdout != "after resume\n" || p.StateAfter != "running" {
		t.Errorf("pause and connect: %+v", p)
	}
	if len(got.List) != 1 || got.List[0].ID != got.ID || got.List[0].Metadata["suite"] != "e2b-sdk" {
		t.Errorf("list: %+v", got.List)
	}
	if k := got.Kill; k.Error != "" || !k.Killed || k.Again || k.Running != false {
		t.Errorf("kill: %+v", k)
	}
	if _, err := admin.Sandbox(ctx, got.ID); err == nil || !strings.Contains(err.Error(), "not") {
		t.Errorf("the killed sandbox is still there: %v", err)
	}
}

// TestE2BSDKPtyGVisor: the e2b SDK's pty (create, sendInput, resize,
// exit) on a gVisor sandbox, whose terminals its exec agent makes.
func TestE2BSDKPtyGVisor(t *testing.T) {
	if err := gvisor.Available(""); err != nil {
		t.Skipf("gvisor sandbox tier unavailable: %v", err)
	}
	out, _ := runE2BScript(t, "pty-gvisor.mjs", 2*time.Minute)
	var got struct {
		Size, Answer, Resized bool
		ExitCode              int
		Error                 string
	}
	if err := json.Unmarshal(out, &got); err != nil || got.Error != "" || !got.Size || !got.Answer || !got.Resized || got.ExitCode != 4 {
		t.Fatalf("pty on gvisor: %+v %v (%s)", got, err, out)
	}
}
