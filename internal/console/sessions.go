package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// session is one signed-in browser.
type session struct {
	key       [32]byte // sha256 of the cookie value; the value itself is not kept
	csrf      string
	token     string // the bearer token it was opened with ("" for a certificate)
	certFP    string // sha256 of the client certificate it was opened with
	principal Principal
	created   time.Time
	lastUsed  time.Time
}

func (s *session) csrfOK(v string) bool { return v != "" && constantEqual(v, s.csrf) }

// sessions holds the console sessions in memory: a daemon restart signs
// everyone out (the token stays with the user).
type sessions struct {
	cfg Config
	mu  sync.Mutex // protects m
	m   map[[32]byte]*session
}

func newSessions(cfg Config) *sessions {
	return &sessions{cfg: cfg, m: map[[32]byte]*session{}}
}

func randomString() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// get returns the live session the cookie value names, marking it used.
func (st *sessions) get(value string) *session {
	if value == "" || len(value) > 64 {
		return nil
	}
	key := sha256.Sum256([]byte(value))
	now := st.cfg.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.m[key]
	if s == nil {
		return nil
	}
	if now.Sub(s.lastUsed) > st.cfg.IdleTTL || now.Sub(s.created) > st.cfg.MaxTTL {
		delete(st.m, key)
		return nil
	}
	s.lastUsed = now
	return s
}

// add stores a new session and returns its cookie value, evicting the
// least recently used one of the principal, or of all, over the caps.
func (st *sessions) add(s *session) string {
	value := randomString()
	s.key = sha256.Sum256([]byte(value))
	s.csrf = randomString()
	s.created = st.cfg.Now()
	s.lastUsed = s.created
	st.mu.Lock()
	defer st.mu.Unlock()
	st.evict(func(o *session) bool { return o.principal == s.principal }, st.cfg.PerPrincipal-1)
	st.evict(func(*session) bool { return true }, st.cfg.MaxSessions-1)
	st.m[s.key] = s
	return value
}

// evict removes the least recently used sessions matching keep until at
// most max match; call with st.mu held.
func (st *sessions) evict(match func(*session) bool, max int) {
	for {
		var oldest *session
		n := 0
		for _, o := range st.m {
			if !match(o) {
				continue
			}
			n++
			if oldest == nil || o.lastUsed.Before(oldest.lastUsed) {
				oldest = o
			}
		}
		if n <= max || oldest == nil {
			return
		}
		delete(st.m, oldest.key)
	}
}

func (st *sessions) remove(s *session) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.m, s.key)
}

// SignIn is the body of POST /ui/session: a token, or nothing to sign in
// with the client certificate the connection presented.
type SignIn struct {
	Token string `json:"token"`
}

// SessionInfo answers sign-in and GET /ui/session.
type SessionInfo struct {
	Principal string `json:"principal"`
	Kind      string `json:"kind"`
	Method    string `json:"method"` // token or certificate
	CSRFToken string `json:"csrf_token"`
	Expires   string `json:"expires"` // RFC 3339: the latest the session can last
}

func (c *Console) serveSession(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		c.signIn(w, r)
	case http.MethodGet:
		s := c.store.get(cookieValue(r))
		if s == nil {
			writeProblem(w, api.Errorf(api.KindUnauthenticated, "not signed in to the console: POST %s with a token or a client certificate", SessionPath))
			return
		}
		if p, err := c.reauthenticate(r, s); err != nil {
			c.store.remove(s)
			writeProblem(w, err)
			return
		} else {
			s.principal = p
		}
		c.writeInfo(w, s)
	case http.MethodDelete:
		s := c.store.get(cookieValue(r))
		if s != nil && !s.csrfOK(r.Header.Get(CSRFHeader)) {
			writeProblem(w, api.Errorf(api.KindCSRF, "missing or wrong %s header", CSRFHeader))
			return
		}
		if s != nil {
			c.store.remove(s)
			c.cfg.Log.Info("console sign-out", "principal", s.principal.ID)
		}
		http.SetCookie(w, &http.Cookie{Name: cookieNameFor(r), Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
			Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeProblem(w, api.Errorf(api.KindMethodNotAllowed, "%s takes GET, POST or DELETE", SessionPath))
	}
}

// parseSignIn reads and checks the sign-in body.
func parseSignIn(r *http.Request) (SignIn, error) {
	var in SignIn
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return in, api.Errorf(api.KindUnsupportedMedia, "sign in with Content-Type: application/json and a body {\"token\": \"...\"}")
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxSignInBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return in, api.Errorf(api.KindTooLarge, "the sign-in body is larger than %d bytes", maxSignInBody)
		}
		return in, api.FieldErrorf(api.KindInvalidJSON, "token", "the sign-in body must be {\"token\": \"...\"}: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return in, api.Errorf(api.KindInvalidJSON, "the sign-in body must hold one JSON object")
	}
	in.Token = strings.TrimSpace(in.Token)
	for _, ch := range in.Token {
		if ch <= ' ' || ch > '~' {
			return in, api.FieldErrorf(api.KindValidation, "token", "the token holds a character a token never has: paste it again")
		}
	}
	return in, nil
}

func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	if crossSite(r) {
		writeProblem(w, api.Errorf(api.KindCSRF, "sign in from the console's own page (%s)", Prefix))
		return
	}
	in, err := parseSignIn(r)
	if err != nil {
		writeProblem(w, err)
		return
	}
	s := &session{}
	switch {
	case in.Token != "":
		s.token = in.Token
	case hasCert(r):
		s.certFP = certFingerprint(r)
	default:
		writeProblem(w, api.FieldErrorf(api.KindValidation, "token", "paste a token (agentcloud token create; a local daemon's admin token is in <data>/admin.token) or connect with a client certificate"))
		return
	}
	p, err := c.reauthenticate(r, s)
	if err != nil {
		writeProblem(w, err)
		return
	}
	s.principal = p
	value := c.store.add(s)
	http.SetCookie(w, &http.Cookie{Name: cookieNameFor(r), Value: value, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: int(c.cfg.MaxTTL / time.Second)})
	c.cfg.Log.Info("console sign-in", "principal", p.ID, "method", s.method())
	c.writeInfo(w, s)
}

func (s *session) method() string {
	if s.certFP != "" {
		return "certificate"
	}
	return "token"
}

// reauthenticate verifies the session's credential again (a token may
// have expired or been revoked since sign-in).
func (c *Console) reauthenticate(r *http.Request, s *session) (Principal, error) {
	r2 := r.Clone(r.Context())
	r2.Body = http.NoBody
	r2.Header = http.Header{}
	if s.certFP != "" {
		if certFingerprint(r) != s.certFP {
			return Principal{}, api.Errorf(api.KindUnauthenticated, "the console session belongs to another client certificate: sign in again")
		}
	} else {
		r2.TLS = nil // the pasted token is what signs in
		r2.Header.Set("Authorization", "Bearer "+s.token)
	}
	p, err := c.cfg.Authenticate(r2)
	if err != nil {
		if api.AsProblem(err).Kind() == api.KindInternal {
			return Principal{}, api.Errorf(api.KindUnauthenticated, "the credential was not accepted")
		}
		return Principal{}, err
	}
	return p, nil
}

func (c *Console) writeInfo(w http.ResponseWriter, s *session) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(SessionInfo{
		Principal: s.principal.ID, Kind: s.principal.Kind, Method: s.method(), CSRFToken: s.csrf,
		Expires: s.created.Add(c.cfg.MaxTTL).UTC().Format(time.RFC3339),
	})
}
