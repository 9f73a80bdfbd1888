package cli

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
)

// newDaemon prepares (does not start) a daemon on a fresh data dir and a
// free loopback port; the test shuts it down unless stopDaemon did.
func newDaemon(t *testing.T, mutate func(*config.Config)) *daemon.Daemon {
	t.Helper()
	cfg := config.Default()
	cfg.Data, cfg.Listen, cfg.SandboxPoolProcess = t.TempDir(), "127.0.0.1:0", 0
	if mutate != nil {
		mutate(&cfg)
	}
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	d, err := daemon.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopDaemon(d) })
	return d
}

var stopped sync.Map // *daemon.Daemon already shut down

// stopDaemon shuts d down once.
func stopDaemon(d *daemon.Daemon) error {
	if _, done := stopped.LoadOrStore(d, true); done {
		return nil
	}
	return d.Shutdown(context.Background())
}

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func clearClientEnv(t *testing.T) {
	for _, k := range []string{"AGENTCLOUD_SERVER", "AGENTCLOUD_TOKEN", "AGENTCLOUD_DATA", "AGENTCLOUD_CA_CERT", "AGENTCLOUD_CLIENT_CERT", "AGENTCLOUD_CLIENT_KEY"} {
		t.Setenv(k, "")
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
}

type cliResult struct {
	code     int
	out, err string
}

// startCLI runs the CLI in the background.
func startCLI(t *testing.T, args ...string) <-chan cliResult {
	done := make(chan cliResult, 1)
	go func() {
		var r cliResult
		r.code, r.out, r.err = runCLI(t, args...)
		done <- r
	}()
	return done
}

func result(t *testing.T, done <-chan cliResult) cliResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(2 * time.Minute): // a hang, not a speed check
		t.Fatal("the CLI did not return")
		return cliResult{}
	}
}

// TestStatusWaitClass: `status --wait` started before the daemon (as
// scripts/run.sh does) waits for the daemon's files, its readiness and a
// token that works, whatever the data dir held before; it fails at once on
// what waiting cannot fix and names what it waited for when time runs out.
func TestStatusWaitClass(t *testing.T) {
	clearClientEnv(t)
	cases := []struct {
		name   string
		mutate func(*config.Config)
		before func(t *testing.T, data string) // leftovers in the data dir
		args   func(data, listen string) []string
		scheme string
	}{
		{name: "fresh data dir", scheme: "http://"},
		{name: "leftover files of a killed daemon", scheme: "http://",
			before: func(t *testing.T, data string) {
				for name, content := range map[string]string{
					daemon.AddrFile: freePort(t) + "\n", // nothing listens there
					daemon.URLFile:  "https://" + freePort(t) + "\n",
				} {
					if err := os.WriteFile(filepath.Join(data, name), []byte(content), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}},
		{name: "tls", scheme: "https://", mutate: func(c *config.Config) { c.TLS, c.RequireClientCert = true, true }},
		{name: "--server given, token from the data dir", scheme: "http://",
			args: func(data, listen string) []string { return []string{"--server", "http://" + listen} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			listen := freePort(t)
			d := newDaemon(t, func(c *config.Config) {
				c.Listen = listen
				if tc.mutate != nil {
					tc.mutate(c)
				}
			})
			data := d.DataDir()
			if tc.before != nil {
				tc.before(t, data)
			}
			args := []string{"--data", data, "-o", "json", "status", "--wait", "90s"}
			if tc.args != nil {
				args = append(tc.args(data, listen), args...)
			}
			done := startCLI(t, args...)
			time.Sleep(200 * time.Millisecond) // let the CLI look first
			if err := d.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			r := result(t, done)
			if r.code != 0 || !strings.Contains(r.out, `"healthy": true`) {
				t.Fatalf("status --wait: exit %d\nstdout %s\nstderr %s", r.code, r.out, r.err)
			}
			// The text form names the server it found.
			code, out, errs := runCLI(t, append(args[:len(args)-5], "--data", data, "status")...)
			if code != 0 || !strings.Contains(out, tc.scheme+d.Addr()) {
				t.Fatalf("status: %d %s %s", code, out, errs)
			}
		})
	}

	t.Run("stale token and address of another live daemon", func(t *testing.T) {
		// The data dir still names a daemon that serves elsewhere, with a
		// token that is not its own (an older data dir): the CLI must not
		// give up on its 401, and must end up at the daemon started here.
		other := newDaemon(t, nil)
		if err := other.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		d := newDaemon(t, nil)
		data := d.DataDir()
		for name, content := range map[string]string{
			daemon.AddrFile: other.Addr() + "\n",
			auth.TokenFile:  "acb_a-token-of-an-older-data-dir-0123456789\n",
		} {
			if err := os.WriteFile(filepath.Join(data, name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		done := startCLI(t, "--data", data, "status", "--wait", "90s")
		time.Sleep(300 * time.Millisecond) // let the CLI meet the stale files
		// The data dir is recreated, then its daemon starts.
		for _, name := range []string{daemon.AddrFile, auth.TokenFile} {
			if err := os.Remove(filepath.Join(data, name)); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		r := result(t, done)
		if r.code != 0 || !strings.Contains(r.out, "http://"+d.Addr()) {
			t.Fatalf("exit %d, want the daemon at %s\nstdout %s\nstderr %s", r.code, d.Addr(), r.out, r.err)
		}
	})
	t.Run("address before token", func(t *testing.T) {
		// The data dir names a live daemon but holds no token yet (its
		// daemon writes it in a moment): a 401 without a token is waited
		// out, not the end.
		other := newDaemon(t, nil)
		if err := other.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		data := t.TempDir()
		if err := os.WriteFile(filepath.Join(data, daemon.AddrFile), []byte(other.Addr()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		done := startCLI(t, "--data", data, "status", "--wait", "90s")
		time.Sleep(300 * time.Millisecond) // let the CLI meet the missing token
		tok, err := os.ReadFile(filepath.Join(other.DataDir(), auth.TokenFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, auth.TokenFile), tok, 0o600); err != nil {
			t.Fatal(err)
		}
		r := result(t, done)
		if r.code != 0 || !strings.Contains(r.out, "http://"+other.Addr()) {
			t.Fatalf("exit %d, want the daemon at %s\nstdout %s\nstderr %s", r.code, other.Addr(), r.out, r.err)
		}
	})
	t.Run("no daemon", func(t *testing.T) {
		data := t.TempDir()
		r := result(t, startCLI(t, "--data", data, "status", "--wait", "300ms"))
		if r.code != 1 || !strings.Contains(r.err, "not ready after 300ms") || !strings.Contains(r.err, daemon.AddrFile) {
			t.Fatalf("exit %d, stderr %s", r.code, r.err)
		}
	})
	t.Run("a wrong --token ends the wait", func(t *testing.T) {
		d := newDaemon(t, nil)
		if err := d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		r := result(t, startCLI(t, "--data", d.DataDir(), "--token", "acb_wrong-token-0123456789", "status", "--wait", "1h"))
		if r.code != 1 || !strings.Contains(r.err, "unauthenticated") {
			t.Fatalf("exit %d, stderr %s", r.code, r.err)
		}
	})
	t.Run("negative --wait", func(t *testing.T) {
		if code, _, errs := runCLI(t, "status", "--wait", "-1s"); code != 1 || !strings.Contains(errs, "--wait") {
			t.Fatalf("%d %s", code, errs)
		}
	})
}

// TestClientFilesOrderClass: the moment <data>/api.addr exists, the daemon
// is ready, the admin token in the data dir is accepted and (with TLS)
// api.url names the https:// address; after shutdown neither file is left.
func TestClientFilesOrderClass(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		d := newDaemon(t, func(c *config.Config) { c.TLS = tlsOn })
		data := d.DataDir()
		addrPath := filepath.Join(data, daemon.AddrFile)
		started := make(chan error, 1)
		go func() { started <- d.Start(context.Background()) }()
		var addr string
		for {
			b, err := os.ReadFile(addrPath)
			if err == nil {
				addr = strings.TrimSpace(string(b))
				break
			}
			select {
			case err := <-started:
				if err != nil {
					t.Fatal(err)
				}
				started <- nil
			default:
			}
			time.Sleep(time.Millisecond)
		}
		if addr == "" {
			t.Fatalf("tls=%v: empty %s", tlsOn, daemon.AddrFile)
		}
		tok, err := os.ReadFile(filepath.Join(data, auth.TokenFile))
		if err != nil || len(strings.TrimSpace(string(tok))) < 16 {
			t.Fatalf("tls=%v: token %q %v when api.addr appeared", tlsOn, tok, err)
		}
		g := &globals{data: data, output: "text"}
		c, err := g.client()
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{false: "http://", true: "https://"}[tlsOn] + addr; c.Server() != want {
			t.Fatalf("tls=%v: client for %s, want %s", tlsOn, c.Server(), want)
		}
		if err := c.Ready(context.Background()); err != nil {
			t.Fatalf("tls=%v: not ready when api.addr appeared: %v", tlsOn, err)
		}
		if _, err := c.Status(context.Background()); err != nil {
			t.Fatalf("tls=%v: token refused when api.addr appeared: %v", tlsOn, err)
		}
		if err := <-started; err != nil {
			t.Fatal(err)
		}
		if err := stopDaemon(d); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{daemon.AddrFile, daemon.URLFile} {
			if _, err := os.Stat(filepath.Join(data, name)); !os.IsNotExist(err) {
				t.Fatalf("tls=%v: %s left after shutdown: %v", tlsOn, name, err)
			}
		}
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("tls=%v: still serving after shutdown", tlsOn)
		}
	}
}
