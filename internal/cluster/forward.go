package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// ForwardedHeader names the member that forwarded a request. The public
// side (Forwarder.ServeHTTP) removes it from every client request and sets
// it only on the requests it forwards over the peer link, so a client
// cannot pose as a member.
const ForwardedHeader = "Agentcloud-Forwarded-By"

// Owners is what a Forwarder needs of a Member.
type Owners interface {
	Partition(agent, session string) int
	Owned(p int) (epoch uint64, ok bool)
	OwnerOf(p int) (node, addr string, ok bool)
	// Locate finds the member whose name match selects: its peer
	// address and whether it is live.
	Locate(match func(node string) bool) (node, addr string, live, found bool)
	// Members lists the members seen (sandbox lists gather from them).
	Members() []MemberInfo
}

var _ Owners = (*Member)(nil)

// Forwarder sends each request for a session to the member that owns the
// session's partition. It sits in front of a node's router: requests that
// name no session, and sessions this member owns, go to Local; the rest
// go to the owner's peer listener (Peer) over Transport, once: the peer
// never forwards again, it serves the session if it owns it and answers
// 503 with Retry-After otherwise (a hand-off or failover in progress; a
// client retries).
type Forwarder struct {
	Node   string
	Owners Owners
	Local  http.Handler
	// Transport reaches peers (PeerTransport: mutual TLS with node SVIDs,
	// HTTP/1.1).
	Transport http.RoundTripper
	// Scheme of peer addresses: "https" (default) or "http" (tests only).
	Scheme string
	// RetryAfter is what a client is told to wait while a partition has
	// no owner (default 1 s).
	RetryAfter time.Duration

	once  sync.Once
	proxy *httputil.ReverseProxy
	met   *metrics // set by Listen; nil: no metrics
}

type targetKey struct{}

func withTarget(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, targetKey{}, addr)
}

func targetFrom(ctx context.Context) string {
	s, _ := ctx.Value(targetKey{}).(string)
	return s
}

// SessionOf extracts agent and session from a session path:
// /agents/A/sessions/S[/...] or /v1/agents/A/sessions/S[/...]. A session
// of A's preview (/agents/A/preview/sessions/S...) is one of the agent
// A.preview (api.PreviewSuffix), the name its owner runs it under.
func SessionOf(path string) (agent, session string, ok bool) {
	rest := strings.TrimPrefix(path, "/v1")
	rest, found := strings.CutPrefix(rest, "/agents/")
	if !found {
		return "", "", false
	}
	agent, rest, found = strings.Cut(rest, "/")
	if !found || agent == "" {
		return "", "", false
	}
	if after, preview := strings.CutPrefix(rest, "preview/"); preview {
		agent, rest = agent+api.PreviewSuffix, after
	}
	rest, found = strings.CutPrefix(rest, "sessions/")
	if !found {
		return "", "", false
	}
	session, _, _ = strings.Cut(rest, "/")
	if session == "" {
		return "", "", false
	}
	return agent, session, true
}

// SandboxOf extracts the sandbox id from a sandbox path:
// /v1/sandboxes/ID[/...].
func SandboxOf(path string) (id string, ok bool) {
	rest, found := strings.CutPrefix(path, "/v1/sandboxes/")
	if !found {
		return "", false
	}
	id, _, _ = strings.Cut(rest, "/")
	return id, id != ""
}

// sessionLogsOf reads the session of a session's log stream,
// GET /v1/agents/A/logs?session=S: a session's entries are kept on the
// member that runs it, so the request goes to its owner like the
// session's own requests (streams included).
func sessionLogsOf(r *http.Request) (agent, session string, ok bool) {
	rest, found := strings.CutPrefix(r.URL.Path, "/v1/agents/")
	if !found || r.Method != http.MethodGet {
		return "", "", false
	}
	agent, found = strings.CutSuffix(rest, "/logs")
	if base, preview := strings.CutSuffix(agent, "/preview"); preview {
		agent = base + api.PreviewSuffix
	}
	if !found || agent == "" || strings.Contains(agent, "/") {
		return "", "", false
	}
	session = r.URL.Query().Get("session")
	return agent, session, session != ""
}

// SandboxHeader is the header E2B's envd calls name their sandbox in.
const SandboxHeader = "E2b-Sandbox-Id"

// sandboxTarget names the sandbox a request is for, wherever it names it:
// the sandbox routes (SandboxOf), signed port URLs
// (/v1/public/sandbox-ports/ID/...), E2B's control routes
// (/e2b/sandboxes/ID..., /e2b/v2/sandboxes/ID...) and envd calls (any
// /e2b/ path with the E2b-Sandbox-Id header).
func sandboxTarget(r *http.Request) (string, bool) {
	if id, ok := SandboxOf(r.URL.Path); ok {
		return id, true
	}
	for _, prefix := range []string{"/v1/public/sandbox-ports/", "/e2b/sandboxes/", "/e2b/v2/sandboxes/"} {
		if rest, found := strings.CutPrefix(r.URL.Path, prefix); found {
			id, _, _ := strings.Cut(rest, "/")
			return id, id != ""
		}
	}
	if id := r.Header.Get(SandboxHeader); id != "" && strings.HasPrefix(r.URL.Path, "/e2b/") {
		return id, true
	}
	return "", false
}

// ServeHTTP implements the public side.
func (f *Forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Header.Del(ForwardedHeader)
	if isSandboxList(r) {
		f.serveSandboxList(w, r)
		return
	}
	if isE2BList(r) {
		f.serveE2BList(w, r)
		return
	}
	if id, ok := sandboxTarget(r); ok {
		f.serveSandbox(w, r, id)
		return
	}
	if agent, ok := agentLogsOf(r); ok {
		f.serveAgentLogs(w, r, agent)
		return
	}
	agent, session, ok := SessionOf(r.URL.Path)
	if !ok {
		agent, session, ok = sessionLogsOf(r)
	}
	if !ok {
		f.Local.ServeHTTP(w, r)
		return
	}
	p := f.Owners.Partition(agent, session)
	if _, mine := f.Owners.Owned(p); mine {
		f.met.request(fwdLocal)
		f.Local.ServeHTTP(w, r)
		return
	}
	owner, addr, ok := f.Owners.OwnerOf(p)
	if !ok || owner == f.Node || addr == "" {
		f.met.request(fwdUnavailable)
		f.unavailable(w, r, fmt.Sprintf("partition %d of session %s/%s has no owner right now", p, agent, session))
		return
	}
	f.met.request(fwdForwarded)
	r = r.WithContext(withTarget(r.Context(), addr))
	f.reverseProxy().ServeHTTP(w, r)
}

// serveSandbox sends a call for sandbox id to the member that made it
// (the node its id names, sandbox.TagOf). Sandboxes are node-local: ids
// that name no member this one knows, or this one, are served here (the
// router answers 404 for one that is not here); a member that is known
// but silent (restarting, or dead and its sandboxes with it) gets 503
// with Retry-After.
func (f *Forwarder) serveSandbox(w http.ResponseWriter, r *http.Request, id string) {
	tag, ok := sandbox.TagOf(id)
	if !ok || tag == sandbox.NodeTag(f.Node) {
		f.Local.ServeHTTP(w, r)
		return
	}
	node, addr, live, found := f.Owners.Locate(func(n string) bool { return sandbox.NodeTag(n) == tag })
	switch {
	case !found || node == f.Node:
		f.Local.ServeHTTP(w, r)
	case !live || addr == "":
		f.unavailable(w, r, fmt.Sprintf("sandbox %s lives on member %s, which does not answer right now", id, node))
	default:
		f.reverseProxy().ServeHTTP(w, r.WithContext(withTarget(r.Context(), addr)))
	}
}

// Peer is the handler of the peer listener: requests forwarded by other
// members. It serves a session only if this member owns its partition now.
func (f *Forwarder) Peer() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if agent, session, ok := SessionOf(r.URL.Path); ok {
			p := f.Owners.Partition(agent, session)
			if _, mine := f.Owners.Owned(p); !mine {
				f.met.request(fwdPeerRefused)
				f.unavailable(w, r, fmt.Sprintf("this member no longer owns partition %d", p))
				return
			}
			f.met.request(fwdPeerServed)
		}
		f.Local.ServeHTTP(w, r)
	})
}

func (f *Forwarder) reverseProxy() *httputil.ReverseProxy {
	f.once.Do(f.buildProxy)
	return f.proxy
}

func (f *Forwarder) buildProxy() {
	scheme := f.Scheme
	if scheme == "" {
		scheme = "https"
	}
	f.proxy = &httputil.ReverseProxy{
		Transport: f.Transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = scheme
			pr.Out.URL.Host = targetFrom(pr.In.Context())
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			pr.Out.Header.Set(ForwardedHeader, f.Node)
		},
		// No flush per write: an answer of known length goes out in one
		// write with its headers. The proxy flushes each write itself of
		// the answers that stream (server-sent events, or no length),
		// so a stream still passes as it comes.
		BufferPool: &copyBuffers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			f.unavailable(w, r, "the owner of this session cannot be reached: "+err.Error())
		},
	}
}

// copyBuffers are the proxies' copy buffers, shared, so a forwarded
// answer allocates (and clears) none.
var copyBuffers bufferPool

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// unavailable answers 503 problem+json with Retry-After.
func (f *Forwarder) unavailable(w http.ResponseWriter, r *http.Request, detail string) {
	ra := f.RetryAfter
	if ra <= 0 {
		ra = time.Second
	}
	secs := max(int((ra+time.Second-1)/time.Second), 1)
	p := api.Errorf(api.KindUnavailable, "%s; retry in %d s", detail, secs)
	p.Instance = r.URL.Path
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	w.Header().Set("Content-Type", api.ProblemContentType)
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(p)
}
