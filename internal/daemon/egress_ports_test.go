package daemon_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
)

// TestEgressPortPatternClass: an egress pattern with a port allows that
// port only; one without a port allows 80 and 443 only; the same matcher
// decides a session's fetch() and a sandbox's egress, and every list that
// takes patterns refuses what the matcher cannot match, naming the field.
func TestEgressPortPatternClass(t *testing.T) {
	_, admin := startDaemonWith(t, config.Default(), &daemon.EgressTestHooks{Resolver: loopResolver{}, AllowLoopback: true})
	ctx := context.Background()
	a, b := newRecorder(t, "a-ok"), newRecorder(t, "b-ok")
	bPort := strings.Split(b.srv.Listener.Addr().String(), ":")[1]
	egress := []string{a.pattern("a.test"), "b.test", "*.wild.test:" + bPort}
	man := `{"name":"ports","entry":"agent.js","egress":["` + strings.Join(egress, `","`) + `"],"limits":{"idle_seconds":3600}}`
	if err := deployJS(admin, man, echoAgent); err != nil {
		t.Fatal(err)
	}
	refused := func(body string) bool { return strings.Contains(body, "not in the egress list") }
	for _, tc := range []struct {
		target  string
		allowed bool
	}{
		{a.url("a.test"), true},         // the pattern's own port
		{b.url("a.test"), false},        // the same host on another port
		{b.url("b.test"), false},        // no port in the pattern: not b's port
		{"http://b.test/", true},        // no port: 80
		{"https://b.test/", true},       // no port: 443
		{"http://b.test:8080/", false},  // no port: not 8080
		{b.url("x.wild.test"), true},    // wildcard with a port
		{b.url("x.y.wild.test"), true},  // any depth below the domain
		{b.url("wild.test"), false},     // not the bare domain
		{a.url("x.wild.test"), false},   // wildcard on another port
		{"https://x.wild.test/", false}, // a port in the pattern excludes 443
		{b.url("a.test.evil.test"), false},
	} {
		code, body := get(t, admin, "ports", "s1", tc.target, "")
		switch {
		case tc.allowed && refused(body):
			t.Errorf("%s refused: %d %s", tc.target, code, body)
		case !tc.allowed && (code != 599 || !refused(body)):
			t.Errorf("%s not refused by the egress list: %d %s", tc.target, code, body)
		}
	}
	if h := a.hits(); len(h) != 1 {
		t.Errorf("a.test reached %d times, want 1", len(h))
	}
	if h := b.hits(); len(h) != 2 {
		t.Errorf("b's port reached %d times, want 2 (the wildcard)", len(h))
	}

	t.Run("validation", func(t *testing.T) {
		for _, bad := range []string{"a.test:0", "a.test:65536", "a.test:08", "A.test:80", "*.test", "0x7f000001", "[::1]:80", "a.test:80/x"} {
			// The server validates (the client-side check is skipped).
			_, err := admin.Deploy(ctx, rawTarGz(t, map[string]string{"agent.js": echoAgent,
				"agent.json": `{"name":"badports","entry":"agent.js","egress":["ok.test:8443",` + strconv.Quote(bad) + `]}`}))
			if f := problemField(err); !api.IsKind(err, api.KindValidation) || f != "egress[1]" {
				t.Errorf("manifest egress %q: field %q, %v", bad, f, err)
			}
			_, err = admin.CreateSandbox(ctx, api.CreateSandboxRequest{Egress: []string{bad}})
			if f := problemField(err); !api.IsKind(err, api.KindValidation) || f != "egress[0]" {
				t.Errorf("sandbox egress %q: field %q, %v", bad, f, err)
			}
		}
		// Host-only lists take no port: their patterns are judged per host.
		err := admin.SetTrustedHosts(ctx, []string{"api.test:443"})
		if f := problemField(err); !api.IsKind(err, api.KindValidation) || f != "hosts[0]" {
			t.Errorf("trusted host with a port: field %q, %v", f, err)
		}
		// A secret's allowed hosts take a port (the one port it may go to),
		// in the same syntax; a malformed one is refused naming the entry.
		if _, err = admin.SetSecret(ctx, "PORTED", api.SecretRequest{Value: "x", AllowHosts: []string{"api.test:8443"}}); err != nil {
			t.Errorf("secret allowed host with a port: %v", err)
		}
		for _, bad := range []string{"api.test:0", "api.test:65536", "api.test:", "https://api.test"} {
			_, err = admin.SetSecret(ctx, "PORTED", api.SecretRequest{Value: "x", AllowHosts: []string{bad}})
			if !api.IsKind(err, api.KindValidation) && !api.IsKind(err, api.KindBadRequest) {
				t.Errorf("secret allowed host %q: %v", bad, err)
			}
		}
	})

	t.Run("sandbox", func(t *testing.T) {
		needSandboxes(t)
		sb, err := admin.CreateSandbox(ctx, api.CreateSandboxRequest{Egress: egress})
		if err != nil {
			t.Fatal(err)
		}
		defer admin.DeleteSandbox(ctx, sb.ID)
		for target, want := range map[string]string{
			a.url("a.test"):      "a-ok",
			b.url("a.test"):      "403",
			b.url("b.test"):      "403",
			b.url("x.wild.test"): "b-ok",
			a.url("x.wild.test"): "403",
		} {
			code, out := run(t, admin, sb.ID, "curl -sS -o /tmp/out -w '%{http_code} ' "+target+"; cat /tmp/out")
			if code != 0 || !strings.HasPrefix(out, "200 ") && want != "403" || !strings.Contains(out, want) {
				t.Errorf("sandbox %s: %d %q, want %q", target, code, out, want)
			}
		}
	})
}

// rawTarGz packs files as a bundle without validating them, so tests can
// send the server what a careless client would.
func rawTarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// problemField is the field a problem names: its own, or its first error's.
func problemField(err error) string {
	p := api.AsProblem(err)
	if p.Field != "" {
		return p.Field
	}
	if len(p.Errors) > 0 {
		return p.Errors[0].Field
	}
	return ""
}
