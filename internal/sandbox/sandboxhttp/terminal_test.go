package sandboxhttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
)

// syncBuffer is a bytes.Buffer safe for one writer and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitOutput(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	for range 1000 {
		if strings.Contains(out.String(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %q in the terminal output %q", want, out.String())
}

// TestTerminalRoundTrip: a shell over the WebSocket through the Go
// client: typed input runs, the window size is seen by stty and follows
// a resize, a signal reaches the foreground program, and the exit status
// comes back.
func TestTerminalRoundTrip(t *testing.T) {
	testTerminalRoundTrip(t, startServer(t), api.SandboxTierProcess)
}

// TestTerminalRoundTripGVisor: TestTerminalRoundTrip on the gVisor tier,
// whose terminals its exec agent makes.
func TestTerminalRoundTripGVisor(t *testing.T) {
	testTerminalRoundTrip(t, startGVisorServer(t), api.SandboxTierGVisor)
}

func testTerminalRoundTrip(t *testing.T, s *testServer, tier string) {
	ctx := context.Background()
	sb, err := s.client.CreateSandbox(ctx, api.CreateSandboxRequest{TimeoutS: 120, Tier: tier})
	if err != nil {
		t.Fatal(err)
	}
	term, err := s.client.OpenTerminal(ctx, sb.ID, client.TerminalOptions{Cmd: "sh", Rows: 30, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	var out syncBuffer
	done := make(chan struct{})
	var code int
	var copyErr error
	go func() { defer close(done); code, copyErr = term.Copy(&out) }()
	io.WriteString(term, "echo h''i\n")
	waitOutput(t, &out, "hi\r\n")
	io.WriteString(term, "stty size\n")
	waitOutput(t, &out, "30 100")
	if err := term.Resize(50, 132); err != nil {
		t.Fatal(err)
	}
	io.WriteString(term, "stty size\n")
	waitOutput(t, &out, "50 132")
	io.WriteString(term, "sleep 100\n")
	for sleeping := false; !sleeping; time.Sleep(20 * time.Millisecond) {
		ps, err := s.client.Processes(ctx, sb.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			sleeping = sleeping || len(p.Cmdline) > 0 && p.Cmdline[0] == "sleep"
		}
	}
	if err := term.Signal("INT"); err != nil {
		t.Fatal(err)
	}
	io.WriteString(term, "echo status-$?\n")
	waitOutput(t, &out, "status-130")
	io.WriteString(term, "exit 3\n")
	<-done
	if copyErr != nil || code != 3 {
		t.Fatalf("exit %d, %v; output %q", code, copyErr, out.String())
	}
}

// TestTerminalMalformedClass: bad terminal requests are 4xx problems before
// any upgrade; on an open terminal, an oversized message closes the socket
// with 1009 and every malformed control message with 1008 and a reason,
// and the daemon keeps serving.
func TestTerminalMalformedClass(t *testing.T) {
	testTerminalMalformed(t, startServer(t), api.SandboxTierProcess)
}

// TestTerminalMalformedGVisorClass: TestTerminalMalformedClass on the
// gVisor tier.
func TestTerminalMalformedGVisorClass(t *testing.T) {
	testTerminalMalformed(t, startGVisorServer(t), api.SandboxTierGVisor)
}

func testTerminalMalformed(t *testing.T, s *testServer, tier string) {
	ctx := context.Background()
	sb, err := s.client.CreateSandbox(ctx, api.CreateSandboxRequest{TimeoutS: 120, Tier: tier})
	if err != nil {
		t.Fatal(err)
	}
	base := s.URL + "/v1/sandboxes/" + sb.ID + "/terminal"
	wsHdr := http.Header{"Authorization": {"Bearer " + testToken}}
	for _, c := range []struct {
		name, query string
		noUpgrade   bool
		status      int
		kind        api.Kind
	}{
		{"rows zero", "?rows=0", false, 422, api.KindValidation},
		{"rows text", "?rows=abc", false, 400, api.KindInvalidQuery},
		{"cols huge", "?cols=100000", false, 422, api.KindValidation},
		{"args not JSON", "?args=-c", false, 422, api.KindValidation},
		{"args not strings", "?args=[1,2]", false, 422, api.KindValidation},
		{"term with space", "?term=a%20b", false, 422, api.KindValidation},
		{"cmd NUL", "?cmd=a%00b", false, 422, api.KindValidation},
		{"cwd relative", "?cwd=rel", false, 422, api.KindValidation},
		{"unknown parameter", "?shell=1", false, 400, api.KindInvalidQuery},
		{"twice", "?rows=1&rows=2", false, 400, api.KindInvalidQuery},
		{"missing program", "?cmd=no-such-program", false, 422, api.KindValidation},
		{"not a WebSocket", "", true, 400, api.KindBadRequest},
	} {
		req, _ := http.NewRequest("GET", base+c.query, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		if !c.noUpgrade {
			for k, v := range map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"} {
				req.Header.Set(k, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		p := api.Problem{}
		_ = decodeBody(resp, &p)
		if resp.StatusCode != c.status || p.Kind() != c.kind {
			t.Errorf("%s: %d %s (%s), want %d %s", c.name, resp.StatusCode, p.Kind(), p.Detail, c.status, c.kind)
		}
	}
	// Another sandbox's id that does not exist.
	if _, err := s.client.OpenTerminal(ctx, "sb-nonexistent", client.TerminalOptions{}); api.AsProblem(err).Status != 404 {
		t.Errorf("missing sandbox: %v", err)
	}

	dial := func(t *testing.T) *websocket.Conn {
		conn, _, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"?cmd=sh", &websocket.DialOptions{HTTPHeader: wsHdr})
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	closed := func(t *testing.T, conn *websocket.Conn, want websocket.StatusCode) {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		for {
			_, _, err := conn.Read(rctx)
			if err == nil {
				continue // terminal output (the prompt)
			}
			if got := websocket.CloseStatus(err); got != want {
				t.Fatalf("closed with %v (%v), want %v", got, err, want)
			}
			return
		}
	}
	t.Run("oversized", func(t *testing.T) {
		conn := dial(t)
		defer conn.CloseNow()
		_ = conn.Write(ctx, websocket.MessageBinary, make([]byte, api.TerminalMaxMessage+1))
		closed(t, conn, websocket.StatusMessageTooBig)
	})
	for _, msg := range []string{`not json`, `{"type":"nope"}`, `{"type":"resize","rows":0,"cols":80}`,
		`{"type":"resize","rows":5000,"cols":80}`, `{"type":"resize","rows":"24","cols":80}`, `{"type":"signal","signal":"BOGUS"}`,
		`{"type":"resize","rows":24,"cols":80,"extra":1}`, `{"type":"signal","signal":"INT"} {}`, `{"type":"exit","exit_code":0}`, ``} {
		t.Run("control "+msg, func(t *testing.T) {
			conn := dial(t)
			defer conn.CloseNow()
			if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			closed(t, conn, websocket.StatusPolicyViolation)
		})
	}
	// The terminals' processes are gone with their sockets, and the
	// sandbox still works.
	shells := func() int {
		ps, err := s.client.Processes(ctx, sb.ID)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range ps {
			if len(p.Cmdline) > 0 && p.Cmdline[0] == "sh" {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for shells() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := shells(); n > 0 {
		t.Errorf("%d shells left in the sandbox after their sockets closed", n)
	}
}

// TestCLIShell: agentcloud sandbox shell with standard input not a
// terminal sends it as typed input, then Ctrl-D, and exits with the
// program's status.
func TestCLIShell(t *testing.T) {
	testCLIShell(t, startServer(t), api.SandboxTierProcess)
}

// TestCLIShellGVisor: TestCLIShell on a gVisor sandbox.
func TestCLIShellGVisor(t *testing.T) {
	testCLIShell(t, startGVisorServer(t), api.SandboxTierGVisor)
}

func testCLIShell(t *testing.T, s *testServer, tier string) {
	code, out, errOut := s.agentcloud(t, "sandbox", "create", "--timeout", "5m", "--tier", tier)
	if code != 0 {
		t.Fatalf("create: %d %s", code, errOut)
	}
	id := strings.TrimSpace(out)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old; r.Close() }()
	go func() {
		io.WriteString(w, "echo from-$((6*7))\nexit 5\n")
		w.Close()
	}()
	code, out, errOut = s.agentcloud(t, "sandbox", "shell", id, "--", "sh")
	if code != 5 || !strings.Contains(out, "from-42") {
		t.Fatalf("shell: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// End of input is Ctrl-D: a shell that reads to the end exits 0.
	r2, w2, _ := os.Pipe()
	os.Stdin = r2
	defer r2.Close()
	go func() { io.WriteString(w2, "true\n"); w2.Close() }()
	if code, out, errOut = s.agentcloud(t, "sandbox", "shell", id, "--", "sh"); code != 0 {
		t.Fatalf("shell to end of input: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut = s.agentcloud(t, "sandbox", "shell", "sb-none"); code != 1 || !strings.Contains(errOut, "not-found") {
		t.Fatalf("shell of a missing sandbox: %d %s", code, errOut)
	}
}

func decodeBody(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
