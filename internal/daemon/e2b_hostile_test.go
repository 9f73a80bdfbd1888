package daemon_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

// e2bCall is one raw request to the E2B-compatible API.
type e2bCall struct {
	name, method, path string
	body               []byte
	ctype              string
	headers            map[string]string
}

type e2bAnswer struct {
	status int
	body   []byte
}

func doE2B(t *testing.T, base string, c e2bCall) e2bAnswer {
	t.Helper()
	req, err := http.NewRequest(c.method, base+c.path, bytes.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.ctype != "" {
		req.Header.Set("Content-Type", c.ctype)
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return e2bAnswer{resp.StatusCode, b}
}

// envelope frames msg as one Connect message.
func envelope(flags byte, msg string) []byte {
	b := make([]byte, 5+len(msg))
	b[0] = flags
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	copy(b[5:], msg)
	return b
}

// e2bSandbox creates a sandbox with key and returns its id and envd
// access token.
func e2bSandbox(t *testing.T, base, key string) (id, token string) {
	t.Helper()
	a := doE2B(t, base, e2bCall{name: "create", method: "POST", path: "/v2/sandboxes", ctype: "application/json",
		body: []byte(`{"templateID":"base","timeout":300}`), headers: map[string]string{"X-API-Key": key}})
	var out struct{ SandboxID, EnvdAccessToken string }
	if a.status != http.StatusCreated || json.Unmarshal(a.body, &out) != nil {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	return out.SandboxID, out.EnvdAccessToken
}

// TestE2BTenantIsolationClass: another tenant's key (or its own envd
// token, or a token of another sandbox) reaches nothing of a sandbox
// through any route of the E2B API: every call is refused with a 4xx that
// does not confirm the sandbox exists, never a 2xx or a 5xx, and the
// sandbox is untouched. Two tenants killing each other's sandboxes at once
// each only kill their own. A revoked key's envd tokens stop working.
func TestE2BTenantIsolationClass(t *testing.T) {
	if err := process.Available(); err != nil {
		t.Skipf("process sandbox tier unavailable: %v", err)
	}
	d, admin := startDaemon(t)
	base := "http://" + d.Addr() + "/e2b"
	alice, bob := e2bKey(t, d, admin, "user:alice"), e2bKey(t, d, admin, "user:bob")
	aID, aTok := e2bSandbox(t, base, alice)
	bID, bTok := e2bSandbox(t, base, bob)
	sb := "/sandboxes/" + aID
	start := envelope(0, `{"process":{"cmd":"/bin/sh","args":["-c","echo pwned > /workspace/pwned"]}}`)
	for _, cred := range []struct {
		name    string
		headers map[string]string
	}{
		{"bob's key", map[string]string{"X-API-Key": bob}},
		{"bob's envd token", map[string]string{"X-Access-Token": bTok}},
		{"alice's token of bob's sandbox id", map[string]string{"X-Access-Token": aTok, "E2b-Sandbox-Id": bID}},
	} {
		h := func(extra ...string) map[string]string {
			m := map[string]string{"E2b-Sandbox-Id": aID}
			for k, v := range cred.headers {
				m[k] = v
			}
			for i := 0; i+1 < len(extra); i += 2 {
				m[extra[i]] = extra[i+1]
			}
			return m
		}
		calls := []e2bCall{
			{name: "get", method: "GET", path: sb},
			{name: "kill", method: "DELETE", path: sb},
			{name: "timeout", method: "POST", path: sb + "/timeout", body: []byte(`{"timeout":1}`)},
			{name: "refresh", method: "POST", path: sb + "/refreshes", body: []byte(`{"duration":10}`)},
			{name: "pause", method: "POST", path: sb + "/pause", body: []byte(`{}`)},
			{name: "connect", method: "POST", path: "/v2" + sb + "/connect", body: []byte(`{"timeout":10}`)},
			{name: "resume", method: "POST", path: sb + "/resume", body: []byte(`{}`)},
			{name: "fork", method: "POST", path: sb + "/fork", body: []byte(`{"count":1}`)},
			{name: "start", method: "POST", path: "/process.Process/Start", ctype: "application/connect+json", body: start},
			{name: "list processes", method: "POST", path: "/process.Process/List", ctype: "application/json", body: []byte(`{}`)},
			{name: "signal", method: "POST", path: "/process.Process/SendSignal", ctype: "application/json", body: []byte(`{"process":{"pid":1},"signal":"SIGNAL_SIGKILL"}`)},
			{name: "resize", method: "POST", path: "/process.Process/Update", ctype: "application/json", body: []byte(`{"process":{"pid":1},"pty":{"size":{"cols":80,"rows":24}}}`)},
			{name: "stat", method: "POST", path: "/filesystem.Filesystem/Stat", ctype: "application/json", body: []byte(`{"path":"/workspace"}`)},
			{name: "listdir", method: "POST", path: "/filesystem.Filesystem/ListDir", ctype: "application/json", body: []byte(`{"path":"/workspace"}`)},
			{name: "mkdir", method: "POST", path: "/filesystem.Filesystem/MakeDir", ctype: "application/json", body: []byte(`{"path":"/workspace/x"}`)},
			{name: "remove", method: "POST", path: "/filesystem.Filesystem/Remove", ctype: "application/json", body: []byte(`{"path":"/workspace"}`)},
			{name: "download", method: "GET", path: "/files?path=/workspace/a"},
			{name: "upload", method: "POST", path: "/files?path=/workspace/pwned", ctype: "application/octet-stream", body: []byte("x")},
			{name: "health", method: "GET", path: "/health"},
		}
		for _, c := range calls {
			c.headers = h()
			c.name = cred.name + ": " + c.name
			a := doE2B(t, base, c)
			if a.status < 400 || a.status >= 500 && !(c.name == cred.name+": health" && a.status == http.StatusBadGateway) {
				t.Errorf("%s: %d %s", c.name, a.status, a.body)
			}
			if a.status == http.StatusForbidden || bytes.Contains(a.body, []byte("pwned")) {
				t.Errorf("%s: %d %s: tells the sandbox exists", c.name, a.status, a.body)
			}
		}
		// Bob's listing shows only his own.
		a := doE2B(t, base, e2bCall{name: "list", method: "GET", path: "/v2/sandboxes", headers: h()})
		if cred.headers["X-API-Key"] != "" && (a.status != 200 || bytes.Contains(a.body, []byte(aID)) || !bytes.Contains(a.body, []byte(bID))) {
			t.Errorf("%s: list %d %s", cred.name, a.status, a.body)
		}
	}
	// Alice's sandbox is untouched.
	a := doE2B(t, base, e2bCall{name: "alice stat", method: "POST", path: "/filesystem.Filesystem/Stat", ctype: "application/json",
		body: []byte(`{"path":"/workspace/pwned"}`), headers: map[string]string{"X-Access-Token": aTok, "E2b-Sandbox-Id": aID}})
	if a.status != http.StatusNotFound || !strings.Contains(string(a.body), `"not_found"`) {
		t.Fatalf("alice's sandbox after bob: %d %s", a.status, a.body)
	}
	// Each kills the other's and their own at once: only their own go.
	var wg sync.WaitGroup
	results := map[string]int{}
	var mu sync.Mutex
	for _, k := range []struct{ who, key, id string }{{"alice→bob", alice, bID}, {"bob→alice", bob, aID}, {"alice→alice", alice, aID}, {"bob→bob", bob, bID}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := doE2B(t, base, e2bCall{name: k.who, method: "DELETE", path: "/sandboxes/" + k.id, headers: map[string]string{"X-API-Key": k.key}})
			mu.Lock()
			results[k.who] = a.status
			mu.Unlock()
		}()
	}
	wg.Wait()
	if results["alice→alice"] != 204 || results["bob→bob"] != 204 || results["alice→bob"] != 404 || results["bob→alice"] != 404 {
		t.Errorf("concurrent kills: %v", results)
	}
	// A revoked key's envd tokens stop working.
	cID, cTok := e2bSandbox(t, base, alice)
	keys, err := userClient(t, d, admin, "user:alice").E2BKeys(context.Background())
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %+v %v", keys, err)
	}
	if err := userClient(t, d, admin, "user:bob").RevokeE2BKey(context.Background(), keys[0].ID); err == nil {
		t.Fatal("bob revoked alice's key")
	}
	if err := userClient(t, d, admin, "user:alice").RevokeE2BKey(context.Background(), keys[0].ID); err != nil {
		t.Fatal(err)
	}
	// A token that no longer authenticates is an anonymous request, and
	// the hostile calls above may have used up the anonymous rate for this
	// address (20 a second): a 429 is waited out, the answer after it must
	// be the 401.
	for range 3 {
		a = doE2B(t, base, e2bCall{name: "after revoke", method: "POST", path: "/filesystem.Filesystem/Stat", ctype: "application/json",
			body: []byte(`{"path":"/workspace"}`), headers: map[string]string{"X-Access-Token": cTok, "E2b-Sandbox-Id": cID}})
		if a.status != http.StatusTooManyRequests {
			break
		}
		time.Sleep(1100 * time.Millisecond)
	}
	if a.status != http.StatusUnauthorized || !strings.Contains(string(a.body), `"unauthenticated"`) {
		t.Errorf("envd token of a revoked key: %d %s", a.status, a.body)
	}
}

// TestE2BMalformedRequestClass: malformed bodies, Connect envelopes,
// headers, queries and keys on every kind of E2B route are 4xx in the
// route's error format (Connect {code: "...", message} on RPCs, {code:
// status, message} on REST routes), never 5xx or a crash.
func TestE2BMalformedRequestClass(t *testing.T) {
	if err := process.Available(); err != nil {
		t.Skipf("process sandbox tier unavailable: %v", err)
	}
	d, admin := startDaemon(t)
	base := "http://" + d.Addr() + "/e2b"
	key := e2bKey(t, d, admin, "user:alice")
	id, tok := e2bSandbox(t, base, key)
	k := map[string]string{"X-API-Key": key}
	env := map[string]string{"X-Access-Token": tok, "E2b-Sandbox-Id": id}
	rest := func(name, method, path, body string, h map[string]string) e2bCall {
		return e2bCall{name: name, method: method, path: path, body: []byte(body), ctype: "application/json", headers: h}
	}
	stream := func(name string, body []byte, ctype string) e2bCall {
		return e2bCall{name: name, method: "POST", path: "/process.Process/Start", body: body, ctype: ctype, headers: env}
	}
	unary := func(name, method, body string) e2bCall {
		return e2bCall{name: name, method: "POST", path: "/" + method, body: []byte(body), ctype: "application/json", headers: env}
	}
	huge := envelope(0, "{}")
	binary.BigEndian.PutUint32(huge[1:], 0xffffffff)
	restCalls := []e2bCall{
		rest("create: truncated JSON", "POST", "/v2/sandboxes", `{`, k),
		rest("create: array", "POST", "/v2/sandboxes", `[]`, k),
		rest("create: timeout string", "POST", "/v2/sandboxes", `{"timeout":"x"}`, k),
		rest("create: negative timeout", "POST", "/v2/sandboxes", `{"timeout":-1}`, k),
		rest("create: huge timeout", "POST", "/v2/sandboxes", `{"timeout":1e300}`, k),
		rest("create: unknown template", "POST", "/v2/sandboxes", `{"templateID":"nope"}`, k),
		rest("create: bad env name", "POST", "/v2/sandboxes", `{"envVars":{"A=B":"x"}}`, k),
		rest("create: reserved metadata", "POST", "/v2/sandboxes", `{"metadata":{"agentcloud/owner":"spiffe://x"}}`, k),
		rest("create: mcp", "POST", "/v2/sandboxes", `{"mcp":{"x":{}}}`, k),
		rest("create: volumes", "POST", "/v2/sandboxes", `{"volumeMounts":[{"name":"v","path":"/v"}]}`, k),
		rest("create: auto pause", "POST", "/v2/sandboxes", `{"autoPause":true}`, k),
		rest("timeout: missing", "POST", "/sandboxes/"+id+"/timeout", `{}`, k),
		rest("timeout: NaN-ish", "POST", "/sandboxes/"+id+"/timeout", `{"timeout":"NaN"}`, k),
		rest("refresh: over an hour", "POST", "/sandboxes/"+id+"/refreshes", `{"duration":3601}`, k),
		rest("connect: not JSON", "POST", "/sandboxes/"+id+"/connect", `timeout=5`, k),
		rest("list: limit 0", "GET", "/v2/sandboxes?limit=0", ``, k),
		rest("list: bad state", "GET", "/v2/sandboxes?state=dead", ``, k),
		rest("list: bad metadata", "GET", "/v2/sandboxes?metadata=a%3D%25zz", ``, k),
		rest("get: bad id", "GET", "/sandboxes/..%2f..", ``, k),
		rest("get: no key", "GET", "/sandboxes/"+id, ``, nil),
		rest("get: malformed key", "GET", "/sandboxes/"+id, ``, map[string]string{"X-API-Key": "e2b_XYZ"}),
		rest("get: unknown key", "GET", "/sandboxes/"+id, ``, map[string]string{"X-API-Key": "e2b_" + strings.Repeat("0", 40)}),
		rest("get: bearer instead of key", "GET", "/sandboxes/"+id, ``, map[string]string{"Authorization": "Bearer x"}),
		{name: "files: no path", method: "GET", path: "/files", headers: env},
		{name: "files: outside", method: "GET", path: "/files?path=/etc/passwd", headers: env},
		{name: "files: directory", method: "GET", path: "/files?path=/workspace", headers: env},
		{name: "files: NUL", method: "GET", path: "/files?path=/workspace/a%00b", headers: env},
		{name: "upload: no content type", method: "POST", path: "/files?path=/workspace/a", body: []byte("x"), headers: env},
		{name: "upload: multipart without boundary", method: "POST", path: "/files?path=/workspace/a", body: []byte("x"), ctype: "multipart/form-data", headers: env},
		{name: "upload: broken multipart", method: "POST", path: "/files?path=/workspace/a", body: []byte("--b\r\nnope"), ctype: "multipart/form-data; boundary=b", headers: env},
		{name: "upload: octet-stream without path", method: "POST", path: "/files", body: []byte("x"), ctype: "application/octet-stream", headers: env},
		{name: "upload: gzip", method: "POST", path: "/files?path=/workspace/a", body: []byte("x"), ctype: "application/octet-stream", headers: map[string]string{"X-Access-Token": tok, "E2b-Sandbox-Id": id, "Content-Encoding": "gzip"}},
	}
	for _, c := range restCalls {
		a := doE2B(t, base, c)
		var e struct {
			Code    int
			Message string
		}
		err := json.Unmarshal(a.body, &e)
		isRouterProblem := strings.Contains(c.name, "bad id") // the Router's identifier check answers problem+json
		if a.status < 400 || a.status >= 500 || !isRouterProblem && (err != nil || e.Code != a.status || e.Message == "") {
			t.Errorf("%s: %d %s", c.name, a.status, a.body)
		}
	}
	rpcCalls := []e2bCall{
		stream("start: unary content type", envelope(0, `{"process":{"cmd":"true"}}`), "application/json"),
		stream("start: proto content type", envelope(0, `{}`), "application/connect+proto"),
		stream("start: short header", []byte{0, 0, 0}, "application/connect+json"),
		stream("start: empty body", nil, "application/connect+json"),
		stream("start: compressed", envelope(1, `{}`), "application/connect+json"),
		stream("start: end-stream flag", envelope(2, `{}`), "application/connect+json"),
		stream("start: huge length", huge, "application/connect+json"),
		stream("start: short message", envelope(0, `{"process":{}}`)[:9], "application/connect+json"),
		stream("start: two messages", append(envelope(0, `{}`), envelope(0, `{}`)...), "application/connect+json"),
		stream("start: bad JSON", envelope(0, `{"process":`), "application/connect+json"),
		stream("start: wrong types", envelope(0, `{"process":{"cmd":7}}`), "application/connect+json"),
		stream("start: no cmd", envelope(0, `{"process":{"args":["x"]}}`), "application/connect+json"),
		stream("start: NUL in cmd", envelope(0, `{"process":{"cmd":"a\u0000b"}}`), "application/connect+json"),
		stream("start: relative cwd", envelope(0, `{"process":{"cmd":"true","cwd":"x"}}`), "application/connect+json"),
		stream("start: pty size 0", envelope(0, `{"process":{"cmd":"true"},"pty":{"size":{"cols":0,"rows":24}}}`), "application/connect+json"),
		stream("start: bad env", envelope(0, `{"process":{"cmd":"true","envs":{"":"x"}}}`), "application/connect+json"),
		{name: "start: no sandbox header", method: "POST", path: "/process.Process/Start", body: envelope(0, `{}`), ctype: "application/connect+json", headers: map[string]string{"X-API-Key": key}},
		{name: "start: bad sandbox header", method: "POST", path: "/process.Process/Start", body: envelope(0, `{}`), ctype: "application/connect+json", headers: map[string]string{"X-API-Key": key, "E2b-Sandbox-Id": "../../x"}},
		{name: "start: forged token", method: "POST", path: "/process.Process/Start", body: envelope(0, `{}`), ctype: "application/connect+json", headers: map[string]string{"X-Access-Token": tok + "00", "E2b-Sandbox-Id": id}},
		{name: "start: garbage token", method: "POST", path: "/process.Process/Start", body: envelope(0, `{}`), ctype: "application/connect+json", headers: map[string]string{"X-Access-Token": "e2bat_x_y", "E2b-Sandbox-Id": id}},
		unary("stat: stream content type", "filesystem.Filesystem/Stat", `{"path":"/workspace"}`),
		unary("stat: bad JSON", "filesystem.Filesystem/Stat", `{"path":`),
		unary("stat: no path", "filesystem.Filesystem/Stat", `{}`),
		unary("stat: outside", "filesystem.Filesystem/Stat", `{"path":"/etc"}`),
		unary("stat: missing", "filesystem.Filesystem/Stat", `{"path":"/workspace/none"}`),
		unary("listdir: deep", "filesystem.Filesystem/ListDir", `{"path":"/workspace","depth":99}`),
		unary("listdir: negative depth", "filesystem.Filesystem/ListDir", `{"path":"/workspace","depth":-1}`),
		unary("mkdir: exists", "filesystem.Filesystem/MakeDir", `{"path":"/workspace"}`),
		unary("move: outside", "filesystem.Filesystem/Move", `{"source":"/workspace","destination":"/etc/x"}`),
		unary("move: missing", "filesystem.Filesystem/Move", `{"source":"/workspace/none","destination":"/workspace/y"}`),
		unary("remove: missing", "filesystem.Filesystem/Remove", `{"path":"/tmp/none"}`),
		unary("signal: unknown pid", "process.Process/SendSignal", `{"process":{"pid":1},"signal":"SIGNAL_SIGKILL"}`),
		unary("signal: bad signal", "process.Process/SendSignal", `{"process":{"pid":1},"signal":"SIGNAL_SIGSTOP"}`),
		unary("signal: no selector", "process.Process/SendSignal", `{"signal":"SIGNAL_SIGKILL"}`),
		unary("input: unknown tag", "process.Process/SendInput", `{"process":{"tag":"x"},"input":{"stdin":"aGk="}}`),
		unary("input: bad base64", "process.Process/SendInput", `{"process":{"pid":1},"input":{"stdin":"!!"}}`),
		unary("connect: unary", "process.Process/Connect", `{"process":{"pid":1}}`),
		unary("update: unknown pid", "process.Process/Update", `{"process":{"pid":1},"pty":{"size":{"cols":80,"rows":24}}}`),
		unary("update: bad size", "process.Process/Update", `{"process":{"pid":1},"pty":{"size":{"cols":0,"rows":24}}}`),
		unary("update: no size", "process.Process/Update", `{"process":{"pid":1},"pty":{}}`),
		unary("update: bad JSON", "process.Process/Update", `{"pty":`),
		stream("start: pty without size", envelope(0, `{"process":{"cmd":"true"},"pty":{}}`), "application/connect+json"),
		stream("start: pty too large", envelope(0, `{"process":{"cmd":"true"},"pty":{"size":{"cols":80,"rows":5000}}}`), "application/connect+json"),
	}
	rpcCalls[20].ctype = "application/connect+json"
	for _, c := range rpcCalls {
		a := doE2B(t, base, c)
		var e struct{ Code, Message string }
		if a.status < 400 || a.status >= 500 || json.Unmarshal(a.body, &e) != nil || e.Code == "" || e.Message == "" {
			t.Errorf("%s: %d %s", c.name, a.status, a.body)
		}
	}
	// The sandbox still works after all that.
	a := doE2B(t, base, stream("start after", envelope(0, `{"process":{"cmd":"echo","args":["ok"]}}`), "application/connect+json"))
	if a.status != 200 || !bytes.Contains(a.body, []byte(fmt.Sprintf(`"stdout":%q`, "b2sK"))) {
		t.Errorf("start after the malformed calls: %d %q", a.status, a.body)
	}
}

// TestE2BUnsupportedRoutesClass: the E2B and envd routes this API does
// not serve answer 501 in the route's error format to a caller with a
// key or an envd token ({code: 501, message} on REST paths, Connect's
// {code: "unimplemented"} on Connect paths), 401 without credentials,
// and 404 for another tenant's sandbox on a sandbox's route, so an SDK
// never reads "not supported" as "sandbox not found".
func TestE2BUnsupportedRoutesClass(t *testing.T) {
	if err := process.Available(); err != nil {
		t.Skipf("process sandbox tier unavailable: %v", err)
	}
	d, admin := startDaemon(t)
	base := "http://" + d.Addr() + "/e2b"
	alice, bob := e2bKey(t, d, admin, "user:alice"), e2bKey(t, d, admin, "user:bob")
	id, tok := e2bSandbox(t, base, alice)
	key := map[string]string{"X-API-Key": alice}
	env := map[string]string{"X-Access-Token": tok, "E2b-Sandbox-Id": id}
	for _, c := range []e2bCall{
		{name: "list snapshots", method: "GET", path: "/snapshots?sandboxID=" + id, headers: key},
		{name: "snapshot", method: "POST", path: "/sandboxes/" + id + "/snapshots", body: []byte(`{}`), headers: key},
		{name: "metrics", method: "GET", path: "/sandboxes/" + id + "/metrics", headers: key},
		{name: "logs", method: "GET", path: "/v2/sandboxes/" + id + "/logs", headers: key},
		{name: "network", method: "PUT", path: "/sandboxes/" + id + "/network", body: []byte(`{}`), headers: key},
		{name: "list secrets", method: "GET", path: "/secrets", headers: key},
		{name: "create secret", method: "POST", path: "/secrets", body: []byte(`{"name":"x","value":"y"}`), headers: key},
		{name: "delete secret", method: "DELETE", path: "/secrets/s1", headers: key},
		{name: "list api keys", method: "GET", path: "/api-keys", headers: key},
		{name: "patch api key", method: "PATCH", path: "/api-keys/k1", body: []byte(`{}`), headers: key},
		{name: "teams", method: "GET", path: "/teams", headers: key},
		{name: "team metrics", method: "GET", path: "/teams/t1/metrics/max", headers: key},
		{name: "templates", method: "POST", path: "/v3/templates", body: []byte(`{}`), headers: key},
		{name: "volumes", method: "GET", path: "/volumes", headers: key},
		{name: "envd envs", method: "GET", path: "/envs", headers: env},
		{name: "envd compose", method: "POST", path: "/files/compose", body: []byte(`{}`), headers: env},
		{name: "envd metrics", method: "GET", path: "/metrics", headers: env},
		{name: "StreamInput", method: "POST", path: "/process.Process/StreamInput", ctype: "application/connect+json", body: envelope(0, `{}`), headers: env},
		{name: "WatchDir", method: "POST", path: "/filesystem.Filesystem/WatchDir", ctype: "application/connect+json", body: envelope(0, `{"path":"/workspace"}`), headers: env},
	} {
		if c.ctype == "" && c.body != nil {
			c.ctype = "application/json"
		}
		connect := strings.Contains(c.path, ".Process/") || strings.Contains(c.path, ".Filesystem/")
		a := doE2B(t, base, c)
		var rest struct {
			Code    int
			Message string
		}
		var rpc struct{ Code, Message string }
		ok := a.status == http.StatusNotImplemented
		if connect {
			ok = ok && json.Unmarshal(a.body, &rpc) == nil && rpc.Code == "unimplemented" && strings.Contains(rpc.Message, "not supported")
		} else {
			ok = ok && json.Unmarshal(a.body, &rest) == nil && rest.Code == 501 && strings.Contains(rest.Message, "not supported")
		}
		if !ok {
			t.Errorf("%s: %d %s", c.name, a.status, a.body)
		}
		c.headers = nil
		if a := doE2B(t, base, c); a.status != http.StatusUnauthorized {
			t.Errorf("%s without credentials: %d %s", c.name, a.status, a.body)
		}
		if strings.Contains(c.path, id) && !strings.Contains(c.path, "?") {
			c.headers = map[string]string{"X-API-Key": bob}
			if a := doE2B(t, base, c); a.status != http.StatusNotFound {
				t.Errorf("%s with another tenant's key: %d %s", c.name, a.status, a.body)
			}
		}
	}
	// The served routes are still served.
	a := doE2B(t, base, e2bCall{name: "get", method: "GET", path: "/sandboxes/" + id, headers: key})
	if a.status != http.StatusOK {
		t.Errorf("get after: %d %s", a.status, a.body)
	}
}
