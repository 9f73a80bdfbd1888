// Package egresspolicy adapts the policy engine to the egress proxy: it is
// the egress.Decider the daemon plugs into egress.Config. Each outbound
// request becomes the Cedar request (caller's principal, Action::
// "egress.fetch", Host::"<host>") with the caller's session labels in the
// context, and the engine's decision becomes a verdict: Allowed → Allow,
// Approvable → Pending, anything else → Deny, with the deciding policy ids
// as the reason.
//
// It lives apart from internal/policy so that policy does not depend on
// egress (and its HTTP machinery) and egress does not depend on policy.
package egresspolicy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Action is the Cedar action every egress request is decided as.
const Action = "egress.fetch"

// Config configures a Decider.
type Config struct {
	// Engine decides. Required.
	Engine *policy.Engine
	// TrustDomain is the trust domain callers' SPIFFE IDs must belong to
	// (default identity.DefaultTrustDomain). egress.Caller.ID is parsed with
	// identity.ParsePrincipal; a caller that does not parse is refused.
	TrustDomain spiffeid.TrustDomain
	// Entities returns the entity data to decide with (the daemon's
	// in-memory cache); called once per request. Nil means no entities,
	// which only admin-style policies can allow.
	Entities func() policy.Entities
	// Labels returns the caller's session labels. An error refuses the
	// request. Nil means the zero labels (trusted, public) for everyone,
	// which disables label-based policies such as the lethal trifecta; the
	// daemon should always set it for sessions.
	Labels func(ctx context.Context, caller egress.Caller, p identity.Principal) (policy.Labels, error)
	// OnApprovable, if set, is called for a request that is denied but
	// approvable, before Pending is returned, so the daemon can record a
	// pending approval. An error refuses the request as an error.
	OnApprovable func(ctx context.Context, req egress.Request, p identity.Principal, d policy.Decision) error
}

// Decider is an egress.Decider backed by a policy.Engine.
type Decider struct {
	cfg Config
}

var _ egress.Decider = (*Decider)(nil)

// New returns a Decider.
func New(cfg Config) (*Decider, error) {
	if cfg.Engine == nil {
		return nil, errors.New("egress policy decider: nil engine")
	}
	if cfg.TrustDomain.IsZero() {
		td, err := spiffeid.TrustDomainFromString(identity.DefaultTrustDomain)
		if err != nil {
			return nil, fmt.Errorf("egress policy decider: %w", err)
		}
		cfg.TrustDomain = td
	}
	return &Decider{cfg: cfg}, nil
}

// HostUID returns the Host entity of an egress host name: the lowercased
// name without a trailing dot.
func HostUID(host string) policy.UID {
	return policy.NewUID(policy.TypeHost, strings.TrimSuffix(strings.ToLower(host), "."))
}

// DecideEgress implements egress.Decider. Callers that are not principals
// of the trust domain, empty hosts, and label or engine failures are
// returned as errors, which the proxy turns into denials.
func (d *Decider) DecideEgress(ctx context.Context, req egress.Request) (egress.Decision, error) {
	p, err := identity.ParsePrincipal(d.cfg.TrustDomain, req.Caller.ID)
	if err != nil {
		return egress.Decision{}, fmt.Errorf("egress caller: %w", err)
	}
	if req.Host == "" {
		return egress.Decision{}, errors.New("egress request without host")
	}
	var labels policy.Labels
	if d.cfg.Labels != nil {
		if labels, err = d.cfg.Labels(ctx, req.Caller, p); err != nil {
			return egress.Decision{}, fmt.Errorf("labels of %s: %w", req.Caller.ID, err)
		}
	}
	var ents policy.Entities
	if d.cfg.Entities != nil {
		ents = d.cfg.Entities()
	}
	pd, err := d.cfg.Engine.Decide(ctx, ents, policy.Request{
		Principal: policy.PrincipalUID(p),
		Action:    Action,
		Resource:  HostUID(req.Host),
		Labels:    labels,
	})
	if err != nil {
		return egress.Decision{}, err
	}
	switch {
	case pd.Allowed:
		return egress.Decision{Verdict: egress.Allow, Reason: reason("allowed by", pd, labels)}, nil
	case pd.Approvable:
		if d.cfg.OnApprovable != nil {
			if err := d.cfg.OnApprovable(ctx, req, p, pd); err != nil {
				return egress.Decision{}, fmt.Errorf("request approval: %w", err)
			}
		}
		return egress.Decision{Verdict: egress.Pending, Reason: reason("approval required by", pd, labels)}, nil
	default:
		return egress.Decision{Verdict: egress.Deny, Reason: reason("denied by", pd, labels)}, nil
	}
}

// reason renders a decision for the audit trail, e.g. "policy: denied by
// lethal-trifecta (labels untrusted/private)".
func reason(verb string, d policy.Decision, l policy.Labels) string {
	var b strings.Builder
	b.WriteString("policy: ")
	if len(d.Reasons) == 0 {
		b.WriteString("no policy permits it")
	} else {
		b.WriteString(verb)
		b.WriteByte(' ')
		b.WriteString(strings.Join(d.Reasons, ", "))
	}
	b.WriteString(" (labels ")
	b.WriteString(l.String())
	b.WriteByte(')')
	if len(d.Errors) > 0 {
		b.WriteString("; evaluation errors: ")
		b.WriteString(strings.Join(d.Errors, "; "))
	}
	return b.String()
}
