package sandboxhttp

// Ports (ports.go): a process listening on 127.0.0.1:PORT (or any
// address) in a sandbox is reachable through /v1/sandboxes/{id}/ports/
// {port}/..., HTTP and WebSocket, authorized as sandbox.exec; or, without
// credentials, through a signed URL whose HMAC (under the node key) binds
// the sandbox, the port, a path prefix and the expiry. The platform's
// credentials are never passed into the sandbox. Only the dial differs
// between tiers (sandbox.DialPort): the process tier connects inside the
// sandbox's network namespace; the gVisor tier, which has no host network
// namespace (runsc --network=none), relays through its exec agent.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// PublicPortPrefix is where signed port URLs are served.
const PublicPortPrefix = "/v1/public/sandbox-ports"

// Query parameters of a signed port URL.
const (
	qExpires   = "expires"
	qPrefix    = "prefix"
	qSignature = "signature"
)

const maxPortURLTTL = 24 * time.Hour

func (h *Handler) portRoutes(add func(httpapi.Route), r *httpapi.Router) {
	const sb = "/v1/sandboxes/{sandbox}"
	add(httpapi.Route{Path: sb + "/ports/{port}/{path...}", Action: ActionExec, AnyQuery: true, RawContentType: "application/octet-stream",
		Summary: "Reach what listens on a port in the sandbox (HTTP and WebSocket; any method): the request goes to 127.0.0.1:PORT/PATH inside it, without the caller's Authorization.",
		Handler: h.handlePort})
	add(httpapi.Route{Method: "POST", Path: sb + "/port-urls", Action: ActionManage, Status: http.StatusCreated,
		Summary: "Make a public URL of a port of the sandbox, signed and expiring (ttl_s, default 3600), limited to a path prefix.",
		Request: api.PortURLRequest{}, Response: api.PortURL{}, Handler: h.handlePortURL})
	r.Handle(httpapi.Route{Path: PublicPortPrefix + "/{sandbox}/{port}/{path...}", Tag: tag, Public: true, AnyQuery: true,
		RawContentType: "application/octet-stream", Handler: h.guard(h.handlePublicPort),
		Summary: "A signed port URL (POST .../port-urls): reaches the port without credentials until it expires, within its path prefix."})
}

// SignPort is the signature of a public URL of port of sandbox id, for
// paths under prefix, until exp (Unix seconds).
func SignPort(key []byte, id string, port int, prefix string, exp int64) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "sandbox-port\x00%s\x00%d\x00%s\x00%d", id, port, prefix, exp)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (h *Handler) handlePortURL(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("sandbox")
	if _, err := h.m.Get(id); err != nil {
		return problemFor(err)
	}
	if len(h.cfg.PortKey) < 32 {
		return api.Errorf(api.KindUnavailable, "signed port URLs are not configured on this node")
	}
	var req api.PortURLRequest
	if err := httpapi.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Port < 1 || req.Port > 65535 {
		return api.FieldErrorf(api.KindValidation, "port", "want a TCP port from 1 to 65535")
	}
	prefix := req.Path
	if prefix == "" {
		prefix = "/"
	}
	if !strings.HasPrefix(prefix, "/") || path.Clean(prefix) != strings.TrimSuffix(prefix, "/") && prefix != "/" ||
		len(prefix) > 1024 || strings.ContainsAny(prefix, "?#\x00") {
		return api.FieldErrorf(api.KindValidation, "path", "want a clean absolute path prefix such as / or /app/, without ? or #")
	}
	ttl := time.Hour
	if req.TTLS != 0 {
		if math.IsNaN(req.TTLS) || req.TTLS < 1 || req.TTLS > maxPortURLTTL.Seconds() {
			return api.FieldErrorf(api.KindValidation, "ttl_s", "want 1 to %.0f seconds", maxPortURLTTL.Seconds())
		}
		ttl = time.Duration(req.TTLS * float64(time.Second))
	}
	exp := h.now().Add(ttl).Unix()
	q := url.Values{qExpires: {strconv.FormatInt(exp, 10)}, qPrefix: {prefix},
		qSignature: {SignPort(h.cfg.PortKey, id, req.Port, prefix, exp)}}
	u := fmt.Sprintf("%s/%s/%d%s?%s", PublicPortPrefix, id, req.Port, prefix, q.Encode())
	httpapi.WriteJSON(w, http.StatusCreated, api.PortURL{URL: u, Expires: time.Unix(exp, 0).UTC()})
	return nil
}

func (h *Handler) now() time.Time {
	if h.cfg.Now != nil {
		return h.cfg.Now()
	}
	return time.Now()
}

// handlePublicPort serves a signed port URL: the signature must be this
// node's for the sandbox, port, prefix and expiry, the expiry not passed,
// and the path under the prefix. Every refusal is the same 403.
func (h *Handler) handlePublicPort(w http.ResponseWriter, r *http.Request) error {
	id, q := r.PathValue("sandbox"), r.URL.Query()
	port, _ := strconv.Atoi(r.PathValue("port"))
	exp, err := strconv.ParseInt(q.Get(qExpires), 10, 64)
	prefix, sig := q.Get(qPrefix), q.Get(qSignature)
	p := "/" + r.PathValue("path")
	under := strings.HasSuffix(prefix, "/") && strings.HasPrefix(p, prefix) || p == prefix || strings.HasPrefix(p, prefix+"/")
	if len(h.cfg.PortKey) < 32 || err != nil || !hmac.Equal([]byte(sig), []byte(SignPort(h.cfg.PortKey, id, port, prefix, exp))) ||
		h.now().Unix() >= exp || !under {
		return api.Errorf(api.KindForbidden, "this port URL is not valid: it expired, was altered, or does not cover %s; ask for a new one (POST /v1/sandboxes/ID/port-urls)", clipPath(p))
	}
	for _, k := range []string{qExpires, qPrefix, qSignature} {
		q.Del(k)
	}
	return h.proxyPort(w, r, id, port, p, q.Encode())
}

func clipPath(p string) string {
	if len(p) > 128 {
		return p[:128] + "…"
	}
	return p
}

func (h *Handler) handlePort(w http.ResponseWriter, r *http.Request) error {
	port, _ := strconv.Atoi(r.PathValue("port")) // the Router checked it
	return h.proxyPort(w, r, r.PathValue("sandbox"), port, "/"+r.PathValue("path"), r.URL.RawQuery)
}

// portProblem is the problem of a dial that failed for the sandbox's
// sake (closed, failed, paused, a tier without ports, a bad port), not
// because nothing listens; nil otherwise.
func portProblem(err error) error {
	for _, e := range []error{sandbox.ErrClosed, sandbox.ErrNotFound, sandbox.ErrFailed, sandbox.ErrPaused, sandbox.ErrStopped, sandbox.ErrUnsupported} {
		if errors.Is(err, e) {
			return problemFor(err)
		}
	}
	if errors.Is(err, sandbox.ErrBadPort) {
		return api.FieldErrorf(api.KindValidation, "port", "%v", err)
	}
	if errors.Is(err, sandbox.ErrPortConns) {
		return api.Errorf(api.KindRateLimited, "%v: close some, or retry", err)
	}
	return nil
}

// proxyPort forwards r to 127.0.0.1:port/p?query inside sandbox id.
func (h *Handler) proxyPort(w http.ResponseWriter, r *http.Request, id string, port int, p, query string) error {
	sb, err := h.m.Get(id)
	if err != nil {
		return problemFor(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// The path as the client sent it: a %2F or %3F in it reaches the
	// server in the sandbox escaped, not as a / or ? (p is decoded).
	raw := "/" + httpapi.EscapedRest(r, "path")
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = &url.URL{Scheme: "http", Host: addr, Path: p, RawPath: raw, RawQuery: query}
			pr.Out.Host = addr
			for _, k := range []string{"Authorization", "Cookie", "X-Api-Key", "X-Access-Token", "Proxy-Authorization"} {
				pr.Out.Header.Del(k)
			}
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return sandbox.DialPort(ctx, sb, port)
			},
			DisableKeepAlives:     true,
			ResponseHeaderTimeout: time.Minute,
		},
		// A 101 for another protocol than the one asked for is not
		// passed on, and ReverseProxy would then drop its connection
		// unclosed (a relay slot, a host fd, until a GC): close it here.
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode == http.StatusSwitchingProtocols &&
				!strings.EqualFold(upgradeType(resp.Header), upgradeType(resp.Request.Header)) {
				resp.Body.Close()
				return fmt.Errorf("the server in the sandbox switched to %q, not the %q asked for",
					upgradeType(resp.Header), upgradeType(resp.Request.Header))
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			if p := portProblem(err); p != nil {
				httpapi.WriteProblem(w, r, nil, p)
				return
			}
			httpapi.WriteProblem(w, r, nil, api.Errorf(api.KindUnavailable,
				"nothing answered on port %d in sandbox %s: %v", port, id, err))
		},
	}
	// A proxied stream or WebSocket may outlive the server's timeouts.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	rp.ServeHTTP(w, r)
	return nil
}

// upgradeType is the protocol an Upgrade handshake's headers name ("" for
// none), as ReverseProxy compares them.
func upgradeType(h http.Header) string {
	for _, v := range h.Values("Connection") {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return h.Get("Upgrade")
			}
		}
	}
	return ""
}
