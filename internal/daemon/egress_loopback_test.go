package daemon_test

import (
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/config"
)

// TestEgressLoopbackHostsSettingClass: egress_loopback_hosts lets a
// session's fetch() reach a stand-in upstream on loopback under a listed
// name, over http and, with egress_upstream_ca_file naming its CA, over
// https; an unlisted name and the daemon's own API port through a listed
// name stay refused; without the CA file the https upstream is not
// trusted. Benchmarks and the README test use these settings instead of
// test hooks.
func TestEgressLoopbackHostsSettingClass(t *testing.T) {
	plain := newRecorder(t, "plain-ok")
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "tls-ok") }))
	t.Cleanup(secure.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsPort := secure.Listener.Addr().String()[strings.LastIndex(secure.Listener.Addr().String(), ":")+1:]
	start := func(ca string) (string, func(target string) (int, string)) {
		cfg := config.Default()
		cfg.SandboxPoolProcess = 0
		cfg.EgressLoopbackHosts = []string{"a.test", "example.com=127.0.0.1"}
		cfg.EgressUpstreamCAFile = ca
		d, admin := startDaemonWith(t, cfg, nil)
		apiPort := d.Addr()[strings.LastIndex(d.Addr(), ":")+1:]
		egress := []string{plain.pattern("a.test"), plain.pattern("unlisted.test"), "a.test:" + apiPort, "example.com:" + tlsPort}
		man := `{"name":"loop","entry":"agent.js","egress":["` + strings.Join(egress, `","`) + `"],"limits":{"idle_seconds":3600}}`
		if err := deployJS(admin, man, echoAgent); err != nil {
			t.Fatal(err)
		}
		return apiPort, func(target string) (int, string) { return get(t, admin, "loop", "s1", target, "") }
	}
	apiPort, fetch := start(caFile)
	if code, body := fetch(plain.url("a.test")); code != 200 || body != "plain-ok" {
		t.Errorf("listed name over http: %d %s", code, body)
	}
	if code, body := fetch("https://example.com:" + tlsPort + "/"); code != 200 || body != "tls-ok" {
		t.Errorf("listed name over https with the upstream CA: %d %s", code, body)
	}
	if code, body := fetch(plain.url("unlisted.test")); code == 200 || body == "plain-ok" {
		t.Errorf("unlisted name reached loopback: %d %s", code, body)
	}
	if code, body := fetch("http://a.test:" + apiPort + "/healthz"); code != 599 || !strings.Contains(body, "own listener") {
		t.Errorf("the daemon's own port through a listed name: %d %s", code, body)
	}
	if n := len(plain.hits()); n != 1 {
		t.Errorf("stand-in reached %d times, want 1", n)
	}
	_, fetch = start("")
	if code, body := fetch("https://example.com:" + tlsPort + "/"); code != 599 || !strings.Contains(body, "certificate") {
		t.Errorf("https upstream without its CA: %d %s", code, body)
	}
}
