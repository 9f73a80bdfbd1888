package security

// Model gateway calls (models.go): who a gateway caller is, Cedar
// model.invoke on the model, the provider's key checked when a provider is
// added and filled in by the egress proxy at each call, and each provider
// call allowed to reach exactly its provider's host.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/egress/hostpattern"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/modelgw"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/secrets"
)

// ModelEgressCaller is the egress caller of one model gateway call to a
// provider, made as node (the daemon's node SPIFFE ID): the decider lets it
// reach exactly out.Dest, the secret hook fills in only out.Secret, the
// private-address grant follows out.AllowPrivate, and the audit record is
// attributed to the session the call is made for. timeout bounds the
// whole exchange, a streamed completion included.
func ModelEgressCaller(node string, out modelgw.Outbound, timeout time.Duration) egress.Caller {
	c := egress.Caller{ID: node, Purpose: egress.PurposeModel, Agent: out.Caller.Agent, Session: out.Caller.Session,
		Allow: []string{out.Dest}, Target: out.Provider, OnBehalfOf: out.Caller.Principal,
		AllowPrivate: out.AllowPrivate, Timeout: timeout}
	if out.Secret != "" {
		c.Secrets = []string{out.Secret}
	}
	return c
}

// ModelCaller attributes a model gateway API request to its authenticated
// principal: a session SVID is that session of its agent, an agent SVID
// the agent, anyone else themselves (user:NAME).
func (s *Security) ModelCaller(r *http.Request) (modelgw.Caller, error) {
	hp, ok := s.principalFrom(r.Context())
	if !ok {
		return modelgw.Caller{}, api.Errorf(api.KindUnauthenticated, "no principal")
	}
	p, err := s.principalOf(hp)
	if err != nil {
		return modelgw.Caller{}, err
	}
	c := modelgw.Caller{Principal: hp.ID}
	switch p.Kind {
	case identity.KindSession:
		c.Agent, c.Session = p.Agent, p.Name
	case identity.KindAgent:
		c.Agent = p.Name
	default:
		c.User = string(p.Kind) + ":" + p.Name
	}
	return c, nil
}

// AuthorizeModel asks Cedar whether the caller may invoke Model::"model";
// denials are audited (the route's own model.invoke decision on the
// platform is audited by Authorize).
func (s *Security) AuthorizeModel(ctx context.Context, c modelgw.Caller, model string) error {
	ip, err := identity.ParsePrincipal(s.td, c.Principal)
	if err != nil {
		return api.Errorf(api.KindForbidden, "caller %q is not an identity of this platform", c.Principal)
	}
	d, ruid, err := s.decide(ctx, ip, modelgw.InvokeAction, Resource{Type: policy.TypeModel, ID: model}, nil)
	if err != nil {
		return err
	}
	if d.Allowed {
		return nil
	}
	_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeDecision, Principal: c.Principal, Session: sessionName(ip),
		Action: modelgw.InvokeAction, Resource: uidString(ruid), Outcome: "deny", Reason: strings.Join(d.Reasons, ",")})
	return api.Errorf(api.KindForbidden, "%s", denialText(ip, modelgw.InvokeAction, ruid, d))
}

// CheckModelSecret makes sure a provider's key exists and may go to its
// base URL (scheme, host and port, as Secret.Allows decides at each call).
func (s *Security) CheckModelSecret(ctx context.Context, name string, base *url.URL) error {
	meta, err := s.secrets.Describe(ctx, name)
	host := strings.ToLower(base.Hostname())
	if errors.Is(err, secrets.ErrNotFound) {
		return api.FieldErrorf(api.KindValidation, "secret", "secret %s does not exist: create it with agentcloud secret set %s --allow-host %s", name, name, host)
	}
	if err != nil {
		return err
	}
	dest, err := secrets.DestinationOf(base)
	if err != nil {
		return api.FieldErrorf(api.KindValidation, "base_url", "%v", err)
	}
	if err := meta.Allows(dest); err != nil {
		fix := "--allow-host " + host
		if dest.Port != secrets.DefaultPort(dest.Scheme) {
			fix = fmt.Sprintf("--allow-host %s:%d", host, dest.Port)
		}
		if dest.Scheme == "http" {
			fix += " --allow-http"
		}
		return api.FieldErrorf(api.KindValidation, "secret", "secret %s may not be sent to %s (it allows %s%s): set it again with %s",
			name, dest, strings.Join(meta.AllowHosts, ", "), map[bool]string{true: " over http", false: " over https only"}[meta.AllowHTTP], fix)
	}
	return nil
}

// decideModelEgress lets a model gateway call reach exactly its provider's
// host. The proxy's address rules (no loopback, private or metadata
// destinations unless AllowPrivate grants them) still apply.
func decideModelEgress(c egress.Caller, r egress.Request) egress.Decision {
	if !hostpattern.Allowed(c.Allow, r.Host, r.Port) {
		return egress.Decision{Verdict: egress.Deny, Reason: fmt.Sprintf("model gateway: %s:%d is not the destination of provider %s (%s)", r.Host, r.Port, c.Target, strings.Join(c.Allow, ", "))}
	}
	return egress.Decision{Verdict: egress.Allow, Reason: "model gateway: provider " + c.Target}
}

// substituteModelSecret fills in a model call's API key: only the
// provider's own secret, only for destinations the secret allows.
func (s *Security) substituteModelSecret(ctx context.Context, caller egress.Caller, req egress.Request, h http.Header) (egress.Substitution, error) {
	for _, vs := range h {
		for _, v := range vs {
			for _, n := range secrets.Placeholders(v) {
				if !slices.Contains(caller.Secrets, n) {
					return egress.Substitution{}, fmt.Errorf("model gateway: secret %s is not the key of provider %s", n, caller.Target)
				}
			}
		}
	}
	sub, err := s.secrets.Substitute(ctx, destinationOf(req), h)
	outcome, reason := "allow", ""
	if err != nil {
		outcome, reason = "deny", err.Error()
	}
	for _, name := range caller.Secrets {
		detail := secretUseDetail(req)
		detail["provider"], detail["for"] = caller.Target, caller.OnBehalfOf
		_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeSecret, Principal: caller.ID, Action: "secret.use",
			Resource: "Secret::" + name, Outcome: outcome, Reason: reason, Detail: detail})
	}
	return egressSubstitution(sub), err
}
