package console

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// tokens the stub authenticator accepts. The console only forwards
// credentials; the daemon tests run it against security's real one.
var tokens = map[string]Principal{"alice-token": {ID: "user/alice", Kind: "user"}, "bob-token": {ID: "user/bob", Kind: "user"}}

func stubAuth(r *http.Request) (Principal, error) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return Principal{ID: "cert/" + r.TLS.PeerCertificates[0].Subject.CommonName, Kind: "user"}, nil
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if p, ok := tokens[tok]; ok {
		return p, nil
	}
	return Principal{}, api.Errorf(api.KindUnauthenticated, "bad token")
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// chain is the daemon's order: Wrap(front door(Mount(API))). The API here
// answers with the Authorization header it was given.
func chain(t *testing.T, cfg Config) (http.Handler, *clock) {
	t.Helper()
	ck := &clock{t: time.Unix(1_800_000_000, 0)}
	cfg.Authenticate, cfg.Now = stubAuth, ck.Now
	c := New(cfg)
	apiH := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Saw-Authorization", r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusOK)
	})
	return c.Wrap(c.Mount(apiH)), ck
}

type signedIn struct {
	cookie *http.Cookie
	info   SessionInfo
}

func signIn(t *testing.T, h http.Handler, token string, tlsState *tls.ConnectionState) signedIn {
	t.Helper()
	r := httptest.NewRequest("POST", SessionPath, strings.NewReader(`{"token":"`+token+`"}`))
	r.Header.Set("Content-Type", "application/json")
	r.TLS = tlsState
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("sign in with %q: %d %s", token, w.Code, w.Body)
	}
	var s signedIn
	if err := json.Unmarshal(w.Body.Bytes(), &s.info); err != nil {
		t.Fatal(err)
	}
	cks := w.Result().Cookies()
	if len(cks) != 1 {
		t.Fatalf("cookies: %v", cks)
	}
	s.cookie = cks[0]
	return s
}

func do(h http.Handler, method, path string, s *signedIn, csrf string, tlsState *tls.ConnectionState, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader("{}"))
	r.TLS = tlsState
	if s != nil {
		r.AddCookie(&http.Cookie{Name: s.cookie.Name, Value: s.cookie.Value})
	}
	if csrf != "" {
		r.Header.Set(CSRFHeader, csrf)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func problemType(w *httptest.ResponseRecorder) string {
	var p api.Problem
	_ = json.Unmarshal(w.Body.Bytes(), &p)
	return p.Type
}

// TestConsoleCSRFClass: every mutating method on every kind of route is
// refused without the session's own CSRF token (missing, wrong, another
// session's), and passes with it carrying the session's bearer token;
// reads need no CSRF token.
func TestConsoleCSRFClass(t *testing.T) {
	h, _ := chain(t, Config{})
	alice, bob := signIn(t, h, "alice-token", nil), signIn(t, h, "bob-token", nil)
	paths := []string{"/v1/sandboxes", "/v1/policies", "/v1/approvals/ap_1/approve", "/agents/a/sessions/s/x", "/v1/agents/a/sessions/s", "/mcp"}
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		for _, path := range paths {
			for name, csrf := range map[string]string{"missing": "", "wrong": "x" + alice.info.CSRFToken[1:], "bob's": bob.info.CSRFToken} {
				w := do(h, method, path, &alice, csrf, nil)
				if w.Code != 403 || problemType(w) != api.KindCSRF.TypeURI() || w.Header().Get("X-Saw-Authorization") != "" {
					t.Errorf("%s %s with %s CSRF token: %d %s", method, path, name, w.Code, w.Body)
				}
			}
			if w := do(h, method, path, &alice, alice.info.CSRFToken, nil); w.Code != 200 || w.Header().Get("X-Saw-Authorization") != "Bearer alice-token" {
				t.Errorf("%s %s with the CSRF token: %d %q", method, path, w.Code, w.Header().Get("X-Saw-Authorization"))
			}
		}
	}
	for _, method := range []string{"GET", "HEAD", "OPTIONS"} {
		if w := do(h, method, "/v1/agents", &bob, "", nil); w.Code != 200 || w.Header().Get("X-Saw-Authorization") != "Bearer bob-token" {
			t.Errorf("%s without CSRF token: %d", method, w.Code)
		}
	}
	// A request's own Authorization header wins over the cookie's token.
	if w := do(h, "GET", "/v1/agents", &alice, "", nil, "Authorization", "Bearer bob-token"); w.Header().Get("X-Saw-Authorization") != "Bearer bob-token" {
		t.Errorf("own Authorization: %q", w.Header().Get("X-Saw-Authorization"))
	}
	// Without a cookie nothing is added: the API refuses as usual.
	if w := do(h, "POST", "/v1/sandboxes", nil, "", nil); w.Code != 200 || w.Header().Get("X-Saw-Authorization") != "" {
		t.Errorf("no cookie: %d %q", w.Code, w.Header().Get("X-Saw-Authorization"))
	}
	// Sign-out needs the token too, and ends the session.
	if w := do(h, "DELETE", SessionPath, &alice, "", nil); w.Code != 403 {
		t.Errorf("sign-out without CSRF token: %d", w.Code)
	}
	if w := do(h, "DELETE", SessionPath, &alice, alice.info.CSRFToken, nil); w.Code != 204 {
		t.Errorf("sign-out: %d", w.Code)
	}
	if w := do(h, "GET", "/v1/agents", &alice, "", nil); w.Header().Get("X-Saw-Authorization") != "" {
		t.Errorf("after sign-out the cookie still authenticates")
	}
}

func certState(cn string) *tls.ConnectionState {
	return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Raw: []byte("cert-" + cn), Subject: pkixName(cn)}}}
}

// TestConsoleCertificateCSRFClass: a browser sends a client certificate
// cross-site too, so its mutating calls need a console session and its
// CSRF token; the session is bound to the certificate it was opened with;
// the CLI (no browser headers) is unaffected.
func TestConsoleCertificateCSRFClass(t *testing.T) {
	h, _ := chain(t, Config{})
	carol, dave := certState("carol"), certState("dave")
	for _, hdr := range [][]string{{"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Site", "same-origin"}, {"Origin", "https://evil.example"}} {
		if w := do(h, "POST", "/v1/sandboxes", nil, "", carol, hdr...); w.Code != 403 || problemType(w) != api.KindCSRF.TypeURI() {
			t.Errorf("browser POST with a certificate and %v, no session: %d", hdr, w.Code)
		}
	}
	if w := do(h, "POST", "/v1/sandboxes", nil, "", carol); w.Code != 200 {
		t.Errorf("CLI POST with a certificate: %d", w.Code)
	}
	s := signIn(t, h, "", carol)
	if s.info.Method != "certificate" || s.info.Principal != "cert/carol" || s.cookie.Name != cookieNameTLS || !s.cookie.Secure {
		t.Fatalf("certificate sign-in: %+v %+v", s.info, s.cookie)
	}
	if w := do(h, "POST", "/v1/sandboxes", &s, s.info.CSRFToken, carol, "Sec-Fetch-Site", "same-origin"); w.Code != 200 || w.Header().Get("X-Saw-Authorization") != "" {
		t.Errorf("certificate session POST: %d %q", w.Code, w.Header().Get("X-Saw-Authorization"))
	}
	if w := do(h, "POST", "/v1/sandboxes", &s, "", carol, "Sec-Fetch-Site", "same-origin"); w.Code != 403 {
		t.Errorf("certificate session POST without CSRF token: %d", w.Code)
	}
	if w := do(h, "GET", "/v1/agents", &s, "", dave); w.Code != 401 {
		t.Errorf("carol's session with dave's certificate: %d", w.Code)
	}
}

// TestConsoleSignInHostile: bad sign-in requests are clear 4xx problems.
func TestConsoleSignInHostile(t *testing.T) {
	h, _ := chain(t, Config{})
	cases := []struct {
		name, ctype, body string
		hdr               []string
		status            int
	}{
		{"wrong token", "application/json", `{"token":"nope"}`, nil, 401},
		{"no token, no certificate", "application/json", `{"token":""}`, nil, 422},
		{"control character", "application/json", `{"token":"alice-token\u0000"}`, nil, 422},
		{"form post", "application/x-www-form-urlencoded", `token=alice-token`, nil, 415},
		{"no content type", "", `{"token":"alice-token"}`, nil, 415},
		{"not JSON", "application/json", `token`, nil, 400},
		{"unknown field", "application/json", `{"token":"alice-token","admin":true}`, nil, 400},
		{"two objects", "application/json", `{"token":"alice-token"}{}`, nil, 400},
		{"oversized", "application/json", `{"token":"` + strings.Repeat("a", maxSignInBody) + `"}`, nil, 413},
		{"cross-site", "application/json", `{"token":"alice-token"}`, []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"other origin", "application/json", `{"token":"alice-token"}`, []string{"Origin", "http://evil.example"}, 403},
	}
	for _, c := range cases {
		r := httptest.NewRequest("POST", SessionPath, strings.NewReader(c.body))
		if c.ctype != "" {
			r.Header.Set("Content-Type", c.ctype)
		}
		for i := 0; i+1 < len(c.hdr); i += 2 {
			r.Header.Set(c.hdr[i], c.hdr[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.status || w.Header().Get("Content-Type") != "application/problem+json" || len(w.Result().Cookies()) != 0 {
			t.Errorf("%s: %d %s, want %d problem+json without a cookie", c.name, w.Code, w.Body, c.status)
		}
	}
	for _, m := range []string{"PUT", "PATCH"} {
		if w := do(h, m, SessionPath, nil, "", nil); w.Code != 405 {
			t.Errorf("%s %s: %d", m, SessionPath, w.Code)
		}
	}
	if w := do(h, "GET", SessionPath, nil, "", nil); w.Code != 401 {
		t.Errorf("GET %s signed out: %d", SessionPath, w.Code)
	}
}

// TestConsoleCookie: HttpOnly and SameSite=Strict always; Secure with the
// __Host- prefix over TLS; the cookie holds no token.
func TestConsoleCookie(t *testing.T) {
	h, _ := chain(t, Config{})
	plain := signIn(t, h, "alice-token", nil)
	if c := plain.cookie; !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Name != cookieName || c.Path != "/" || strings.Contains(c.Value, "alice") {
		t.Errorf("plain cookie: %+v", c)
	}
	tlsS := signIn(t, h, "alice-token", &tls.ConnectionState{})
	if c := tlsS.cookie; !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || !c.Secure || c.Name != cookieNameTLS || c.Domain != "" {
		t.Errorf("TLS cookie: %+v", c)
	}
	if plain.info.CSRFToken == tlsS.info.CSRFToken || len(plain.info.CSRFToken) < 40 {
		t.Errorf("CSRF tokens: %q %q", plain.info.CSRFToken, tlsS.info.CSRFToken)
	}
	// GET /ui/session repeats the CSRF token to the page after a reload.
	w := do(h, "GET", SessionPath, &plain, "", nil)
	var info SessionInfo
	_ = json.Unmarshal(w.Body.Bytes(), &info)
	if w.Code != 200 || info.CSRFToken != plain.info.CSRFToken || info.Principal != "user/alice" {
		t.Errorf("GET session: %d %+v", w.Code, info)
	}
}

// TestConsoleSessionLimits: sessions end after the idle and absolute
// TTLs; one principal holds at most PerPrincipal sessions and all at most
// MaxSessions, the least recently used going first.
func TestConsoleSessionLimits(t *testing.T) {
	h, ck := chain(t, Config{IdleTTL: time.Hour, MaxTTL: 3 * time.Hour, PerPrincipal: 3, MaxSessions: 5})
	s := signIn(t, h, "alice-token", nil)
	alive := func(s signedIn) bool {
		return do(h, "GET", "/v1/agents", &s, "", nil).Header().Get("X-Saw-Authorization") != ""
	}
	for range 3 {
		ck.Advance(50 * time.Minute)
		if !alive(s) {
			t.Fatal("a session in use ended before its absolute TTL")
		}
	}
	ck.Advance(31 * time.Minute) // 181 minutes after sign-in
	if alive(s) {
		t.Fatal("a session outlived its absolute TTL")
	}
	s = signIn(t, h, "alice-token", nil)
	ck.Advance(61 * time.Minute)
	if alive(s) {
		t.Fatal("a session outlived its idle TTL")
	}
	var alices []signedIn
	for range 4 {
		alices = append(alices, signIn(t, h, "alice-token", nil))
		ck.Advance(time.Second)
	}
	if alive(alices[0]) || !alive(alices[1]) || !alive(alices[3]) {
		t.Error("the per-principal cap did not evict alice's least recently used session")
	}
	var bobs []signedIn
	for range 3 {
		bobs = append(bobs, signIn(t, h, "bob-token", nil))
		ck.Advance(time.Second)
	}
	n := 0
	for _, s := range append(alices, bobs...) {
		if alive(s) {
			n++
		}
	}
	if n != 5 {
		t.Errorf("%d sessions alive, want the cap of 5", n)
	}
}

// TestConsoleAssets: the console's files carry the security headers (a
// strict CSP without inline code, no framing); unknown files are 404 and
// writes 405, as problem+json; the page loads no code from elsewhere.
func TestConsoleAssets(t *testing.T) {
	h, _ := chain(t, Config{})
	for _, p := range []string{"/ui/", "/ui/app.js", "/ui/views.js", "/ui/charts.js", "/ui/app.css"} {
		w := do(h, "GET", p, nil, "", nil)
		hd := w.Header()
		if w.Code != 200 || hd.Get("Content-Security-Policy") != CSP || hd.Get("X-Frame-Options") != "DENY" || hd.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %d %v", p, w.Code, hd)
		}
	}
	if !strings.Contains(CSP, "frame-ancestors 'none'") || strings.Contains(CSP, "unsafe") {
		t.Errorf("CSP: %s", CSP)
	}
	page := do(h, "GET", "/ui/", nil, "", nil).Body.String()
	if strings.Contains(page, "<script>") || strings.Contains(page, "style=") || strings.Contains(page, "http") {
		t.Errorf("index.html has inline code or outside references:\n%s", page)
	}
	for _, p := range []string{"/ui/nope.js", "/ui/../console.go", "/ui/assets/app.js"} {
		if w := do(h, "GET", p, nil, "", nil); w.Code != 404 && w.Code != 301 {
			t.Errorf("GET %s: %d", p, w.Code)
		}
	}
	if w := do(h, "POST", "/ui/app.js", nil, "", nil); w.Code != 405 {
		t.Errorf("POST /ui/app.js: %d", w.Code)
	}
	if w := do(h, "GET", "/ui", nil, "", nil); w.Code != 301 || w.Header().Get("Location") != Prefix {
		t.Errorf("GET /ui: %d %q", w.Code, w.Header().Get("Location"))
	}
}

// FuzzSignIn: no sign-in body crashes the parser or signs in without a
// valid token.
func FuzzSignIn(f *testing.F) {
	for _, s := range []string{`{"token":"alice-token"}`, `{"token":""}`, `{}`, `[]`, `{"token":1}`, `{"token":"a"}{}`, "\x00", `{"token":"\u0000"}`} {
		f.Add(s)
	}
	h, _ := chain(&testing.T{}, Config{})
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", SessionPath, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%q: %d", body, w.Code)
		}
		if w.Code == 200 && !strings.Contains(body, "-token") {
			t.Fatalf("%q signed in", body)
		}
	})
}

func pkixName(cn string) pkix.Name { return pkix.Name{CommonName: cn} }

// TestConsoleWebSocketOriginClass: cross-site WebSocket hijacking. A
// protocol upgrade carried by a console cookie (token or certificate
// session) reaches the API, with the session's bearer token, only when
// its Origin is the console's own; a foreign, sibling, null or missing
// Origin, or a browser saying cross-site, is refused before the API; the
// CLI (a bearer token, no cookie) is unaffected.
func TestConsoleWebSocketOriginClass(t *testing.T) {
	h, _ := chain(t, Config{})
	alice := signIn(t, h, "alice-token", nil)
	carol := certState("carol")
	carolS := signIn(t, h, "", carol)
	upgrade := func(origin string, extra ...string) []string {
		hdr := []string{"Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}
		if origin != "" {
			hdr = append(hdr, "Origin", origin)
		}
		return append(hdr, extra...)
	}
	paths := []string{"/v1/sandboxes/sb-1/terminal", "/agents/a/sessions/s/ws", "/v1/agents/a/logs"}
	bad := [][]string{
		upgrade("http://evil.example"), upgrade("http://example.com.evil.example"), upgrade("http://sub.example.com"),
		upgrade("https://example.com"), upgrade("null"), upgrade(""),
		upgrade("http://example.com", "Sec-Fetch-Site", "cross-site"), upgrade("http://example.com", "Sec-Fetch-Site", "same-site"),
		{"Connection", "keep-alive, Upgrade", "Origin", "http://evil.example"},
	}
	for _, path := range paths {
		for _, hdr := range bad {
			if w := do(h, "GET", path, &alice, "", nil, hdr...); w.Code != 403 || problemType(w) != api.KindCSRF.TypeURI() || w.Header().Get("X-Saw-Authorization") != "" {
				t.Errorf("token session upgrade %s %v: %d %q", path, hdr, w.Code, w.Header().Get("X-Saw-Authorization"))
			}
			// Over TLS the console's own origin is https://example.com.
			tlsHdr := append([]string{}, hdr...)
			for i := 0; i+1 < len(tlsHdr); i += 2 {
				if tlsHdr[i] == "Origin" && tlsHdr[i+1] == "https://example.com" {
					tlsHdr[i+1] = "http://example.com"
				}
			}
			if w := do(h, "GET", path, &carolS, "", carol, tlsHdr...); w.Code != 403 || problemType(w) != api.KindCSRF.TypeURI() {
				t.Errorf("certificate session upgrade %s %v: %d", path, tlsHdr, w.Code)
			}
			// A browser with a certificate and no console session neither
			// (without an Origin it is the CLI's certificate: allowed).
			if !hasOrigin(hdr) {
				continue
			}
			if w := do(h, "GET", path, nil, "", carol, tlsHdr...); w.Code != 403 || problemType(w) != api.KindCSRF.TypeURI() {
				t.Errorf("certificate upgrade without session %s %v: %d", path, tlsHdr, w.Code)
			}
		}
		if w := do(h, "GET", path, &alice, "", nil, upgrade("http://example.com")...); w.Code != 200 || w.Header().Get("X-Saw-Authorization") != "Bearer alice-token" {
			t.Errorf("same-origin upgrade %s: %d %q", path, w.Code, w.Header().Get("X-Saw-Authorization"))
		}
		if w := do(h, "GET", path, &alice, "", nil, upgrade("http://example.com", "Sec-Fetch-Site", "same-origin")...); w.Code != 200 {
			t.Errorf("same-origin upgrade with fetch metadata %s: %d", path, w.Code)
		}
		if w := do(h, "GET", path, &carolS, "", carol, upgrade("https://example.com")...); w.Code != 200 {
			t.Errorf("same-origin certificate upgrade %s: %d", path, w.Code)
		}
		// The CLI: its own bearer token, no cookie, no Origin.
		if w := do(h, "GET", path, nil, "", nil, upgrade("", "Authorization", "Bearer bob-token")...); w.Code != 200 || w.Header().Get("X-Saw-Authorization") != "Bearer bob-token" {
			t.Errorf("CLI upgrade %s: %d", path, w.Code)
		}
	}
	// A plain read with a foreign Origin is not an upgrade: CORS keeps its answer from the page.
	if w := do(h, "GET", "/v1/agents", &alice, "", nil, "Origin", "http://evil.example"); w.Code != 200 {
		t.Errorf("plain GET: %d", w.Code)
	}
}

func hasOrigin(hdr []string) bool {
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Origin" || hdr[i] == "Sec-Fetch-Site" {
			return true
		}
	}
	return false
}
