// Package egress owns the one way out of agentcloud: an HTTP forward proxy
// (absolute-URI requests and CONNECT, with optional TLS interception) and a
// Go API, Proxy.Do, used by isolates. It is default deny: every request is
// put to a Decider (host, port, method, and the Caller: who makes it and
// what for, the one typed contract between the proxy's callers and its
// hooks; nothing about a request travels in context keys of other
// packages), destinations are resolved
// by the proxy itself and refused if they land in loopback, private,
// link-local, CGNAT, multicast, metadata or otherwise reserved ranges, and
// every decision goes to an Auditor. Secret placeholders are filled in by a
// hook just before a request leaves, and the values it put in are scrubbed
// from the response before the caller reads it. The package does not hold
// policy or secrets itself; the daemon plugs internal/policy and
// internal/secrets in.
package egress

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Purpose says what an outbound request is for; the Decider and the
// SecretHook apply the rules of that purpose.
type Purpose string

// Purposes. The zero value is a principal's own request, decided by
// policy alone (no egress list, no secrets).
const (
	PurposeDirect Purpose = ""
	// PurposeSession is a session's fetch() or its http_fetch tool call:
	// the manifest's egress list, the owner's secrets, Cedar, labels.
	PurposeSession Purpose = "session"
	// PurposeSandbox is a sandbox's traffic through its network
	// namespace's proxy: the sandbox's egress list and secrets, Cedar.
	PurposeSandbox Purpose = "sandbox"
	// PurposeModel is a model gateway call to one provider: exactly the
	// provider's destination, only its key.
	PurposeModel Purpose = "model"
	// PurposeRegistry is a tool registry call to a registered upstream:
	// only its hosts, only its credential.
	PurposeRegistry Purpose = "registry"
	// PurposeTool is the http_fetch tool called by a principal that is
	// not a session: its own identity and policy.
	PurposeTool Purpose = "tool"
	// PurposeKeyDirectory is the front door fetching a Web Bot Auth
	// signer's key directory: GET of its well-known path over https only,
	// no secrets, public destinations only.
	PurposeKeyDirectory Purpose = "key-directory"
)

// Caller is who makes an outbound request and what for. It is the one
// contract between the callers of the proxy (sessions, sandboxes, the
// model gateway, the tool registry, the toolbox) and the Decider, the
// SecretHook and the Auditor, which receive it in every Request: nothing
// about a request travels in its context.
type Caller struct {
	// ID is the SPIFFE ID the request goes out as.
	ID string
	// Purpose selects the rules the request is decided by.
	Purpose Purpose
	// Agent and Session name the session the request is made for or
	// attributed to (a sandbox's creating session, a model call's
	// caller); both empty otherwise.
	Agent, Session string
	// Sandbox is the id of the sandbox making the request.
	Sandbox string
	// Owner is the owner (a SPIFFE ID) of the agent or sandbox.
	Owner string
	// Allow is the egress list of a session or sandbox (host patterns,
	// internal/egress/hostpattern), or the exact host:port destinations
	// of a model provider or tool upstream.
	Allow []string
	// Secrets are the secret names the request may use.
	Secrets []string
	// Target names the model provider or tool upstream of a platform call.
	Target string
	// OnBehalfOf is the principal a model gateway call is made for.
	OnBehalfOf string
	// AllowPrivate asks for the operator's private-address grant (a
	// provider or upstream registered with allow_private); only
	// Config.AllowPrivate grants it.
	AllowPrivate bool
	// Timeout, if positive, replaces Config.Timeout for the whole exchange
	// of each request (callers that bound it themselves and legitimately
	// stream for long: model completions). The response headers must
	// still arrive within Config.Timeout.
	Timeout time.Duration
	// Substituted, if set, is told what the SecretHook put into each
	// request (the tool registry redacts error texts with it).
	Substituted func(Substitution)
}

// Request is what a Decider is asked about.
type Request struct {
	Caller Caller
	Scheme string // "http", "https", or "tunnel" for a CONNECT without interception
	Method string
	Host   string // lowercased, no port, no brackets
	Port   int
	Path   string // empty for a tunnel
	// ApprovalWait is how long the caller is willing to wait for a person
	// to resolve an approval this request needs (ApprovalWaitHeader); zero
	// means fail at once with the approval id.
	ApprovalWait time.Duration
}

// ApprovalWaitHeader, on an outbound request, asks the proxy to hold the
// request up to that many seconds while an approval it needs is pending,
// instead of refusing it at once. The proxy removes it before sending.
const ApprovalWaitHeader = "Agentcloud-Approval-Wait"

// MaxApprovalWait caps ApprovalWaitHeader.
const MaxApprovalWait = 5 * time.Minute

// Verdict is a Decider's answer.
type Verdict int

// Verdicts. The zero value denies.
const (
	Deny Verdict = iota
	Allow
	Pending // denied now; an approval has been requested
)

func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allowed"
	case Pending:
		return "pending_approval"
	default:
		return "denied"
	}
}

// Decision is a verdict and a short reason for the audit trail.
type Decision struct {
	Verdict Verdict
	Reason  string
}

// Decider decides each outbound request.
type Decider interface {
	DecideEgress(ctx context.Context, req Request) (Decision, error)
}

// DeciderFunc adapts a function to Decider.
type DeciderFunc func(ctx context.Context, req Request) (Decision, error)

// DecideEgress calls f.
func (f DeciderFunc) DecideEgress(ctx context.Context, req Request) (Decision, error) {
	return f(ctx, req)
}

// Event is one audited egress decision.
type Event struct {
	Time     time.Time
	Request  Request
	Outcome  string // Verdict.String(), or "error"
	Reason   string
	Secrets  []string // secrets substituted into the request
	Status   int      // upstream status, when allowed and answered
	Duration time.Duration
}

// Auditor receives every decision. Audit must not block for long.
type Auditor interface {
	Audit(ctx context.Context, ev Event)
}

// AuditorFunc adapts a function to Auditor.
type AuditorFunc func(ctx context.Context, ev Event)

// Audit calls f.
func (f AuditorFunc) Audit(ctx context.Context, ev Event) { f(ctx, ev) }

// SecretHook substitutes secret placeholders in h for the request req
// (its scheme, host and port decide which secrets may go) and says what it
// substituted. An error refuses the request.
type SecretHook func(ctx context.Context, caller Caller, req Request, h http.Header) (Substitution, error)

// Substitution is what a SecretHook put into a request.
type Substitution struct {
	// Names are the secrets used, for the audit record.
	Names []string
	// Scrubber removes their values from the response (headers, body,
	// trailers) before anyone reads it; nil when nothing needs removing.
	Scrubber Scrubber
}

// Scrubber removes substituted secret values from a response as it
// streams; *secrets.Scrubber implements it.
type Scrubber interface {
	Header(h http.Header)
	Reader(body io.ReadCloser, atEOF func()) io.ReadCloser
	// String removes the values from s (an error text).
	String(s string) string
}

// Resolver resolves names; *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Errors returned by Do (wrapped; test with errors.Is).
var (
	ErrDenied          = errors.New("egress denied")
	ErrPendingApproval = errors.New("egress pending approval")
	ErrTooLarge        = errors.New("egress size limit exceeded")
	ErrBadRequest      = errors.New("bad egress request")
)

// Config configures a Proxy. Only the zero-value defaults noted are applied.
type Config struct {
	Decider Decider    // nil denies everything
	Auditor Auditor    // nil discards
	Secrets SecretHook // nil leaves headers untouched
	// Sign, if set, signs each request Do sends upstream, after secrets
	// are substituted (Web Bot Auth: webbotauth.Signer in
	// internal/gateway); an error refuses the request. Nil signs nothing.
	Sign func(ctx context.Context, caller Caller, out *http.Request) error
	// Resolver defaults to net.DefaultResolver.
	Resolver Resolver

	// InterceptCA and InterceptKey enable TLS interception of CONNECT: the
	// proxy presents a short-lived leaf for the target host, signed by this
	// CA, so it can apply per-request decisions and substitute secrets.
	// Without them CONNECT is a plain tunnel decided once per connection.
	InterceptCA  *x509.Certificate
	InterceptKey crypto.Signer
	LeafTTL      time.Duration // default 1h

	// UpstreamRoots verifies upstream servers; nil means the system pool.
	UpstreamRoots *x509.CertPool
	// ClientCert, if set, returns the certificate to present upstream for a
	// caller (for example its X.509-SVID); nil result presents none.
	ClientCert func(ctx context.Context, caller Caller) (*tls.Certificate, error)

	// Identify names the caller of a proxied request (for example from
	// Proxy-Authorization). Default: every request is Caller{ID: "anonymous"}.
	Identify func(r *http.Request) (Caller, error)

	MaxRequestBytes  int64         // default 10 MiB
	MaxResponseBytes int64         // default 100 MiB
	Timeout          time.Duration // whole request incl. body; default 60s
	DialTimeout      time.Duration // default 10s

	// DenyPrefixes are refused in addition to the built-in ranges (for
	// example the daemon's own public address).
	DenyPrefixes []netip.Prefix

	// AllowPrivate names the requests an operator allowed to reach private
	// and loopback addresses (a model provider or tool upstream on a local
	// inference server). It is asked for every request Do sends; a grant
	// opens loopback, RFC 1918, CGNAT and unique-local addresses for that
	// request only (metadata, link-local and reserved ranges stay refused,
	// and so do the listeners given to Proxy.Protect), and such requests
	// use connections of their own. Nil grants nothing.
	AllowPrivate func(ctx context.Context, r Request) bool

	// UnsafeAllowLoopback permits loopback upstreams. For tests only.
	UnsafeAllowLoopback bool

	// LoopbackHosts names hosts (lower case, no trailing dot) the proxy
	// resolves to the given loopback address itself, without asking the
	// Resolver, and lets through although loopback is otherwise refused:
	// stand-in upstreams on this machine for benchmarks and local test
	// benches. Only these names reach loopback (an address literal or
	// another name resolving there is still refused), and the listeners
	// given to Proxy.Protect stay refused. New refuses an address that is
	// not loopback.
	LoopbackHosts map[string]netip.Addr

	Logger *slog.Logger     // default discards
	Now    func() time.Time // default time.Now
	// Metrics registers the proxy's collectors (metrics.go); nil: none.
	Metrics prometheus.Registerer
}

func (c Config) withDefaults() Config {
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.LeafTTL <= 0 {
		c.LeafTTL = time.Hour
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = 10 << 20
	}
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = 100 << 20
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.Identify == nil {
		c.Identify = func(*http.Request) (Caller, error) { return Caller{ID: "anonymous"}, nil }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// DeniedError is returned (wrapping ErrDenied or ErrPendingApproval) when a
// request is refused by policy or by the address rules.
type DeniedError struct {
	Request Request
	Verdict Verdict
	Reason  string
	Err     error // the underlying cause, if any (e.g. ErrForbiddenAddress)
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("egress %s %s:%d for %s: %s: %s", e.Request.Method, e.Request.Host, e.Request.Port, e.Request.Caller.ID, e.Verdict, e.Reason)
}

// Unwrap maps the verdict onto ErrDenied or ErrPendingApproval, plus the
// cause if there is one.
func (e *DeniedError) Unwrap() []error {
	kind := ErrDenied
	if e.Verdict == Pending {
		kind = ErrPendingApproval
	}
	if e.Err != nil {
		return []error{kind, e.Err}
	}
	return []error{kind}
}
