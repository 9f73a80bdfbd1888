package proctest_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/store"
)

// daemonProc is `agentcloud serve` running as a child process (this test
// binary re-executed as the CLI).
type daemonProc struct {
	cmd    *exec.Cmd
	out    *lockedWriter
	data   string
	client *client.Client
	exited chan struct{} // closed when the process has exited
	err    error         // its exit error, valid after exited
}

func spawnDaemon(t *testing.T, data string, extra ...string) *daemonProc {
	t.Helper()
	_ = os.Remove(filepath.Join(data, daemon.AddrFile))
	args := append([]string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--log-format", "json"}, extra...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "AGENTCLOUD_TEST_MAIN=1", "AGENTCLOUD_SANDBOX_POOL_GVISOR=0")
	out := &lockedWriter{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &daemonProc{cmd: cmd, out: out, data: data, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(data, daemon.AddrFile))
		if err == nil && len(b) > 0 {
			tok, _ := os.ReadFile(filepath.Join(data, auth.TokenFile))
			p.client, _ = client.New("http://"+strings.TrimSpace(string(b)), strings.TrimSpace(string(tok)))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := p.client.WaitReady(ctx); err != nil {
				t.Fatalf("daemon not ready: %v\n%s", err, out)
			}
			return p
		}
		select {
		case <-p.exited:
			t.Fatalf("daemon exited early: %v\n%s", p.err, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not start\n%s", out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lockedWriter collects a child's stdout and stderr safely.
type lockedWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestKill9KeepsAcknowledgedWrites writes to the daemon's store from several
// clients, SIGKILLs the daemon mid-load, restarts it and checks that every
// write the daemon acknowledged is there.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns daemon processes; skipped in -short")
	}
	data := t.TempDir()
	natsAddr := freePort(t)
	p := spawnDaemon(t, data, "--nats-listen", natsAddr)
	ctx := context.Background()
	seed := filepath.Join(data, daemon.NATSUserSeedFile)
	st, err := store.Open(ctx, store.Options{URL: "nats://" + natsAddr, NKeySeedFile: seed})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := st.KV(ctx, "crash", store.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		acked = map[string]string{}
		count atomic.Int64
		wg    sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				key, val := fmt.Sprintf("w%d.k%d", w, i), fmt.Sprintf("value-%d-%d", w, i)
				wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := kv.Put(wctx, key, []byte(val))
				cancel()
				if err != nil {
					return // the daemon is gone
				}
				mu.Lock()
				acked[key] = val
				mu.Unlock()
				count.Add(1)
			}
		})
	}
	for count.Load() < 300 {
		time.Sleep(time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	wg.Wait()
	_ = st.Close()
	t.Logf("acknowledged %d writes before SIGKILL", len(acked))

	spawnDaemon(t, data, "--nats-listen", natsAddr)
	st, err = store.Open(ctx, store.Options{URL: "nats://" + natsAddr, NKeySeedFile: seed})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kv, err = st.KV(ctx, "crash", store.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for k, v := range acked {
		e, err := kv.Get(ctx, k)
		if err != nil || string(e.Value) != v {
			lost++
			if lost < 5 {
				t.Errorf("acknowledged write %s lost: %v", k, err)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged writes lost", lost, len(acked))
	}
}

// TestSIGTERMGraceful checks that SIGTERM shuts the daemon down cleanly with
// exit status 0.
func TestSIGTERMGraceful(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns daemon processes; skipped in -short")
	}
	p := spawnDaemon(t, t.TempDir())
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", p.err, p.out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop after SIGTERM")
	}
	if !strings.Contains(p.out.String(), "agentcloud stopped") {
		t.Fatalf("no clean stop logged (exit %v):\n%s", p.err, p.out.String())
	}
}

// TestSecondSignalGracefulClass: a second signal during the shutdown (a
// terminal's Ctrl-C reaches the whole process group, and scripts/run.sh
// then sends SIGTERM too) is logged and the shutdown finishes: before, it
// killed the daemon halfway, and `make run` left its warm gVisor sandbox
// running after every Ctrl-C.
func TestSecondSignalGracefulClass(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns daemon processes; skipped in -short")
	}
	p := spawnDaemon(t, t.TempDir())
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(p.out.String(), "shutting down"); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no shutdown after SIGINT:\n%s", p.out.String())
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("daemon did not stop after SIGINT and SIGTERM")
	}
	if p.err != nil || !strings.Contains(p.out.String(), "agentcloud stopped") {
		t.Fatalf("a second signal ended the shutdown (exit %v):\n%s", p.err, p.out.String())
	}
}

// TestBadFlagsAndConfig checks that bad settings are refused at start with a
// message naming the field.
func TestBadFlagsAndConfig(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	_ = os.WriteFile(bad, []byte(`{"log_level":"loud"}`), 0o600)
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"serve", "--listen", "nowhere"}, "", "listen"},
		{[]string{"serve", "--bogus"}, "", "unknown flag: --bogus"},
		{[]string{"serve", "--config", bad}, "", "log_level"},
		{[]string{"serve"}, "AGENTCLOUD_SHUTDOWN_TIMEOUT=soon", "AGENTCLOUD_SHUTDOWN_TIMEOUT"},
		{[]string{"status", "-o", "yaml"}, "", "--output"},
	} {
		cmd := exec.Command(os.Args[0], append(tc.args, "--data", t.TempDir())...)
		cmd.Env = append(os.Environ(), "AGENTCLOUD_TEST_MAIN=1", tc.env)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: want failure naming %q, got %v: %s", tc.args, tc.want, err, out)
		}
	}
}
