package doctest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

// script is scripts/run.sh running with its output collected.
type script struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
	seen chan struct{} // closed when the "is running" line appears
}

func (s *script) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Write(p)
}

func (s *script) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// startRunScript runs scripts/run.sh with the built binary, a fresh data
// dir (unless AGENTCLOUD_DATA is in env) and a free port.
func startRunScript(t *testing.T, env ...string) *script {
	t.Helper()
	root := repoRoot(t)
	bin := agentcloudBin(t)
	env = append([]string{"AGENTCLOUD_DATA=" + filepath.Join(t.TempDir(), "data"), "AGENTCLOUD_LISTEN=127.0.0.1:0",
		"AGENTCLOUD_LOG_FORMAT=text", "AGENTCLOUD_SANDBOX_POOL_PROCESS=0", "AGENTCLOUD_SANDBOX_POOL_GVISOR=0"}, env...)
	cmd := exec.Command(filepath.Join(root, "scripts", "run.sh"), bin)
	cmd.Dir = t.TempDir() // not the checkout: the script finds its own way
	cmd.Env = cleanEnv(env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s := &script{cmd: cmd, done: make(chan struct{}), seen: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			s.Write([]byte(line + "\n"))
			if strings.HasPrefix(line, "agentcloud is running") {
				once.Do(func() { close(s.seen) })
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() { s.err = cmd.Wait(); pw.Close(); close(s.done) }()
	t.Cleanup(func() {
		killGroup(cmd)
		<-s.done
	})
	return s
}

// exit waits for the script to end and returns its exit status.
func (s *script) exit(t *testing.T) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(3 * time.Minute): // a hang, not a speed check
		t.Fatalf("scripts/run.sh did not end\n%s", s.output())
	}
	var ee *exec.ExitError
	if errors.As(s.err, &ee) {
		return ee.ExitCode()
	}
	if s.err != nil {
		t.Fatal(s.err)
	}
	return 0
}

func dataOf(s *script) string {
	for _, kv := range s.cmd.Env {
		if v, ok := strings.CutPrefix(kv, "AGENTCLOUD_DATA="); ok {
			return v
		}
	}
	return ""
}

// TestRunScriptClass runs scripts/run.sh (`make run`) on a fresh data dir:
// it waits for the daemon, runs the demo and keeps the daemon until
// Ctrl-C; and however it ends (Ctrl-C, a failing step, a daemon that cannot
// start) it stops the daemon it started, and only that one.
func TestRunScriptClass(t *testing.T) {
	if err := process.Available(); err != nil {
		t.Skipf("the demo runs a process-tier sandbox (needs root and user namespaces): %v", err)
	}
	t.Run("demo, then Ctrl-C", func(t *testing.T) {
		s := startRunScript(t)
		select {
		case <-s.seen:
		case <-s.done:
			t.Fatalf("scripts/run.sh ended early: %v\n%s", s.err, s.output())
		case <-time.After(3 * time.Minute):
			t.Fatalf("scripts/run.sh did not get to its end\n%s", s.output())
		}
		out := s.output()
		for _, want := range []string{"Hello from hello/demo!", "hello from a sandbox: 42", "run_code"} {
			if !strings.Contains(out, want) {
				t.Errorf("demo output lacks %q", want)
			}
		}
		if strings.Contains(out, "demo failed") {
			t.Errorf("the demo failed")
		}
		data := dataOf(s)
		if lockFree(t, data) {
			t.Fatal("no daemon holds the data dir while the script runs")
		}
		_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGINT) // Ctrl-C, to the script
		if code := s.exit(t); code != 130 {
			t.Errorf("exit %d after Ctrl-C, want 130\n%s", code, s.output())
		}
		if !lockFree(t, data) {
			t.Fatalf("the daemon outlived the script\n%s", s.output())
		}
		if _, err := os.Stat(filepath.Join(data, daemon.AddrFile)); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", daemon.AddrFile, err)
		}
		if t.Failed() {
			t.Log(s.output())
		}
	})
	t.Run("a failing step stops the daemon", func(t *testing.T) {
		s := startRunScript(t, "AGENTCLOUD_TOKEN=acb_not-the-daemons-token-0123")
		if code := s.exit(t); code == 0 {
			t.Fatalf("exit 0 with a wrong token\n%s", s.output())
		}
		if !lockFree(t, dataOf(s)) {
			t.Fatalf("the daemon outlived the failed script\n%s", s.output())
		}
		if !strings.Contains(s.output(), "stopping the daemon") || !strings.Contains(s.output(), "unauthenticated") {
			t.Fatalf("output:\n%s", s.output())
		}
	})
	t.Run("a daemon that cannot start ends the script", func(t *testing.T) {
		s := startRunScript(t, "AGENTCLOUD_LISTEN=localhost:http")
		if code := s.exit(t); code != 1 || !strings.Contains(s.output(), "exited during start-up") {
			t.Fatalf("exit %d\n%s", code, s.output())
		}
	})
	t.Run("a data dir in use is left alone", func(t *testing.T) {
		cfg := config.Default()
		cfg.Data, cfg.Listen, cfg.SandboxPoolProcess = t.TempDir(), "127.0.0.1:0", 0
		cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
		d, err := daemon.New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer d.Shutdown(context.Background())
		s := startRunScript(t, "AGENTCLOUD_DATA="+cfg.Data)
		if code := s.exit(t); code != 1 || !strings.Contains(s.output(), "already serves from") {
			t.Fatalf("exit %d\n%s", code, s.output())
		}
		if lockFree(t, cfg.Data) {
			t.Fatal("the other daemon lost its data dir")
		}
		if _, err := os.Stat(filepath.Join(cfg.Data, daemon.AddrFile)); err != nil {
			t.Fatalf("the other daemon's %s is gone: %v", daemon.AddrFile, err)
		}
	})
}
