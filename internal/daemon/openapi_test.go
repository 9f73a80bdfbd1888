package daemon_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/agentcloud/agentcloud/internal/config"
)

// TestOpenAPIPublicConditionalClass: /openapi.json is served without
// credentials (and with any, even bad ones, it is the same document), with
// an ETag; a conditional GET naming the current tag (strong, weak or in a
// list) is 304 with no body, a stale or malformed one is a full 200.
func TestOpenAPIPublicConditionalClass(t *testing.T) {
	d, _ := startDaemonWith(t, config.Default(), nil)
	get := func(authz, inm string) (int, string, int) {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+d.Addr()+"/openapi.json", nil)
		if err != nil {
			t.Fatal(err)
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("ETag"), len(b)
	}
	code, tag, n := get("", "")
	if code != http.StatusOK || tag == "" || n < 1000 {
		t.Fatalf("anonymous /openapi.json: %d %q %d bytes", code, tag, n)
	}
	if code, tag2, _ := get("Bearer not-a-token", ""); code != http.StatusOK || tag2 != tag {
		t.Errorf("with a bad token: %d %q", code, tag2)
	}
	for _, inm := range []string{tag, "W/" + tag, `"other", ` + tag, "*"} {
		if code, t2, n := get("", inm); code != http.StatusNotModified || n != 0 || t2 != tag {
			t.Errorf("If-None-Match %s: %d, %d bytes, tag %q", inm, code, n, t2)
		}
	}
	for _, inm := range []string{`"stale"`, "garbage", `"` + tag, `W/`} {
		if code, _, n := get("", inm); code != http.StatusOK || n < 1000 {
			t.Errorf("If-None-Match %s: %d, %d bytes", inm, code, n)
		}
	}
}
