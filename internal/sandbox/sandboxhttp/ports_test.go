package sandboxhttp_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/cli"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxhttp"
)

var testPortKey = bytes.Repeat([]byte{42}, 32)

// portServer is a small HTTP and WebSocket echo server run in the sandbox
// on 127.0.0.1:8000: GET answers the path, query and whether an
// Authorization header arrived; GET /ws upgrades and echoes one frame.
const portServer = `
import base64, hashlib, http.server, json
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            key = self.headers["Sec-WebSocket-Key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", base64.b64encode(hashlib.sha1(key.encode()).digest()).decode())
            self.end_headers()
            self.wfile.flush()
            b = self.rfile.read(2)
            n = b[1] & 0x7f
            mask = self.rfile.read(4)
            data = bytes(c ^ mask[i % 4] for i, c in enumerate(self.rfile.read(n)))
            self.wfile.write(bytes([0x81, len(data)]) + data)
            self.wfile.flush()
            self.close_connection = True
            return
        body = json.dumps({"path": self.path, "auth": "Authorization" in self.headers}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", 8000), H).serve_forever()
`

// startPortServer creates a sandbox running portServer and waits until
// the platform reaches it.
func startPortServer(t *testing.T, s *testServer) string {
	t.Helper()
	return startPortServerOn(t, s, "")
}

// startPortServerOn is startPortServer on a sandbox of tier ("" for the
// default).
func startPortServerOn(t *testing.T, s *testServer, tier string) string {
	t.Helper()
	ctx := context.Background()
	sb, err := s.client.CreateSandbox(ctx, api.CreateSandboxRequest{TimeoutS: 120, Tier: tier})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.WriteFile(ctx, sb.ID, "/workspace/srv.py", strings.NewReader(portServer), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.StartProcess(ctx, sb.ID, api.ExecRequest{Cmd: "python3", Args: []string{"/workspace/srv.py"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second) // readiness, not a measurement
	for {
		resp, err := authGet(s.URL + "/v1/sandboxes/" + sb.ID + "/ports/8000/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return sb.ID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the port server never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func authGet(u string) (*http.Response, error) {
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	return http.DefaultClient.Do(req)
}

// TestPortForward: HTTP and WebSocket to a port in a process-tier
// sandbox go through /v1/sandboxes/{id}/ports/{port}/..., authenticated;
// the caller's Authorization never reaches the sandbox.
func TestPortForward(t *testing.T) {
	s := startServer(t)
	testPortForward(t, s, startPortServer(t, s))
}

func testPortForward(t *testing.T, s *testServer, id string) {
	// The path arrives as the client sent it: escapes stay escaped.
	for path, want := range map[string]string{"/a/b?x=1": "/a/b?x=1", "/a%2Fb%3Fc%23d/%25?x=1": "/a%2Fb%3Fc%23d/%25?x=1"} {
		resp, err := authGet(s.URL + "/v1/sandboxes/" + id + "/ports/8000" + path)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Path string
			Auth bool
		}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 || got.Path != want || got.Auth {
			t.Fatalf("GET %s through the port: %d %+v %v", path, resp.StatusCode, got, err)
		}
		resp.Body.Close()
	}
	// Without credentials, and on a port nothing listens on.
	if resp, err := http.Get(s.URL + "/v1/sandboxes/" + id + "/ports/8000/a"); err != nil || resp.StatusCode != 401 {
		t.Fatalf("without a token: %v %v", resp, err)
	}
	for _, p := range []string{"8001", "0", "65536", "x"} {
		resp, err := authGet(s.URL + "/v1/sandboxes/" + id + "/ports/" + p + "/")
		if err != nil || resp.StatusCode < 400 || (p != "8001" && resp.StatusCode >= 500) {
			t.Errorf("port %s: %v %v", p, resp, err)
		}
	}
	// WebSocket.
	echo, err := websocketEcho(s.URL, "/v1/sandboxes/"+id+"/ports/8000/ws", "ping through the platform")
	if err != nil || echo != "ping through the platform" {
		t.Fatalf("websocket echo %q: %v", echo, err)
	}
}

// websocketEcho opens a WebSocket at path (with the test token), sends
// msg in one masked text frame and returns the first frame answered.
func websocketEcho(base, path, msg string) (string, error) {
	u, _ := url.Parse(base)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, u.Host, testToken)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		return "", fmt.Errorf("handshake: %s %v", resp.Status, resp.Header)
	}
	mask := []byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | byte(len(msg))}
	frame = append(frame, mask...)
	for i := range len(msg) {
		frame = append(frame, msg[i]^mask[i%4])
	}
	if _, err := conn.Write(frame); err != nil {
		return "", err
	}
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return "", err
	}
	data := make([]byte, hdr[1]&0x7f)
	_, err = io.ReadFull(br, data)
	return string(data), err
}

// TestSignedPortURLClass: a signed port URL reaches the port without
// credentials within its prefix until it expires; any change to the
// sandbox, port, prefix, expiry or signature, a path outside the prefix,
// or an expired URL is refused (4xx), and a bad request for one is 422.
func TestSignedPortURLClass(t *testing.T) {
	s := startServer(t)
	id := startPortServer(t, s)
	var pu api.PortURL
	post := func(body string) (int, []byte) {
		req, _ := http.NewRequest("POST", s.URL+"/v1/sandboxes/"+id+"/port-urls", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, b := post(`{"port":8000,"path":"/app/","ttl_s":60}`)
	if code != 201 || json.Unmarshal(b, &pu) != nil || time.Until(pu.Expires) > 61*time.Second {
		t.Fatalf("port URL: %d %s", code, b)
	}
	get := func(u string) int {
		resp, err := http.Get(s.URL + u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(strings.Replace(pu.URL, "/app/?", "/app/page?", 1)); c != 200 {
		t.Fatalf("the signed URL: %d (%s)", c, pu.URL)
	}
	u, _ := url.Parse(pu.URL)
	q := u.Query()
	exp, _ := strconv.ParseInt(q.Get("expires"), 10, 64)
	with := func(path string, change func(url.Values)) string {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		change(v)
		return path + "?" + v.Encode()
	}
	base := sandboxhttp.PublicPortPrefix + "/" + id + "/8000"
	keep := func(url.Values) {}
	expired := exp - 3600
	for name, tampered := range map[string]string{
		"later expiry":    with(base+"/app/", func(v url.Values) { v.Set("expires", strconv.FormatInt(exp+1, 10)) }),
		"other signature": with(base+"/app/", func(v url.Values) { v.Set("signature", strings.Repeat("A", 43)) }),
		"no signature":    with(base+"/app/", func(v url.Values) { v.Del("signature") }),
		"wider prefix":    with(base+"/", func(v url.Values) { v.Set("prefix", "/") }),
		"outside prefix":  with(base+"/other", keep),
		"prefix sibling":  with(base+"/apple", keep),
		"traversal":       with(base+"/app/../other", keep),
		"traversal %2E":   with(base+"/app/%2E%2E/other", keep),
		"traversal %2F":   with(base+"/app/..%2Fother", keep),
		"other port":      with(sandboxhttp.PublicPortPrefix+"/"+id+"/8001/app/", keep),
		"other sandbox":   with(sandboxhttp.PublicPortPrefix+"/sb-0000000000000000/8000/app/", keep),
		"expired, re-signed": with(base+"/app/", func(v url.Values) {
			v.Set("expires", strconv.FormatInt(expired, 10))
			v.Set("signature", sandboxhttp.SignPort(testPortKey, id, 8000, "/app/", expired))
		}),
	} {
		if c := get(tampered); c < 400 || c >= 500 {
			t.Errorf("%s: %d (%s)", name, c, tampered)
		}
	}
	for _, body := range []string{`{"port":0}`, `{"port":8000,"ttl_s":-1}`, `{"port":8000,"ttl_s":1e9}`, `{"port":8000,"path":"app"}`,
		`{"port":8000,"path":"/a/../b"}`, `{"port":8000,"path":"/a?b"}`, `{"port":"x"}`, `{`} {
		if code, b := post(body); code < 400 || code >= 500 {
			t.Errorf("%s: %d %s", body, code, b)
		}
	}
}

// TestCLIPortForward: agentcloud sandbox port-forward serves a local
// address that reaches the sandbox's port (HTTP and WebSocket) until
// interrupted, and --url prints a public URL that works without a token.
func TestCLIPortForward(t *testing.T) {
	s := startServer(t)
	id := startPortServer(t, s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- cli.Main(ctx, []string{"--server", s.URL, "--token", testToken, "sandbox", "port-forward", id, "8000", "--local", addr},
			io.Discard, &errb)
	}()
	var got struct{ Path string }
	deadline := time.Now().Add(30 * time.Second) // readiness, not a measurement
	for {
		resp, err := http.Get("http://" + addr + "/via/cli?q=1")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if err == nil && resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("port-forward never answered: %v; stderr %s", err, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got.Path != "/via/cli?q=1" {
		t.Errorf("path through port-forward: %q", got.Path)
	}
	if echo, err := websocketEcho("http://"+addr, "/ws", "hello"); err != nil || echo != "hello" {
		t.Errorf("websocket through port-forward: %q %v", echo, err)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("port-forward exit %d: %s", code, errb.String())
	}
	code, out, errOut := s.agentcloud(t, "sandbox", "port-forward", id, "8000", "--url", "--ttl", "5m")
	if code != 0 {
		t.Fatalf("--url: %d %s", code, errOut)
	}
	resp, err := http.Get(strings.TrimSpace(out))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the printed URL %s: %v %v", out, resp, err)
	}
	resp.Body.Close()
}
