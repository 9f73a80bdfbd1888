package security

import (
	"context"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/policy"
)

// TryPolicy decides a hypothetical request with the policies in force and
// names the policies that decided it. Integrity and confidentiality, when
// given, replace the principal's stored labels.
func (s *Security) TryPolicy(ctx context.Context, in api.PolicyTestRequest) (api.PolicyDecision, error) {
	p, err := s.ParseSubject(in.Principal)
	if err != nil {
		return api.PolicyDecision{}, api.FieldErrorf(api.KindValidation, "principal", "%v", err)
	}
	res, err := ParseResource(in.Resource)
	if err != nil {
		return api.PolicyDecision{}, err
	}
	var override *policy.Labels
	if in.Integrity != "" || in.Confidentiality != "" {
		var l policy.Labels
		if in.Integrity != "" {
			if l.Integrity, err = policy.ParseIntegrity(in.Integrity); err != nil {
				return api.PolicyDecision{}, api.FieldErrorf(api.KindValidation, "integrity", "%v", err)
			}
		}
		if in.Confidentiality != "" {
			if l.Confidentiality, err = policy.ParseConfidentiality(in.Confidentiality); err != nil {
				return api.PolicyDecision{}, api.FieldErrorf(api.KindValidation, "confidentiality", "%v", err)
			}
		}
		override = &l
	}
	d, _, err := s.decide(ctx, p, in.Action, res, override)
	if err != nil {
		return api.PolicyDecision{}, err
	}
	return api.PolicyDecision{Allowed: d.Allowed, Approvable: d.Approvable,
		Policies: append([]string{}, d.Reasons...), Errors: d.Errors}, nil
}

// ParseResource reads a resource written Type::id (Agent::bot,
// Host::example.com, Session::bot/s1, Platform::x; the id may be quoted);
// "" is the platform. Anything else is a validation problem on field
// resource.
func ParseResource(s string) (Resource, error) {
	typ, id, ok := strings.Cut(s, "::")
	if s == "" {
		typ, id, ok = "", "", true
	}
	if !ok {
		return Resource{}, api.FieldErrorf(api.KindValidation, "resource", "want Type::id, e.g. Agent::bot or Host::example.com")
	}
	id = strings.Trim(id, `"`)
	res := Resource{Type: typ, ID: id}
	if typ == policy.TypeSession {
		res.Parent, res.ID, _ = strings.Cut(id, "/")
	}
	if typ == policy.TypePlatform {
		res = Resource{}
	}
	return res, nil
}
