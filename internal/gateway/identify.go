// Package gateway is agentcloud's front door: an http.Handler middleware
// that runs before the router. It identifies every request (client SVID or
// JWT-SVID through an injected Identifier, a Web Bot Auth signature, or
// the client address), classifies it by flow schemas into a priority
// level, applies GCRA rate limits per identity and per tool, schedules it
// through fair queues with a concurrency limit that adapts to service
// times, and tells clients the rules in RateLimit headers, Retry-After and
// problem+json bodies. It exports metrics and a snapshot (Levels, Flows,
// Top) for `agentcloud traffic` and /v1/traffic.
//
// It does not authenticate or authorize: the router still does both (the
// gateway's identity is only used to schedule, and a request whose
// credentials fail is scheduled as anonymous). It imports nothing of the
// daemon; the daemon supplies the Identifier and the directory Fetcher.
// Sub-packages: clock, gcra, httpsig, webbotauth, fairq, adaptive,
// serverlimits (listener and server settings against hostile clients) and
// gatewaytest (the flood harness).
package gateway

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// Kind is the kind of caller a request comes from.
type Kind string

// The kinds of caller.
const (
	KindAdmin     Kind = "admin"
	KindNode      Kind = "node"
	KindUser      Kind = "user"
	KindAgent     Kind = "agent"
	KindSession   Kind = "session"
	KindSandbox   Kind = "sandbox"
	KindBot       Kind = "bot" // a verified Web Bot Auth signer
	KindAnonymous Kind = "anonymous"
)

// Method is how an identity was established.
type Method string

// The methods.
const (
	MethodMTLS       Method = "mtls"
	MethodJWT        Method = "jwt"
	MethodToken      Method = "token" // the bootstrap admin token
	MethodWebBotAuth Method = "web-bot-auth"
	MethodNone       Method = "none"
)

// Identity is who a request comes from, as far as scheduling is concerned.
type Identity struct {
	Kind Kind
	// ID is the flow's name: a SPIFFE ID, a Web Bot Auth signer's
	// directory URL, or "ip:ADDRESS" (an IPv6 client's /64) for anonymous
	// requests.
	ID     string
	Method Method
	// Agent is the agent of a session (empty otherwise).
	Agent string
	// Signer is the Web Bot Auth signer (its directory URL), for bots.
	Signer string
}

// Identifier turns a request into an identity from its client certificate
// or bearer token. It returns a zero Identity and no error when the request
// carries neither, and an error when it carries credentials that do not
// verify (the gateway then schedules the request as anonymous; the router
// refuses it). The daemon implements it with its mTLS/JWT authenticator.
type Identifier interface {
	Identify(r *http.Request) (Identity, error)
}

// IdentifierFunc adapts a function to Identifier.
type IdentifierFunc func(r *http.Request) (Identity, error)

// Identify calls f.
func (f IdentifierFunc) Identify(r *http.Request) (Identity, error) { return f(r) }

// Anonymous is the identity of a request without usable credentials: its
// client address, IPv6 addresses grouped by /64 (one host holds a /64).
func Anonymous(remoteAddr string) Identity {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	id := "ip:" + host
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if a.Is6() {
			p, _ := a.Prefix(64)
			id = "ip:" + p.String()
		} else {
			id = "ip:" + a.String()
		}
	}
	return Identity{Kind: KindAnonymous, ID: id, Method: MethodNone}
}

type ctxKey int

const classKey ctxKey = iota

// Class is what the gateway decided about a request; handlers read it with
// ClassFrom.
type Class struct {
	Identity Identity
	// Level is the priority level; Schema the flow schema that chose it.
	Level, Schema string
	// MCPMethod and Tool are what the JSON-RPC body of an MCP request
	// asked for ("" when it was not peeked).
	MCPMethod, Tool string
	LongRunning     bool
	// Wait is how long the request waited in its level's queue.
	Wait time.Duration
}

// ClassFrom returns the gateway's classification of the request.
func ClassFrom(ctx context.Context) (Class, bool) {
	c, ok := ctx.Value(classKey).(*Class)
	if !ok {
		return Class{}, false
	}
	return *c, true
}

// TraceTrusted reports whether r's caller may continue its own trace: the
// gateway identified it by a credential that verified (client
// certificate, JWT-SVID or the admin token) and it is not a sandbox (whose
// programs are not the platform's). Anonymous callers, Web Bot Auth
// signers and failed credentials start a new trace. The daemon passes it
// to internal/telemetry.
func TraceTrusted(r *http.Request) bool {
	c, ok := ClassFrom(r.Context())
	if !ok {
		return false
	}
	switch c.Identity.Method {
	case MethodMTLS, MethodJWT, MethodToken:
		return c.Identity.Kind != KindSandbox && c.Identity.Kind != KindAnonymous && c.Identity.Kind != ""
	}
	return false
}
