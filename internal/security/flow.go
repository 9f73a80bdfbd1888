package security

// Labels across calls (flow.go).
//
// A session's labels follow what it sends and what it reads: a call into
// another session (the HTTP route, call_agent, from the session itself or
// from a sandbox it made) first joins the callee's labels with the
// caller's, so the callee and everything it sends out later is judged with
// at least the caller's taint, and the answer joins the caller's labels
// with the callee's. Labels are joined durably, not per request: the
// callee may keep what it was sent in its state, where a later request of
// anyone could carry it out. Model calls are channels to the provider: a
// session holding private data may call only trusted providers (Cedar
// model.invoke on ModelProvider, default policy
// private-data-untrusted-model), and an untrusted provider's answer lowers
// the session's integrity.

import (
	"context"
	"fmt"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/modelgw"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/cedar-policy/cedar-go/types"
)

var _ session.Flow = (*Security)(nil)

// flowSource names the session whose labels a caller carries: the calling
// session, or the session that made the calling sandbox; who describes the
// caller for the audit trail. Users, agents, admins and user-owned
// sandboxes carry none.
func (s *Security) flowSource(ctx context.Context) (agent, sess, who string, ok bool) {
	p, found := s.principalFrom(ctx)
	if !found || (p.Kind != string(identity.KindSession) && p.Kind != string(identity.KindSandbox)) {
		return "", "", "", false
	}
	ip, err := identity.ParsePrincipal(s.td, p.ID)
	if err != nil {
		return "", "", "", false
	}
	switch ip.Kind {
	case identity.KindSession:
		return ip.Agent, ip.Name, "session " + ip.Agent + "/" + ip.Name, true
	case identity.KindSandbox:
		rec, ok := s.sandboxRecord(ip.Name)
		if !ok || rec.Session == "" {
			return "", "", "", false
		}
		return rec.Agent, rec.Session, "sandbox " + ip.Name + " of session " + rec.Agent + "/" + rec.Session, true
	}
	return "", "", "", false
}

// Enter implements session.Flow: it joins the callee's labels with the
// caller's before the request reaches it.
func (s *Security) Enter(ctx context.Context, agent, id string) error {
	fa, fs, who, ok := s.flowSource(ctx)
	if !ok || (fa == agent && fs == id) {
		return nil
	}
	l, err := s.labels.get(ctx, fa, fs)
	if err != nil {
		return fmt.Errorf("labels of %s/%s: %w", fa, fs, err)
	}
	if l == (policy.Labels{}) {
		return nil
	}
	_, err = s.labels.join(ctx, agent, id, l, "called by "+who+" ("+l.String()+")")
	return err
}

// Leave implements session.Flow: it joins the caller's labels with the
// callee's before the caller sees the answer.
func (s *Security) Leave(ctx context.Context, agent, id string) error {
	fa, fs, _, ok := s.flowSource(ctx)
	if !ok || (fa == agent && fs == id) {
		return nil
	}
	l, err := s.labels.get(ctx, agent, id)
	if err != nil {
		return fmt.Errorf("labels of %s/%s: %w", agent, id, err)
	}
	if l == (policy.Labels{}) {
		return nil
	}
	_, err = s.labels.join(ctx, fa, fs, l, "read the answer of session "+agent+"/"+id+" ("+l.String()+")")
	return err
}

// AuthorizeProvider asks Cedar whether the caller's request may go to
// provider p: model.invoke on ModelProvider::"name" (trusted as the
// operator marked it) with the caller's labels. A denial is audited.
func (s *Security) AuthorizeProvider(ctx context.Context, c modelgw.Caller, p api.ModelProvider) error {
	ip, err := identity.ParsePrincipal(s.td, c.Principal)
	if err != nil {
		return api.Errorf(api.KindForbidden, "caller %q is not an identity of this platform", c.Principal)
	}
	ents := types.EntityMap{}
	labels, err := s.principalEntity(ctx, ents, ip)
	if err != nil {
		return err
	}
	ruid := policy.NewUID(policy.TypeModelProvider, p.Name)
	attrs := types.RecordMap{}
	if p.Trusted {
		attrs["trusted"] = types.True
	}
	ents[ruid] = types.Entity{UID: ruid, Attributes: types.NewRecord(attrs)}
	d, err := s.engine.Decide(ctx, ents, policy.Request{Principal: policy.PrincipalUID(ip), Action: modelgw.InvokeAction,
		Resource: ruid, Labels: labels})
	if err != nil {
		return fmt.Errorf("authorize model provider %s: %w", p.Name, err)
	}
	if d.Allowed {
		return nil
	}
	_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeDecision, Principal: c.Principal, Session: sessionName(ip),
		Action: modelgw.InvokeAction, Resource: uidString(ruid), Outcome: "deny", Reason: strings.Join(d.Reasons, ","),
		Detail: map[string]any{"labels": labels.String(), "trusted": p.Trusted}})
	text := denialText(ip, modelgw.InvokeAction, ruid, d)
	if len(d.Reasons) > 0 && !p.Trusted && labels.Confidentiality >= policy.Private {
		text += fmt.Sprintf(" (the session holds %s data; an administrator can mark the provider trusted: agentcloud models add %s --trusted ...)",
			labels.Confidentiality, p.Name)
	}
	return api.Errorf(api.KindForbidden, "%s", text)
}

// ModelAnswered lowers a session's integrity when it is about to read the
// answer of a provider the operator has not marked trusted.
func (s *Security) ModelAnswered(ctx context.Context, c modelgw.Caller, p api.ModelProvider) error {
	if c.Session == "" || p.Trusted {
		return nil
	}
	_, err := s.labels.join(ctx, c.Agent, c.Session, policy.Labels{Integrity: policy.Untrusted},
		"read the answer of model provider "+p.Name+", which is not marked trusted")
	if err != nil {
		return fmt.Errorf("model answer withheld: label session %s/%s: %w", c.Agent, c.Session, err)
	}
	return nil
}
