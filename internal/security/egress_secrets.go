package security

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/secrets"
)

var _ egress.SecretHook = (*Security)(nil).SubstituteSecrets

// SubstituteSecrets is the egress proxy's secret hook. A model gateway call
// may carry only its provider's key (models.go), a tool registry call only
// its upstream's credential (registry.go). Otherwise a session may use a
// secret its manifest declares and its agent's owner owns, for the
// destinations the secret allows (https to its hosts and ports; plain http
// only if it allows that), unless a policy forbids it; a sandbox the
// secrets it was created with. Using one raises the session's
// confidentiality to secret. The values substituted are scrubbed from the
// response by the proxy.
func (s *Security) SubstituteSecrets(ctx context.Context, caller egress.Caller, req egress.Request, h http.Header) (egress.Substitution, error) {
	if caller.Purpose == egress.PurposeModel {
		return s.substituteModelSecret(ctx, caller, req, h)
	}
	var names []string
	for _, vs := range h {
		for _, v := range vs {
			for _, n := range secrets.Placeholders(v) {
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
	}
	if len(names) == 0 {
		return egress.Substitution{}, nil
	}
	if caller.Purpose == egress.PurposeRegistry {
		sub, err := s.substituteRegistrySecret(ctx, caller, names, destinationOf(req), h)
		return egressSubstitution(sub), err
	}
	ec := caller
	p, err := identity.ParsePrincipal(s.td, caller.ID)
	if err != nil || !listed(ec) || (p.Kind != identity.KindSession && p.Kind != identity.KindSandbox) {
		return egress.Substitution{}, fmt.Errorf("only sessions and sandboxes may use secrets")
	}
	declared := "not declared in the agent manifest's secrets"
	if p.Kind == identity.KindSandbox {
		declared = "not among the secrets the sandbox was created with"
	}
	deny := func(name, reason string) (egress.Substitution, error) {
		_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeSecret, Principal: caller.ID, Session: sessionName(p),
			Action: "secret.use", Resource: "Secret::" + name, Outcome: "deny", Reason: reason, Detail: secretUseDetail(req)})
		return egress.Substitution{}, fmt.Errorf("secret %s: %s", name, reason)
	}
	for _, n := range names {
		if !slices.Contains(ec.Secrets, n) {
			return deny(n, declared)
		}
		owner, _, exists, err := s.secretOwner(ctx, n)
		if err != nil {
			return egress.Substitution{}, err
		}
		if !exists {
			return deny(n, "no such secret")
		}
		if owner != ec.Owner {
			return deny(n, "owned by someone other than the caller's owner")
		}
		d, _, err := s.decide(ctx, p, "secret.use", secretResource(n), nil)
		if err != nil {
			return egress.Substitution{}, err
		}
		if !d.Allowed && len(d.Reasons) > 0 {
			return deny(n, "denied by policy "+strings.Join(d.Reasons, ", "))
		}
	}
	sub, err := s.secrets.Substitute(ctx, destinationOf(req), h)
	if err != nil {
		return deny(strings.Join(names, ","), err.Error())
	}
	if ec.Session != "" {
		if _, err := s.labels.join(ctx, ec.Agent, ec.Session, policy.Labels{Confidentiality: policy.SecretData},
			"used secret "+strings.Join(sub.Names, ",")); err != nil {
			return egress.Substitution{}, err
		}
	}
	for _, n := range sub.Names {
		_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeSecret, Principal: caller.ID, Session: sessionName(p),
			Action: "secret.use", Resource: "Secret::" + n, Outcome: "allow", Detail: secretUseDetail(req)})
	}
	return egressSubstitution(sub), nil
}

// destinationOf is where an egress request goes, as the secret rules see it.
func destinationOf(r egress.Request) secrets.Destination {
	return secrets.Destination{Scheme: r.Scheme, Host: r.Host, Port: r.Port}
}

// secretUseDetail is the audit detail of a secret use: where it went.
func secretUseDetail(r egress.Request) map[string]any {
	return map[string]any{"host": r.Host, "port": r.Port, "scheme": r.Scheme}
}

// egressSubstitution hands the proxy what was substituted and the one
// scrubber that removes it from the response.
func egressSubstitution(sub secrets.Substitution) egress.Substitution {
	out := egress.Substitution{Names: sub.Names}
	if sc := sub.Scrubber(); sc != nil {
		out.Scrubber = sc
	}
	return out
}
