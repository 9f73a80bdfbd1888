package egress

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/gateway/webbotauth"
)

// TestOutboundWebBotAuthClass: with Config.Sign set to a Web Bot Auth
// signer, every request the proxy sends (several methods and paths, with
// and without a body, one carrying a signature the agent forged) reaches
// the upstream signed by the node alone, and our own verifier, fetching
// the node's key directory over loopback, verifies it as the node; without
// Sign nothing is signed; a failing Sign refuses the request.
func TestOutboundWebBotAuthClass(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := webbotauth.NewSigner(key, "https://node.agentcloud.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := httptest.NewTLSServer(signer)
	defer dir.Close()
	dirClient := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, dir.Listener.Addr().String())
		},
		TLSClientConfig: &tls.Config{RootCAs: dir.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, ServerName: "example.com"},
	}}
	v, err := webbotauth.New(webbotauth.Config{RequireNonce: true}, fetcherFunc(func(ctx context.Context, url string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		return dirClient.Do(req)
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The upstream answers with what the verifier made of the request.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := v.Verify(r.Context(), r)
		fmt.Fprintf(w, "%s %s %d", res.Outcome, res.Signer, len(r.Header.Values("Signature")))
	}))
	defer up.Close()
	port := ":" + strings.Split(up.Listener.Addr().String(), ":")[1]
	newProxy := func(sign func(context.Context, Caller, *http.Request) error) *Proxy {
		p, err := New(Config{Decider: allowAll(), DialTimeout: time.Second, Sign: sign,
			LoopbackHosts: map[string]netip.Addr{"site.test": netip.MustParseAddr("127.0.0.1")}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	do := func(p *Proxy, method, path, body string, forged bool) (string, error) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, "http://site.test"+port+path, rd)
		if err != nil {
			return "", err
		}
		if forged {
			req.Header.Set("Signature-Agent", `a="https://evil.test"`)
			req.Header.Set("Signature-Input", `a=("@authority" "signature-agent";key="a");created=1;expires=2;keyid="k";tag="web-bot-auth"`)
			req.Header.Set("Signature", `a=:AAAA:`)
		}
		resp, err := p.Do(context.Background(), Caller{ID: "spiffe://agentcloud.local/agent/a/session/s"}, req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}
	signed := newProxy(func(_ context.Context, _ Caller, out *http.Request) error { return signer.Sign(out) })
	want := "verified " + signer.DirectoryURL() + " 1"
	for _, tc := range []struct {
		method, path, body string
		forged             bool
	}{
		{"GET", "/a", "", false}, {"POST", "/b/c?x=1", `{"k":1}`, false}, {"DELETE", "/d", "", false}, {"GET", "/e", "", true},
	} {
		if got, err := do(signed, tc.method, tc.path, tc.body, tc.forged); err != nil || got != want {
			t.Errorf("%s %s (forged %v): %q %v, want %q", tc.method, tc.path, tc.forged, got, err, want)
		}
	}
	if got, err := do(newProxy(nil), "GET", "/a", "", false); err != nil || got != "none  0" {
		t.Errorf("without Sign: %q %v", got, err)
	}
	failing := newProxy(func(context.Context, Caller, *http.Request) error { return fmt.Errorf("no key") })
	if _, err := do(failing, "GET", "/a", "", false); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Errorf("a failing Sign: %v", err)
	}
}

type fetcherFunc func(ctx context.Context, url string) (*http.Response, error)

func (f fetcherFunc) Fetch(ctx context.Context, url string) (*http.Response, error) {
	return f(ctx, url)
}
