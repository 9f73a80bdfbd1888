package sandboxnet

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TestSandboxProxyRoutingClass: a sandbox's proxy listener sends platform
// calls (any case, trailing dot, with a port) to the API as the sandbox,
// replacing the credentials the sandbox sent; refuses CONNECT to the
// platform; and hands every other host to the egress proxy with the
// sandbox's grants. The platform token is reused until a third of its
// life is left.
func TestSandboxProxyRoutingClass(t *testing.T) {
	id := spiffeid.RequireFromString("spiffe://td/sandbox/sb-1")
	now := time.Unix(1000, 0)
	issued := 0
	var gotOwner string
	var platformAuth, platformProxyAuth, platformURL string
	ns := New(Config{
		Egress: func(got spiffeid.ID, o sandbox.Ownership) http.Handler {
			if got != id {
				t.Errorf("egress as %s", got)
			}
			gotOwner = o.Owner
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
		},
		Platform: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			platformAuth, platformProxyAuth, platformURL = r.Header.Get("Authorization"), r.Header.Get("Proxy-Authorization"), r.URL.String()
		}),
		IssueToken: func(got spiffeid.ID, ttl time.Duration) (string, error) {
			issued++
			return "tok", nil
		},
		Now: func() time.Time { return now },
	})
	n := &sandboxNet{id: id, rec: sandbox.Ownership{ID: "sb-1", Owner: "spiffe://td/user/alice"}}
	h := ns.proxy(n)
	if gotOwner != "spiffe://td/user/alice" {
		t.Fatalf("egress grants: owner %q", gotOwner)
	}
	for _, target := range []string{"http://agentcloud.internal/v1/whoami?x=1", "http://AgentCloud.Internal./v1/whoami?x=1", "http://agentcloud.internal:80/v1/whoami?x=1"} {
		req := httptest.NewRequest("GET", target, nil)
		req.Header.Set("Authorization", "Bearer stolen")
		req.Header.Set("Proxy-Authorization", "Basic x")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK || platformAuth != "Bearer tok" || platformProxyAuth != "" || platformURL != "/v1/whoami?x=1" {
			t.Errorf("%s: %d auth=%q proxy-auth=%q url=%q", target, w.Code, platformAuth, platformProxyAuth, platformURL)
		}
	}
	if issued != 1 {
		t.Errorf("token issued %d times, want 1 (reused)", issued)
	}
	now = now.Add(TokenTTL * 3 / 4)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "http://agentcloud.internal/", nil))
	if issued != 2 {
		t.Errorf("token issued %d times, want a renewal past two thirds of its life", issued)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("CONNECT", "agentcloud.internal:443", nil))
	if w.Code != http.StatusBadRequest {
		t.Errorf("CONNECT to the platform: %d", w.Code)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "http://example.com/", nil))
	if w.Code != http.StatusTeapot {
		t.Errorf("other host: %d, want the egress proxy", w.Code)
	}
}
