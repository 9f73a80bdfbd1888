package sessionhttp_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agentcloud/agentcloud/internal/testdeps"
)

// startWorkerd serves dir's agent.js with the pinned workerd (npm package
// workerd in testdata/workerd, installed by scripts/deps.sh) on a loopback
// socket it inherits, and returns its base URL. It skips when workerd is not
// installed or cannot run here.
func startWorkerd(t *testing.T, dir string) string {
	t.Helper()
	bin, _ := filepath.Abs("testdata/workerd/node_modules/.bin/workerd")
	if _, err := os.Stat(bin); err != nil {
		testdeps.Missing(t, "workerd is not installed: run scripts/deps.sh (npm ci in internal/session/sessionhttp/testdata/workerd)")
	}
	if out, err := exec.Command(bin, "--version").CombinedOutput(); err != nil {
		testdeps.Missing(t, "workerd cannot run on this machine: %v: %s", err, out)
	}
	tmp := t.TempDir()
	src, err := os.ReadFile(filepath.Join(dir, "agent.js"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "agent.js"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	const config = `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = .app)],
  sockets = [(name = "http", service = "main", http = ())],
);
const app :Workerd.Worker = (
  modules = [(name = "agent.js", esModule = embed "agent.js")],
  compatibilityDate = "2025-01-01",
);
`
	if err := os.WriteFile(filepath.Join(tmp, "config.capnp"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cmd := exec.Command(bin, "serve", "config.capnp", "--socket-fd", "http=3")
	cmd.Dir = tmp
	cmd.ExtraFiles = []*os.File{f}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("workerd output:\n%s", logs.String())
		}
	})
	return "http://" + addr
}

// TestWorkersAppOnWorkerdAndAgentcloud runs testdata/workersapp (streams and
// server-sent events, transforms, gzip, a WebSocket, HMAC webhook
// verification, structuredClone) unchanged on agentcloud and on workerd and
// asserts the same outputs from both, and that they are the right ones.
func TestWorkersAppOnWorkerdAndAgentcloud(t *testing.T) {
	wd := startWorkerd(t, "testdata/workersapp")
	e := newEnv(t)
	src, err := os.ReadFile("testdata/workersapp/agent.js")
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := e.deploy(t, "", agentFiles("app", string(src))); resp.StatusCode != http.StatusCreated {
		t.Fatalf("deploy: %d %s", resp.StatusCode, body)
	}
	targets := map[string]string{"agentcloud": e.srv.URL + "/agents/app/sessions/s1", "workerd": wd}

	mac := hmac.New(sha256.New, []byte("webhook-secret"))
	mac.Write([]byte(`{"event":"push"}`))
	goodSig := hex.EncodeToString(mac.Sum(nil))
	sse := ""
	for i := 1; i <= 3; i++ {
		sse += fmt.Sprintf("id: %d\nevent: tick\ndata: {\"n\":%d}\n\n", i, i)
	}
	cases := []struct {
		name, method, path, body, sig, want string
		status                              int
		ctype                               string
	}{
		{"sse", "GET", "/sse", "", "", sse, 200, "text/event-stream"},
		{"transform request stream", "POST", "/upper", "hello streams, ünïcode", "", "HELLO STREAMS, ÜNÏCODE", 200, "text/plain"},
		{"gzip", "GET", "/gzip", "", "", `{"same":true,"smaller":true,"magic":[31,139]}`, 200, "application/json"},
		{"writable", "GET", "/writable", "", "", "a-b-c", 200, ""},
		{"webhook good", "POST", "/hook", `{"event":"push"}`, goodSig, "verified", 200, ""},
		{"webhook bad", "POST", "/hook", `{"event":"push"}`, strings.Repeat("0", 64), "bad signature", 401, ""},
		{"structuredClone", "GET", "/clone", "", "", `{"date":0,"set":["a","b"],"map":[1,2],"bytes":[7,8],"cycle":true,"distinct":true}`, 200, "application/json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := map[string]string{}
			for name, base := range targets {
				req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
				if c.sig != "" {
					req.Header.Set("X-Signature", c.sig)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("%s: read: %v", name, err)
				}
				if resp.StatusCode != c.status || (c.ctype != "" && !strings.HasPrefix(resp.Header.Get("Content-Type"), c.ctype)) {
					t.Errorf("%s: %d %q, want %d %q", name, resp.StatusCode, resp.Header.Get("Content-Type"), c.status, c.ctype)
				}
				got[name] = string(b)
			}
			if got["agentcloud"] != got["workerd"] {
				t.Errorf("outputs differ:\nagentcloud %q\nworkerd    %q", got["agentcloud"], got["workerd"])
			}
			if got["workerd"] != c.want {
				t.Errorf("workerd answered %q, want %q", got["workerd"], c.want)
			}
		})
	}
	t.Run("websocket", func(t *testing.T) {
		got := map[string]string{}
		for name, base := range targets {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
			if err != nil {
				cancel()
				t.Fatalf("%s: dial: %v", name, err)
			}
			var log []string
			for _, m := range []string{"hi", "there", "close"} {
				if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
					t.Fatalf("%s: write: %v", name, err)
				}
				_, b, err := c.Read(ctx)
				if err != nil {
					var ce websocket.CloseError
					if ok := asClose(err, &ce); ok {
						log = append(log, fmt.Sprintf("closed %d %s", ce.Code, ce.Reason))
						break
					}
					t.Fatalf("%s: read: %v", name, err)
				}
				log = append(log, string(b))
			}
			c.CloseNow()
			cancel()
			got[name] = strings.Join(log, "|")
		}
		if got["agentcloud"] != got["workerd"] || got["workerd"] != "echo 1: hi|echo 2: there|closed 1000 done" {
			t.Fatalf("agentcloud %q, workerd %q", got["agentcloud"], got["workerd"])
		}
	})
}

func asClose(err error, ce *websocket.CloseError) bool {
	c := websocket.CloseStatus(err)
	if c == -1 {
		return false
	}
	*ce = websocket.CloseError{Code: c}
	var x websocket.CloseError
	if ok := errorsAs(err, &x); ok {
		*ce = x
	}
	return true
}

func errorsAs(err error, target *websocket.CloseError) bool { return errors.As(err, target) }
