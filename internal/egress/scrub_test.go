package egress

import (
	"compress/gzip"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/secrets"
)

const scrubValue = "sk-egress-7d6c5b4a3f2e1d0c"

// leakyUpstream echoes the Authorization header back in every way an
// upstream might: a header, the body (plain, base64 of the whole header,
// percent-encoded, hex), a trailer, and a gzip body when asked for one.
func leakyUpstream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		w.Header().Set("X-Echo", auth)
		w.Header().Set("Location", "/next?token="+url.QueryEscape(auth))
		w.Header().Set("Trailer", "X-Echo-Trailer")
		body := "plain " + auth + "\nb64 " + base64.StdEncoding.EncodeToString([]byte(auth)) +
			"\npct " + url.QueryEscape(auth) + "\nhex " + hex.EncodeToString([]byte(auth)) + "\n"
		switch r.URL.Path {
		case "/gzip":
			if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				break
			}
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			io.WriteString(zw, body)
			zw.Close()
			return
		case "/forced-encoding":
			w.Header().Set("Content-Encoding", "br")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
			return
		case "/stream":
			// The value split across writes, flushed in between.
			half := len(body) / 2
			io.WriteString(w, body[:half])
			w.(http.Flusher).Flush()
			io.WriteString(w, body[half:])
			w.Header().Set("X-Echo-Trailer", auth)
			return
		}
		io.WriteString(w, body)
		w.Header().Set("X-Echo-Trailer", auth)
	})
}

// scrubHook substitutes from a real secrets.Manager, as the daemon does;
// the secret may go to the given hosts, over http too.
func scrubHook(t *testing.T, allow ...string) SecretHook {
	t.Helper()
	key, err := secrets.LoadOrCreateKey(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := secrets.NewManager(key, secrets.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Set(context.Background(), secrets.Secret{Name: "K", AllowHosts: allow, AllowHTTP: true}, []byte(scrubValue)); err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context, _ Caller, r Request, h http.Header) (Substitution, error) {
		sub, err := m.Substitute(ctx, secrets.Destination{Scheme: r.Scheme, Host: r.Host, Port: r.Port}, h)
		if err != nil || sub.Empty() {
			return Substitution{}, err
		}
		return Substitution{Names: sub.Names, Scrubber: sub.Scrubber()}, nil
	}
}

// carries reports whether s holds the secret in any echoed form.
func carries(s string) bool {
	auth := "Bearer " + scrubValue
	for _, f := range []string{scrubValue, base64.StdEncoding.EncodeToString([]byte(auth)),
		url.QueryEscape(scrubValue), hex.EncodeToString([]byte(scrubValue))} {
		if strings.Contains(s, f) {
			return true
		}
	}
	return false
}

// TestResponseScrubClass: whatever way a request leaves the proxy (Do,
// forward HTTP, intercepted CONNECT), its response reaches the caller
// without the secret values substituted into it, in headers, body,
// trailers and encoded forms, streamed or gzip-compressed; a response
// the proxy cannot decode is refused rather than passed on.
func TestResponseScrubClass(t *testing.T) {
	up := httptest.NewUnstartedServer(leakyUpstream())
	up.EnableHTTP2 = false
	up.StartTLS()
	defer up.Close()
	plain := httptest.NewServer(leakyUpstream())
	defer plain.Close()
	upRoots := x509.NewCertPool()
	upRoots.AddCert(up.Certificate())
	caCert, caKey := newTestCA(t)
	p, err := New(Config{Decider: allowAll(), UnsafeAllowLoopback: true, UpstreamRoots: upRoots,
		InterceptCA: caCert, InterceptKey: caKey, Secrets: scrubHook(t, hostPort(up.URL), hostPort(plain.URL))})
	if err != nil {
		t.Fatal(err)
	}
	clientRoots := x509.NewCertPool()
	clientRoots.AddCert(caCert)
	pu := startProxy(t, p)
	viaProxy := proxyClient(pu, clientRoots)
	viaProxy.Transport.(*http.Transport).DisableCompression = true
	viaProxy.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	type result struct {
		status int
		header http.Header
		body   string
		err    error
	}
	send := func(way, target string, acceptGzip bool) result {
		req, _ := http.NewRequest("GET", target, nil)
		req.Header.Set("Authorization", "Bearer {{secret:K}}")
		if acceptGzip {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		var resp *http.Response
		var err error
		if way == "do" {
			resp, err = p.Do(context.Background(), Caller{ID: "c"}, req)
		} else {
			resp, err = viaProxy.Do(req)
		}
		if err != nil {
			return result{err: err}
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		h := resp.Header.Clone()
		for k, v := range resp.Trailer {
			h["Trailer-"+k] = v
		}
		return result{status: resp.StatusCode, header: h, body: string(b), err: err}
	}
	for _, tc := range []struct{ way, base string }{
		{"do", plain.URL}, {"do", up.URL}, {"forward", plain.URL}, {"connect", up.URL},
	} {
		for _, path := range []string{"/", "/stream", "/gzip"} {
			for _, gz := range []bool{false, true} {
				name := tc.way + " " + tc.base + path
				r := send(tc.way, tc.base+path, gz)
				if r.err != nil || r.status != 200 {
					t.Fatalf("%s: %d %v", name, r.status, r.err)
				}
				for k, vs := range r.header {
					if carries(k) || carries(strings.Join(vs, " ")) {
						t.Errorf("%s gzip=%v: header %s: %q", name, gz, k, vs)
					}
				}
				if r.header.Get("Content-Encoding") != "" {
					t.Errorf("%s gzip=%v: body still encoded (%s)", name, gz, r.header.Get("Content-Encoding"))
				}
				if carries(r.body) || !strings.Contains(r.body, "plain Bearer [secret K]") {
					t.Errorf("%s gzip=%v: body %q", name, gz, r.body)
				}
				if r.header.Get("X-Echo") != "Bearer [secret K]" {
					t.Errorf("%s gzip=%v: X-Echo %q", name, gz, r.header.Get("X-Echo"))
				}
			}
		}
		// An encoding the proxy did not ask for and cannot decode is
		// refused, not passed through.
		r := send(tc.way, tc.base+"/forced-encoding", false)
		if tc.way == "do" {
			if r.err == nil {
				t.Errorf("%s forced encoding: no error, body %q", tc.way, r.body)
			}
		} else if r.status != http.StatusBadGateway || carries(r.body) {
			t.Errorf("%s forced encoding: %d %q", tc.way, r.status, r.body)
		}
	}
	// A 204 stays a 204 without a body (scrubbing does not make it chunked),
	// also inside an intercepted tunnel, which keeps working after it.
	for _, tc := range []struct{ way, base string }{{"do", plain.URL}, {"forward", plain.URL}, {"connect", up.URL}} {
		for range 2 {
			r := send(tc.way, tc.base+"/empty", false)
			if r.err != nil || r.status != http.StatusNoContent || r.body != "" || carries(strings.Join(r.header.Values("X-Echo"), "")) {
				t.Errorf("%s 204: %d %q %v", tc.way, r.status, r.body, r.err)
			}
		}
	}
	// Without a secret nothing is scrubbed or refused.
	req, _ := http.NewRequest("GET", plain.URL+"/forced-encoding", nil)
	req.Header.Set("Authorization", "Bearer mine")
	resp, err := p.Do(context.Background(), Caller{ID: "c"}, req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Echo") != "Bearer mine" || resp.Header.Get("Content-Encoding") != "br" {
		t.Fatalf("unscrubbed response changed: %v", resp.Header)
	}
}

func hostPort(u string) string { return mustURL(u).Host }
