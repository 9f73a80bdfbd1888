// Package console is the web console: the static single-page app served at
// /ui/ (embedded in the binary, no framework, no CDN) and the browser
// sign-in that lets it call the API.
//
// A browser signs in by pasting a token (POST /ui/session with a JSON
// body, never a URL) or with the client certificate its TLS connection
// presents. The console then holds a server-side session: an HttpOnly,
// SameSite=Strict cookie (Secure, with the __Host- prefix, over TLS)
// names it, and a per-session CSRF token must come back in the
// X-CSRF-Token header of every mutating call. Wrap, in front of the
// daemon's whole handler chain, turns a cookie session into the bearer
// token it was opened with, so every console call goes through the same
// front door, routes, authentication and Cedar authorization as the CLI;
// the console adds no authority of its own.
//
// It owns the assets, the console sessions and the CSRF check. It does
// not own authentication (Config.Authenticate, security's) nor any API
// route.
package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

//go:embed assets
var assetsFS embed.FS

// Prefix is where the console is served.
const Prefix = "/ui/"

// SessionPath is the console's sign-in resource: POST signs in, GET says
// who is signed in (and repeats the CSRF token), DELETE signs out.
const SessionPath = "/ui/session"

// CSRFHeader carries the session's CSRF token on every mutating call.
const CSRFHeader = "X-CSRF-Token"

const (
	cookieName    = "agentcloud-console"
	cookieNameTLS = "__Host-agentcloud-console" // Secure, Path=/, no Domain: bound to this origin
	// maxSignInBody bounds the sign-in body ({"token": "..."}).
	maxSignInBody = 16 << 10
)

// CSP is the console's Content-Security-Policy: its own scripts and styles
// only (no inline code), calls to its own origin only, never framed.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Principal is who a credential names.
type Principal struct {
	ID   string
	Kind string
}

// Config configures a Console.
type Config struct {
	// Authenticate verifies the credentials of a request (a bearer token
	// or a client certificate), exactly as the API does.
	Authenticate func(r *http.Request) (Principal, error)
	// Log receives sign-in and sign-out events; nil discards them.
	Log *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// IdleTTL ends a session unused this long (default 8h); MaxTTL ends
	// any session this long after sign-in (default 24h).
	IdleTTL, MaxTTL time.Duration
	// MaxSessions bounds the sessions held (default 10000); PerPrincipal
	// bounds one principal's (default 16). The least recently used one
	// goes first.
	MaxSessions, PerPrincipal int
}

// Console serves the web console and its sign-in.
type Console struct {
	cfg    Config
	assets fs.FS
	store  *sessions
}

// New returns a Console.
func New(cfg Config) *Console {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.IdleTTL <= 0 {
		cfg.IdleTTL = 8 * time.Hour
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = 24 * time.Hour
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 10000
	}
	if cfg.PerPrincipal <= 0 {
		cfg.PerPrincipal = 16
	}
	sub, _ := fs.Sub(assetsFS, "assets")
	return &Console{cfg: cfg, assets: sub, store: newSessions(cfg)}
}

// mutating reports whether a method changes something (and so needs the
// CSRF token).
func mutating(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// Wrap goes in front of the daemon's whole chain (the front door
// included). A request with a console session cookie is checked for the
// CSRF token when it mutates and, for a token session, given the session's
// token as its Authorization header (unless it carries one); the API then
// authenticates and authorizes it as any other. A mutating browser
// request that a client certificate would authenticate without a console
// session is refused: the browser sends the certificate cross-site too.
// A WebSocket upgrade with a console session (the terminal) must carry
// this origin's Origin header: the browser cannot send a CSRF header on
// one, and opens one cross-site with the cookie.
func (c *Console) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == SessionPath { // sign-in and sign-out check for themselves (serveSession)
			next.ServeHTTP(w, r)
			return
		}
		s := c.store.get(cookieValue(r))
		if s == nil {
			if (mutating(r.Method) || upgrading(r)) && hasCert(r) && fromBrowser(r) {
				writeProblem(w, api.Errorf(api.KindCSRF, "a browser request authenticated by a client certificate must come from a console session "+
					"with its %s header (sign in at %s)", CSRFHeader, Prefix))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if upgrading(r) && !sameOrigin(r) { // a browser sends no CSRF header on a WebSocket: the Origin is the proof
			writeProblem(w, api.Errorf(api.KindCSRF, "a WebSocket opened with a console session must come from the console's own origin "+
				"(Origin %s, not %q)", selfOrigin(r), r.Header.Get("Origin")))
			return
		}
		if mutating(r.Method) && !s.csrfOK(r.Header.Get(CSRFHeader)) {
			writeProblem(w, api.Errorf(api.KindCSRF, "missing or wrong %s header: send the token that sign-in (or GET %s) returned", CSRFHeader, SessionPath))
			return
		}
		if s.certFP != "" {
			if certFingerprint(r) != s.certFP { // another certificate than the one the session was opened with
				writeProblem(w, api.Errorf(api.KindUnauthenticated, "the console session belongs to another client certificate: sign in again"))
				return
			}
		} else if r.Header.Get("Authorization") == "" {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+s.token)
		}
		next.ServeHTTP(w, r)
	})
}

// Mount serves the console (Prefix) and its sign-in (SessionPath); every
// other request goes to next. It goes behind the front door, so sign-in
// attempts and asset requests are classified and rate limited as any other.
func (c *Console) Mount(next http.Handler) http.Handler {
	files := http.FileServerFS(c.assets)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == SessionPath:
			securityHeaders(w.Header())
			c.serveSession(w, r)
		case r.URL.Path == "/ui":
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		case strings.HasPrefix(r.URL.Path, Prefix):
			securityHeaders(w.Header())
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				writeProblem(w, api.Errorf(api.KindMethodNotAllowed, "the console's files are read with GET"))
				return
			}
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/" + strings.TrimPrefix(r.URL.Path, Prefix)
			if r2.URL.Path != "/" {
				if _, err := fs.Stat(c.assets, strings.TrimPrefix(r2.URL.Path, "/")); err != nil {
					writeProblem(w, api.Errorf(api.KindNotFound, "no console file %s", r.URL.Path))
					return
				}
			}
			files.ServeHTTP(w, r2)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// securityHeaders are set on every console response.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// hasCert reports whether the request presented a client certificate.
func hasCert(r *http.Request) bool { return r.TLS != nil && len(r.TLS.PeerCertificates) > 0 }

// certFingerprint is the SHA-256 of the client certificate ("" without).
func certFingerprint(r *http.Request) string {
	if !hasCert(r) {
		return ""
	}
	sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
	return string(sum[:])
}

// fromBrowser reports whether a browser sent r (it adds Fetch Metadata or
// Origin; the CLI and the SDKs add neither).
func fromBrowser(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Site") != "" || r.Header.Get("Origin") != ""
}

// crossSite reports whether a browser says r comes from another origin.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return true
	}
	if o := r.Header.Get("Origin"); o != "" {
		return o != selfOrigin(r)
	}
	return false
}

// selfOrigin is the origin r was sent to (scheme://host).
func selfOrigin(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// upgrading reports whether r asks to switch protocols (a WebSocket). A
// browser opens a WebSocket to any site with that site's cookies and
// without Fetch Metadata's protection of fetch (cross-site WebSocket
// hijacking), and it cannot add a CSRF header to one.
func upgrading(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" || strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}

// sameOrigin reports whether r carries an Origin, and it is this one. A
// browser always sends Origin on a WebSocket; its absence means the
// request is not a browser's, and a cookie alone must not open one then.
func sameOrigin(r *http.Request) bool {
	return r.Header.Get("Origin") != "" && !crossSite(r)
}

func cookieNameFor(r *http.Request) string {
	if r.TLS != nil {
		return cookieNameTLS
	}
	return cookieName
}

func cookieValue(r *http.Request) string {
	ck, err := r.Cookie(cookieNameFor(r))
	if err != nil {
		return ""
	}
	return ck.Value
}

// writeProblem answers with problem+json.
func writeProblem(w http.ResponseWriter, err error) {
	p := api.AsProblem(err)
	if p == nil {
		p = api.Errorf(api.KindInternal, "internal error")
	}
	if p.Type == "" {
		p.Type = p.Kind().TypeURI()
	}
	if p.Status == 0 {
		p.Status = p.Kind().Status()
	}
	if p.Title == "" {
		p.Title = p.Kind().Title()
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// constantEqual compares secrets in constant time.
func constantEqual(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
