package daemon_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/gateway/webbotauth"
	"github.com/agentcloud/agentcloud/internal/security"
)

// signingAgent fetches ?url= and answers with the upstream's body; with
// ?forge=1 it sends a Signature, Signature-Input and Signature-Agent of
// its own first.
const signingAgent = `export default {
  async fetch(request, env) {
    const u = new URL(request.url);
    const headers = u.searchParams.get("forge") ? {"Signature-Agent": 'x="https://evil.test"',
      "Signature-Input": 'x=("@authority");created=1;keyid="k";tag="web-bot-auth"', "Signature": "x=:AAAA:"} : {};
    const r = await fetch(u.searchParams.get("url") + u.searchParams.get("path"), {method: u.searchParams.get("method") || "GET", headers});
    return new Response(await r.text(), {status: r.status});
  }
}`

// TestOutboundWebBotAuthEndToEndClass: with egress_signature_agent set,
// agents' fetches through the real egress proxy (several methods and
// paths, one carrying a signature the agent forged) reach a loopback site
// signed by the node, and the site's verifier (ours, the inbound one)
// verifies them by fetching the directory the daemon serves, unauthenticated,
// at /.well-known/http-message-signatures-directory. Each deploying
// tenant's derived key is listed in that directory. Without the setting
// nothing is signed and the directory is a 404 problem.
func TestOutboundWebBotAuthEndToEndClass(t *testing.T) {
	const origin = "https://node.agentcloud.test"
	var daemonAddr string
	// The site verifies with our verifier; its fetcher reaches the daemon
	// under the origin's name (the proofs cover that authority).
	v, err := webbotauth.New(webbotauth.Config{RequireNonce: true}, fetchFunc(func(ctx context.Context, u string) (*http.Response, error) {
		pu, err := url.Parse(u)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+daemonAddr+pu.Path, nil)
		if err != nil {
			return nil, err
		}
		req.Host = pu.Host
		return http.DefaultClient.Do(req)
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := v.Verify(r.Context(), r)
		fmt.Fprintf(w, "%s|%s|%s|%d|%v", res.Outcome, res.Signer, res.KeyID, len(r.Header.Values("Signature")), res.Err)
	}))
	t.Cleanup(site.Close)
	sitePort := site.Listener.Addr().String()[strings.LastIndex(site.Listener.Addr().String(), ":"):]
	start := func(signing bool) (string, func(c interface{}, q string) string) {
		cfg := config.Default()
		cfg.SandboxPoolProcess = 0
		cfg.Data = t.TempDir()
		cfg.EgressLoopbackHosts = []string{"site.test"}
		if signing {
			cfg.EgressSignatureAgent = origin
		}
		d, admin := startDaemonWith(t, cfg, nil)
		daemonAddr = d.Addr()
		alice := userClient(t, d, admin, "user:alice")
		man := `{"name":"%s","entry":"agent.js","egress":["site.test%s"],"limits":{"idle_seconds":3600}}`
		if err := deployJS(admin, fmt.Sprintf(man, "wba", sitePort), signingAgent); err != nil {
			t.Fatal(err)
		}
		if err := deployJS(alice, fmt.Sprintf(man, "wba-alice", sitePort), signingAgent); err != nil {
			t.Fatal(err)
		}
		return cfg.Data, func(_ interface{}, q string) string {
			agent := "wba"
			if strings.HasPrefix(q, "alice:") {
				agent, q = "wba-alice", strings.TrimPrefix(q, "alice:")
			}
			resp, err := admin.Call(context.Background(), agent, "s1", "GET", "/?url=http://site.test"+sitePort+"&"+q, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return string(b)
		}
	}
	data, call := start(true)
	key, err := webbotauth.LoadOrCreateKey(filepath.Join(data, security.BotKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	node, _ := webbotauth.NewNodeSigner(key, origin, nil)
	want := "verified|" + node.DirectoryURL() + "|" + node.NodeKeyID() + "|1|<nil>"
	for _, q := range []string{"path=/a", "path=/b/c%3Fx%3D1&method=POST", "path=/d&method=DELETE", "path=/e&forge=1", "alice:path=/f", "alice:path=/g&forge=1"} {
		if got := call(nil, q); got != want {
			t.Errorf("%s: %q, want %q", q, got, want)
		}
	}
	// The directory is public and lists the node key and one key per
	// tenant that signed (the admin and alice), each proven.
	resp, err := http.Get("http://" + daemonAddr + webbotauth.WellKnownPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != webbotauth.DirectoryMediaType || resp.Header.Get("Signature-Input") == "" {
		t.Fatalf("directory: %d %v", resp.StatusCode, resp.Header)
	}
	keys, err := webbotauth.ParseDirectory(body, 64)
	if err != nil || len(keys) != 3 || keys[0].Thumbprint != node.NodeKeyID() {
		t.Fatalf("directory keys: %+v %v", keys, err)
	}
	aliceKey, _ := node.TenantKey("spiffe://agentcloud.local/user/alice")
	if keys[2].Thumbprint != webbotauth.Thumbprint(aliceKey.Public().(ed25519.PublicKey)) && keys[1].Thumbprint != webbotauth.Thumbprint(aliceKey.Public().(ed25519.PublicKey)) {
		t.Errorf("alice's derived key is not listed: %+v", keys)
	}
	// Signing off: nothing signed, no directory.
	_, call = start(false)
	if got := call(nil, "path=/a"); !strings.HasPrefix(got, "none||") {
		t.Errorf("unsigned: %q", got)
	}
	resp, err = http.Get("http://" + daemonAddr + webbotauth.WellKnownPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(resp.Header.Get("Content-Type"), "problem+json") {
		t.Errorf("directory with signing off: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

type fetchFunc func(ctx context.Context, url string) (*http.Response, error)

func (f fetchFunc) Fetch(ctx context.Context, url string) (*http.Response, error) { return f(ctx, url) }
