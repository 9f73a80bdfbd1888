package security

import (
	"context"
	"errors"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/approval"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/policy"
)

// ListApprovals returns the approvals caller may resolve, in the given
// status ("" for all).
func (s *Security) ListApprovals(ctx context.Context, caller Principal, status string) ([]api.Approval, error) {
	all, err := s.approvals.List(ctx, status)
	if err != nil {
		return nil, err
	}
	out := []api.Approval{}
	for _, a := range all {
		if s.canResolve(ctx, caller, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// canResolve filters approval lists without auditing each probe.
func (s *Security) canResolve(ctx context.Context, p Principal, a api.Approval) bool {
	if p.Kind == string(identity.KindAdmin) {
		return true
	}
	ip, err := s.principalOf(p)
	if err != nil {
		return false
	}
	d, _, err := s.decide(ctx, ip, "approval.resolve", Resource{Type: policy.TypeApproval, ID: a.ID}, nil)
	return err == nil && d.Allowed
}

// ResolveApproval approves or denies pending approval id on behalf of
// caller (the route authorizes approval.resolve); the decision is audited.
// An unknown id is a not-found problem, one already resolved a conflict.
func (s *Security) ResolveApproval(ctx context.Context, caller Principal, id string, approve bool) (api.Approval, error) {
	a, err := s.approvals.Resolve(ctx, id, approve, caller.ID)
	switch {
	case errors.Is(err, approval.ErrNotFound):
		return api.Approval{}, api.Errorf(api.KindNotFound, "approval %s does not exist", id)
	case errors.Is(err, approval.ErrResolved):
		return api.Approval{}, api.Errorf(api.KindConflict, "%v", err)
	case err != nil:
		return api.Approval{}, err
	}
	_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeApproval, Principal: caller.ID, Action: a.Action,
		Resource: a.Resource, Outcome: a.Status, Reason: "approval " + a.ID + " for " + a.Principal,
		Detail: map[string]any{"approval": a.ID, "approver": caller.ID}})
	return a, nil
}
