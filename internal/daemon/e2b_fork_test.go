package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

// TestE2BForkClass: the E2B fork route refuses what the SDK never sends
// and what cannot be forked, each with a 4xx in E2B's {code, message}
// format before any copy is made: another tenant's or an unknown sandbox
// (404, as on the other routes), a count of 0, 101, a string or a
// fraction, a malformed or huge body, a bad timeout (under a second too), a
// paused sandbox (409), a killed one (404), and an owner already at the
// cap (429, before the parent is frozen). A fork beyond the owner's
// cap (sandbox_max_per_owner) answers 201 with one entry per copy: the
// copies that fit, and a 429 error entry for each that did not. Nothing
// is left behind: the listing afterwards is empty.
func TestE2BForkClass(t *testing.T) {
	if err := process.Available(); err != nil {
		t.Skipf("process sandbox tier unavailable: %v", err)
	}
	d, admin := startDaemonWith(t, capsConfig(3), nil)
	base := "http://" + d.Addr() + "/e2b"
	alice, bob := e2bKey(t, d, admin, "user:alice"), e2bKey(t, d, admin, "user:bob")
	ka, kb := map[string]string{"X-API-Key": alice}, map[string]string{"X-API-Key": bob}
	id, _ := e2bSandbox(t, base, alice)
	fork := func(name, sid, body string, h map[string]string) e2bAnswer {
		return doE2B(t, base, e2bCall{name: name, method: "POST", path: "/sandboxes/" + sid + "/fork",
			body: []byte(body), ctype: "application/json", headers: h})
	}
	// wantRefused checks a 4xx of status want (0: any 4xx) in E2B's format.
	wantRefused := func(name string, a e2bAnswer, want int) {
		t.Helper()
		var e struct {
			Code    int
			Message string
		}
		err := json.Unmarshal(a.body, &e)
		if a.status < 400 || a.status >= 500 || want != 0 && a.status != want || err != nil || e.Code != a.status || e.Message == "" {
			t.Errorf("%s: %d %s", name, a.status, a.body)
		}
	}
	huge := `{"count":1,"pad":"` + strings.Repeat("x", 16<<20) + `"}`
	for _, c := range []struct {
		name, sid, body string
		h               map[string]string
		want            int
	}{
		{"bob forks alice's", id, `{"count":1}`, kb, http.StatusNotFound},
		{"unknown sandbox", "sb-0000000000000000", `{"count":1}`, ka, http.StatusNotFound},
		{"no key", id, `{"count":1}`, nil, http.StatusUnauthorized},
		{"count 0", id, `{"count":0}`, ka, 0},
		{"count 101", id, `{"count":101}`, ka, 0},
		{"count -1", id, `{"count":-1}`, ka, 0},
		{"count string", id, `{"count":"2"}`, ka, http.StatusBadRequest},
		{"count fraction", id, `{"count":1.5}`, ka, http.StatusBadRequest},
		{"count huge", id, `{"count":1e300}`, ka, http.StatusBadRequest},
		{"count twice", id, `{"count":1,"count":100}`, ka, http.StatusBadRequest},
		{"timeout under a second", id, `{"timeout":1e-10}`, ka, 0},
		{"array", id, `[{"count":1}]`, ka, http.StatusBadRequest},
		{"null", id, `null`, ka, http.StatusBadRequest},
		{"truncated", id, `{"count":`, ka, http.StatusBadRequest},
		{"timeout 0", id, `{"timeout":0}`, ka, 0},
		{"timeout negative", id, `{"timeout":-5}`, ka, 0},
		{"timeout string", id, `{"timeout":"60"}`, ka, http.StatusBadRequest},
		{"timeout huge", id, `{"timeout":1e300}`, ka, 0},
	} {
		wantRefused(c.name, fork(c.name, c.sid, c.body, c.h), c.want)
	}
	// A body over the limit: the Router refuses one that says its length
	// (problem+json, as for a bad id); one sent without a length is cut at
	// the limit while the route reads it.
	if a := fork("huge body", id, huge, ka); a.status != http.StatusRequestEntityTooLarge {
		t.Errorf("huge body: %d %.300s", a.status, a.body)
	}
	req, err := http.NewRequest("POST", base+"/sandboxes/"+id+"/fork", io.MultiReader(strings.NewReader(huge)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", alice)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("huge chunked body: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantRefused("huge chunked body", e2bAnswer{resp.StatusCode, b}, http.StatusRequestEntityTooLarge)
	// Paused: refused until it runs again.
	if a := doE2B(t, base, e2bCall{name: "pause", method: "POST", path: "/sandboxes/" + id + "/pause", headers: ka}); a.status != http.StatusNoContent {
		t.Fatalf("pause: %d %s", a.status, a.body)
	}
	wantRefused("paused", fork("paused", id, `{}`, ka), http.StatusConflict)
	if a := doE2B(t, base, e2bCall{name: "connect", method: "POST", path: "/sandboxes/" + id + "/connect",
		body: []byte(`{"timeout":60}`), ctype: "application/json", headers: ka}); a.status != http.StatusCreated {
		t.Fatalf("connect: %d %s", a.status, a.body)
	}
	// The owner at the cap of 3: no copy fits, so the fork is refused as
	// a whole (429, no list) before the parent is frozen.
	var fill []string
	for range 2 {
		c := doE2B(t, base, e2bCall{name: "create to fill the cap", method: "POST", path: "/sandboxes",
			body: []byte(`{"templateID":"base","timeout":60}`), ctype: "application/json", headers: ka})
		var sb struct{ SandboxID string }
		if c.status != http.StatusCreated || json.Unmarshal(c.body, &sb) != nil || sb.SandboxID == "" {
			t.Fatalf("create: %d %s", c.status, c.body)
		}
		fill = append(fill, sb.SandboxID)
	}
	wantRefused("owner at the cap", fork("owner at the cap", id, `{"count":2,"timeout":60}`, ka), http.StatusTooManyRequests)
	for _, f := range fill {
		if k := doE2B(t, base, e2bCall{name: "kill", method: "DELETE", path: "/sandboxes/" + f, headers: ka}); k.status != http.StatusNoContent {
			t.Fatalf("kill %s: %d %s", f, k.status, k.body)
		}
	}
	// Over the cap of 3: the parent and two copies fit, two copies do not.
	a := fork("over the cap", id, `{"count":4,"timeout":60}`, ka)
	var out []struct {
		Sandbox *struct{ SandboxID, EnvdAccessToken string }
		Error   *struct {
			Code    int
			Message string
		}
	}
	if a.status != http.StatusCreated || json.Unmarshal(a.body, &out) != nil || len(out) != 4 {
		t.Fatalf("fork over the cap: %d %s", a.status, a.body)
	}
	made, refused := 0, 0
	for _, r := range out {
		switch {
		case r.Sandbox != nil && r.Error == nil && r.Sandbox.SandboxID != "" && r.Sandbox.EnvdAccessToken != "":
			made++
			if k := doE2B(t, base, e2bCall{name: "kill fork", method: "DELETE", path: "/sandboxes/" + r.Sandbox.SandboxID, headers: ka}); k.status != http.StatusNoContent {
				t.Errorf("kill fork %s: %d %s", r.Sandbox.SandboxID, k.status, k.body)
			}
		case r.Sandbox == nil && r.Error != nil && r.Error.Code == http.StatusTooManyRequests && r.Error.Message != "":
			refused++
		default:
			t.Errorf("fork entry: %s", a.body)
		}
	}
	if made != 2 || refused != 2 {
		t.Errorf("fork over the cap: %d made, %d refused: %s", made, refused, a.body)
	}
	// Killed: gone for the fork route too.
	if k := doE2B(t, base, e2bCall{name: "kill", method: "DELETE", path: "/sandboxes/" + id, headers: ka}); k.status != http.StatusNoContent {
		t.Fatalf("kill: %d %s", k.status, k.body)
	}
	wantRefused("killed", fork("killed", id, `{"count":1}`, ka), http.StatusNotFound)
	left, err := admin.Sandboxes(context.Background())
	if err != nil || len(left) != 0 {
		t.Errorf("sandboxes left after the hostile forks: %+v %v", left, err)
	}
}
