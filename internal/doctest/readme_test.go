package doctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"github.com/agentcloud/agentcloud/internal/testdeps"
)

// docFiles are the Markdown files whose sh blocks run, in order: the README
// first (the examples' READMEs may rely on nothing it did), docs/PIPELINE.md
// last.
func docFiles(t *testing.T, root string) []string {
	t.Helper()
	files := []string{"README.md", filepath.Join("examples", "README.md")}
	more, err := filepath.Glob(filepath.Join(root, "examples", "*", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(more)
	for _, f := range more {
		rel, _ := filepath.Rel(root, f)
		files = append(files, rel)
	}
	return append(files, filepath.Join("docs", "PIPELINE.md"))
}

// TestDocBlocksClass: every code block of the docs is labelled, so each
// command is either run by TestDocCommands (sh) or marked as not run; and
// every curl in an sh block fails on an HTTP error (-f), so a command
// whose answer is a problem+json error cannot pass.
func TestDocBlocksClass(t *testing.T) {
	root := repoRoot(t)
	for _, f := range docFiles(t, root) {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := parseBlocks(f, string(b))
		if err != nil {
			t.Error(err)
			continue
		}
		for _, c := range commands(blocks) {
			if err := curlFails(c.text); err != nil {
				t.Errorf("%s:%d: %v", f, c.first, err)
			}
		}
	}
}

// curlFails checks that each curl in a command line has -f or --fail.
func curlFails(line string) error {
	words := strings.Fields(line)
	for i, w := range words {
		if w != "curl" {
			continue
		}
		ok := false
		for _, a := range words[i+1:] {
			if a == "|" || a == ";" || a == "&&" {
				break
			}
			if a == "--fail" || a == "--fail-with-body" || strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && strings.Contains(a, "f") {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("curl without -f: an HTTP error would not fail the doc test; add -f (e.g. curl -fsS)")
		}
	}
	return nil
}

// missingTools lists what the docs' commands need that this machine lacks.
func missingTools() []string {
	var missing []string
	if err := process.Available(); err != nil {
		missing = append(missing, "the process sandbox tier (root and user namespaces): "+err.Error())
	}
	for _, tool := range []string{"runsc", "clang", "wasm-ld", "curl", "python3", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := os.Stat("/usr/lib/wasm32-wasi/libc.a"); err != nil {
		missing = append(missing, "wasi-libc")
	}
	return missing
}

// TestDocCommands runs every sh block of README.md and examples/*/README.md
// as written, as a reader would: from a directory that holds the built
// binary at bin/agentcloud and a copy of examples/, against a node serving
// from ./agentcloud-data there, each file's blocks in one bash session
// (so a variable set in one block is seen by the next). The hosts the docs
// use as stand-ins (api.example.com, ...) are served on loopback; nothing
// else is reachable. A failing command fails the test with the file and
// line of the command and the output before it.
func TestDocCommands(t *testing.T) {
	t.Parallel() // its own node and directory; overlaps the cluster demo
	if m := missingTools(); len(m) > 0 {
		testdeps.Missing(t, "the docs' commands need %s (scripts/deps.sh installs them)", strings.Join(m, ", "))
	}
	root := repoRoot(t)
	bin := agentcloudBin(t)
	work := t.TempDir()
	if err := os.MkdirAll(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(work, "bin", "agentcloud")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(work, "examples"), os.DirFS(filepath.Join(root, "examples"))); err != nil {
		t.Fatal(err)
	}

	up := startUpstreams(t)
	cfg := config.Default()
	cfg.Data, cfg.Listen, cfg.SandboxPoolProcess = filepath.Join(work, "agentcloud-data"), "127.0.0.1:0", 0
	cfg.EgressLoopbackHosts, cfg.EgressUpstreamCAFile = up.loopbackHosts(), up.caFile
	var log *slog.Logger
	if os.Getenv("DOCTEST_LOG") != "" { // the node's log, for debugging a failing block
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	d, err := daemon.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })

	env := cleanEnv("XDG_CONFIG_HOME="+t.TempDir(), "LC_ALL=C")
	files := docFiles(t, root)
	if only := os.Getenv("DOCTEST_ONLY"); only != "" { // one file, while editing it
		files = []string{only}
	}
	for _, f := range files {
		t.Run(strings.ReplaceAll(f, "/", "_"), func(t *testing.T) {
			runDoc(t, root, work, f, env)
		})
	}
	if len(files) == 1 {
		return
	}
	// The stand-ins saw the calls the README makes, with the credentials
	// it stored: the secrets reached them through the proxy.
	for _, what := range []string{"api", "llm", "mcp search_issues", "pets", "maps document"} {
		if up.count(what) == 0 {
			t.Errorf("the README never reached the stand-in for %s", what)
		}
	}
}

// runDoc runs the sh blocks of one file in one bash process.
func runDoc(t *testing.T, root, work, file string, env []string) {
	text, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := parseBlocks(file, string(text))
	if err != nil {
		t.Fatal(err)
	}
	cmds := commands(blocks)
	if len(cmds) == 0 {
		return
	}
	failFile := filepath.Join(t.TempDir(), "failed")
	// One line: stop at the first failing command and note its line; name
	// each command's line in the trace; stop background jobs at the end.
	prologue := `set -eEuo pipefail; trap 'echo "$LINENO $?" > "$DOCTEST_FAILED"' ERR; ` +
		`trap 'kill $(jobs -p) 2>/dev/null || true' EXIT; PS4='+ ` + file + `:${LINENO}: '; set -x`
	src, err := bashScript(prologue, strings.Count(string(text), "\n")+1, blocks)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	scriptPath := filepath.Join(t.TempDir(), "doc.sh")
	if err := os.WriteFile(scriptPath, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute) // a hang, not a speed check
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", scriptPath)
	cmd.Dir = work
	cmd.Env = append(env, "DOCTEST_FAILED="+failFile)
	cmd.Stdin = nil
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	runErr := cmd.Run()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // anything the blocks left behind
	t.Logf("%s: %d commands in %s", file, len(cmds), time.Since(start).Round(time.Millisecond))
	if runErr == nil {
		if testing.Verbose() {
			t.Logf("output:\n%s", out.String())
		}
		return
	}
	tail := lastLines(out.String(), 40)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("%s: the commands did not finish; last output:\n%s", file, tail)
	}
	b, err := os.ReadFile(failFile)
	if err != nil {
		t.Fatalf("%s: bash failed (%v) outside any command; output:\n%s", file, runErr, tail)
	}
	var line, status int
	fmt.Sscan(string(b), &line, &status)
	c := commandAt(cmds, line)
	t.Fatalf("%s:%d: `%s` failed with exit status %d; output:\n%s", file, c.first, c.text, status, tail)
}

// commandAt is the command that spans line (bash may report any of its lines).
func commandAt(cmds []command, line int) command {
	for _, c := range cmds {
		if line >= c.first && line <= c.last {
			return c
		}
	}
	return command{first: line, last: line, text: "line " + strconv.Itoa(line)}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
