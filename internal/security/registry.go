package security

// Tool registry calls (registry.go): a registered upstream's requests go
// out as spiffe://TD/node/tool-registry, only to the upstream's hosts,
// unless a policy forbids them, carrying only the credential it was
// registered with, for the destinations that secret allows. What was
// substituted is remembered, so it can be scrubbed from error texts.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/egress/hostpattern"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/secrets"
	"github.com/cedar-policy/cedar-go/types"
)

// RegistryNode is the SPIFFE node name the registry's upstream requests go
// out under (spiffe://TD/node/tool-registry).
const RegistryNode = "tool-registry"

// RegistryCall is one outbound request for a registered upstream: the
// hosts it may go to and the one secret it may carry. It builds the
// request's egress.Caller (Caller) and remembers what was substituted, so
// it can be scrubbed from errors (Redact); the proxy scrubs what it
// substituted in headers from the response, the caller what went into the
// query (QueryScrubber).
type RegistryCall struct {
	Upstream     string
	Hosts        []string // exact host:port patterns
	AllowPrivate bool     // the upstream may be on a private address
	Secret       string   // the credential's secret, "" without one

	mu      sync.Mutex
	headers []egress.Scrubber    // substituted by the proxy's secret hook
	query   secrets.Substitution // substituted into the query string
}

// RegistryCaller is the egress caller of rc's requests: the registry's
// node identity, spiffe://TD/node/tool-registry, with PurposeRegistry,
// the upstream's hosts and its credential.
func (s *Security) RegistryCaller(rc *RegistryCall) (egress.Caller, error) {
	id, err := identity.NewID(s.td, identity.KindNode, RegistryNode)
	if err != nil {
		return egress.Caller{}, err
	}
	c := egress.Caller{ID: id.String(), Purpose: egress.PurposeRegistry, Target: rc.Upstream,
		Allow: rc.Hosts, AllowPrivate: rc.AllowPrivate, Substituted: rc.substituted}
	if rc.Secret != "" {
		c.Secrets = []string{rc.Secret}
	}
	return c, nil
}

func (rc *RegistryCall) substituted(sub egress.Substitution) {
	if sub.Scrubber == nil {
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.headers = append(rc.headers, sub.Scrubber)
}

// Redact scrubs every substituted secret value from s (an error text).
func (rc *RegistryCall) Redact(s string) string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	s = rc.query.Scrubber().String(s)
	for _, sc := range rc.headers {
		s = sc.String(s)
	}
	return s
}

// QueryScrubber removes what SubstituteRegistryQuery put into the query
// from the response; nil when it put nothing there.
func (rc *RegistryCall) QueryScrubber() *secrets.Scrubber {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.query.Scrubber()
}

// decideRegistryEgress allows a registry request to the hosts of the
// upstream an administrator registered, unless a policy forbids it.
func (s *Security) decideRegistryEgress(ctx context.Context, rc egress.Caller, r egress.Request) (egress.Decision, error) {
	if !hostpattern.Allowed(rc.Allow, r.Host, r.Port) {
		return egress.Decision{Verdict: egress.Deny,
			Reason: fmt.Sprintf("%s:%d is not a destination of registered tool upstream %s (%s)", r.Host, r.Port, rc.Target, strings.Join(rc.Allow, ", "))}, nil
	}
	p, err := identity.ParsePrincipal(s.td, r.Caller.ID)
	if err != nil || p.Kind != identity.KindNode || p.Name != RegistryNode {
		return egress.Decision{Verdict: egress.Deny, Reason: "tool upstream requests must come from the registry"}, nil
	}
	host, puid := HostUID(r.Host), policy.PrincipalUID(p)
	ents := types.EntityMap{host: types.Entity{UID: host}, puid: types.Entity{UID: puid}}
	dec, err := s.engine.Decide(ctx, ents, policy.Request{Principal: puid, Action: EgressAction, Resource: host})
	if err != nil {
		return egress.Decision{}, err
	}
	if !dec.Allowed && len(dec.Reasons) > 0 {
		return egress.Decision{Verdict: egress.Deny, Reason: "policy: denied by " + strings.Join(dec.Reasons, ", ")}, nil
	}
	return egress.Decision{Verdict: egress.Allow, Reason: "host of tool upstream " + rc.Target + ", registered by an administrator"}, nil
}

// substituteRegistrySecret fills in the credential of a registry request:
// only the secret the upstream was registered with, only for destinations
// the secret allows. The proxy hands what it substituted to the caller's
// Substituted for redaction.
func (s *Security) substituteRegistrySecret(ctx context.Context, caller egress.Caller, names []string, dest secrets.Destination, h http.Header) (secrets.Substitution, error) {
	detail := func() map[string]any {
		return map[string]any{"host": dest.Host, "port": dest.Port, "scheme": dest.Scheme, "upstream": caller.Target}
	}
	deny := func(name, reason string) (secrets.Substitution, error) {
		_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeSecret, Principal: caller.ID, Action: "secret.use",
			Resource: "Secret::" + name, Outcome: "deny", Reason: reason, Detail: detail()})
		return secrets.Substitution{}, fmt.Errorf("secret %s: %s", name, reason)
	}
	for _, n := range names {
		if !slices.Contains(caller.Secrets, n) {
			return deny(n, "not the credential of tool upstream "+caller.Target)
		}
	}
	sub, err := s.secrets.Substitute(ctx, dest, h)
	if err != nil {
		return deny(strings.Join(names, ","), err.Error())
	}
	for _, n := range sub.Names {
		_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeSecret, Principal: caller.ID, Action: "secret.use",
			Resource: "Secret::" + n, Outcome: "allow", Detail: detail()})
	}
	return sub, nil
}

// SubstituteRegistryQuery fills in a credential placeholder sent as a
// query parameter of req. The egress secret hook sees only headers, so the
// same checks run here, before the request is handed to the proxy: the
// host must be one of the upstream's, the secret the upstream's own and
// allowed for the host. Errors and responses are redacted as for headers.
func (s *Security) SubstituteRegistryQuery(ctx context.Context, rc *RegistryCall, caller egress.Caller, req *http.Request) error {
	q := req.URL.Query()
	h := http.Header{}
	var names []string
	for k, vs := range q {
		for _, v := range vs {
			if ns := secrets.Placeholders(v); len(ns) > 0 {
				h[k] = vs
				names = append(names, ns...)
				break
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	host := strings.ToLower(req.URL.Hostname())
	if !hostpattern.Allowed(rc.Hosts, host, urlPort(req.URL)) {
		return api.Errorf(api.KindForbidden, "secret %s: host %s is not a host of tool upstream %s", rc.Secret, host, rc.Upstream)
	}
	dest, err := secrets.DestinationOf(req.URL)
	if err != nil {
		return api.Errorf(api.KindForbidden, "secret %s: %v", rc.Secret, err)
	}
	sub, err := s.substituteRegistrySecret(ctx, caller, names, dest, h)
	if err != nil {
		return api.Errorf(api.KindForbidden, "%v", err)
	}
	rc.mu.Lock()
	rc.query.Merge(sub)
	rc.mu.Unlock()
	for k, vs := range h {
		q[k] = vs
	}
	req.URL.RawQuery = q.Encode()
	return nil
}

// urlPort is u's port, or its scheme's default.
func urlPort(u *url.URL) int {
	if n, err := strconv.Atoi(u.Port()); err == nil {
		return n
	}
	if strings.EqualFold(u.Scheme, "https") {
		return 443
	}
	return 80
}

// CheckCredentialSecret refuses a tool upstream credential naming a secret
// that does not exist (a validation problem on credential.secret).
func (s *Security) CheckCredentialSecret(ctx context.Context, secret string) error {
	if secret == "" {
		return nil
	}
	if _, err := s.secrets.Describe(ctx, secret); errors.Is(err, secrets.ErrNotFound) {
		return api.FieldErrorf(api.KindValidation, "credential.secret", "no secret named %q: create it first (agentcloud secret set %s --allow-host HOST)", secret, secret)
	} else if err != nil {
		return err
	}
	return nil
}
