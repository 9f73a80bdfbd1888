package security

// Egress decisions (egress.go). Every outbound request goes through the one
// egress proxy, which asks Security (its Decider) about each one. What the
// request is for is its egress.Caller: a model gateway call to one
// provider (PurposeModel), a tool upstream call (PurposeRegistry), a
// session's or sandbox's own request (PurposeSession, PurposeSandbox, with
// the manifest's or sandbox's egress list, the owner and the usable
// secrets), or a principal's own (policy alone).

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/approval"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/egress/hostpattern"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var _ egress.Decider = (*Security)(nil)

// EgressAction is the Cedar action every egress request is decided as.
const EgressAction = "egress.fetch"

// HostUID returns the Host entity of an egress host name: the lowercased
// name without a trailing dot.
func HostUID(host string) policy.UID {
	return policy.NewUID(policy.TypeHost, strings.TrimSuffix(strings.ToLower(host), "."))
}

// notInEgressList says why a host:port is refused by an egress list, with
// the pattern that would allow it.
func notInEgressList(r egress.Request) string {
	want := r.Host
	if r.Port != 80 && r.Port != 443 {
		want = fmt.Sprintf("%s:%d", r.Host, r.Port)
	}
	return fmt.Sprintf("%s:%d is not in the egress list (a pattern without a port allows 80 and 443 only; add %q)", r.Host, r.Port, want)
}

// AllowPrivate is the egress proxy's private-address grant: it opens
// private and loopback destinations for the platform calls an operator
// named with allow_private: a model provider's request to its own
// host:port, a tool upstream's requests to its destinations. Sessions and
// sandboxes never get it. The proxy still refuses metadata addresses and
// the listeners it protects.
func (s *Security) AllowPrivate(_ context.Context, r egress.Request) bool {
	switch c := r.Caller; c.Purpose {
	case egress.PurposeModel, egress.PurposeRegistry:
		return c.AllowPrivate && hostpattern.Allowed(c.Allow, r.Host, r.Port)
	}
	return false
}

// listed reports whether the caller's requests are held to an egress list
// (a session's or a sandbox's).
func listed(c egress.Caller) bool {
	return c.Purpose == egress.PurposeSession || c.Purpose == egress.PurposeSandbox
}

// SessionFetcher returns the session.Fetcher that sends agent code's
// fetch() through proxy as the session and then moves its labels for what
// it read.
func (s *Security) SessionFetcher(proxy *egress.Proxy) session.Fetcher {
	return sessionFetcher{proxy: proxy, sec: s}
}

// sessionFetcher sends session fetch() calls through the egress proxy and
// lowers the session's integrity after it reads from an untrusted host.
type sessionFetcher struct {
	proxy *egress.Proxy
	sec   *Security
}

func (f sessionFetcher) Fetch(ctx context.Context, c session.Caller, req *http.Request) (*http.Response, error) {
	id, err := sessionID(f.sec.td, c)
	if err != nil {
		return nil, fmt.Errorf("session identity: %w", err)
	}
	ec := egress.Caller{ID: id.String(), Purpose: egress.PurposeSession, Agent: c.Agent, Session: c.Session, Allow: c.Egress}
	if info, ok, err := f.sec.agents.AgentInfo(ctx, c.Agent); ok && err == nil {
		ec.Owner, ec.Secrets = info.Owner, info.Manifest.Secrets
	}
	resp, err := f.proxy.Do(ctx, ec, req)
	if err != nil {
		return nil, err
	}
	if err := f.sec.labelRead(ctx, c.Agent, c.Session, strings.ToLower(req.URL.Hostname()), ""); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// DecideEgress implements egress.Decider. A model gateway call may reach
// exactly its provider's host (models.go), a tool registry call its
// upstream's hosts (registry.go). Anything else is decided by the egress
// list AND the Cedar decision on (caller, egress.fetch, Host) with the
// session's labels. An approvable denial consumes an approved approval for
// the same request, or records a pending one whose id the caller sees.
func (s *Security) DecideEgress(ctx context.Context, r egress.Request) (egress.Decision, error) {
	ec := r.Caller
	switch ec.Purpose {
	case egress.PurposeModel:
		return decideModelEgress(ec, r), nil
	case egress.PurposeRegistry:
		return s.decideRegistryEgress(ctx, ec, r)
	case egress.PurposeKeyDirectory:
		return decideKeyDirectoryEgress(r), nil
	}
	if listed(ec) && !hostpattern.Allowed(ec.Allow, r.Host, r.Port) {
		return egress.Decision{Verdict: egress.Deny, Reason: notInEgressList(r)}, nil
	}
	p, err := identity.ParsePrincipal(s.td, r.Caller.ID)
	if err != nil {
		return egress.Decision{}, fmt.Errorf("egress caller: %w", err)
	}
	host := HostUID(r.Host)
	puid := policy.PrincipalUID(p)
	ents := types.EntityMap{host: types.Entity{UID: host}}
	var labels policy.Labels
	switch p.Kind {
	case identity.KindSession:
		if labels, err = s.sessionEgressEntities(ctx, ents, p, ec, host, r.Host); err != nil {
			return egress.Decision{}, err
		}
	case identity.KindSandbox:
		extra := types.RecordMap{}
		if listed(ec) { // ec.Allow was checked above
			extra["hosts"] = types.NewSet(host)
			trusted, err := s.TrustedHosts(ctx)
			if err != nil {
				return egress.Decision{}, err
			}
			if hostpattern.HostAllowed(trusted, r.Host) {
				extra["allowHosts"] = types.NewSet(host)
			}
		}
		if labels, err = s.sandboxPrincipal(ctx, ents, p, extra); err != nil {
			return egress.Decision{}, err
		}
	default:
		ents[puid] = types.Entity{UID: puid}
	}
	d, err := s.engine.Decide(ctx, ents, policy.Request{Principal: puid, Action: EgressAction, Resource: host, Labels: labels})
	if err != nil {
		return egress.Decision{}, err
	}
	why := fmt.Sprintf("%s (labels %s)", strings.Join(d.Reasons, ", "), labels)
	switch {
	case d.Allowed:
		return egress.Decision{Verdict: egress.Allow, Reason: "policy: allowed by " + why}, nil
	case d.Approvable:
		return s.approvableEgress(ctx, p, ec, uidString(host), why, r.ApprovalWait)
	case len(d.Reasons) == 0:
		return egress.Decision{Verdict: egress.Deny, Reason: "policy: no policy permits it " + why}, nil
	}
	return egress.Decision{Verdict: egress.Deny, Reason: "policy: denied by " + why}, nil
}

// sessionEgressEntities adds a session caller and its agent for an egress
// decision on host and returns the session's labels: the agent's hosts
// grant is the host when the egress list allowed it, the session's
// declared allowlist the platform's trusted hosts.
func (s *Security) sessionEgressEntities(ctx context.Context, ents types.EntityMap, p identity.Principal, ec egress.Caller, host policy.UID, name string) (policy.Labels, error) {
	labels, err := s.labels.get(ctx, p.Agent, p.Name)
	if err != nil {
		return labels, err
	}
	trusted, err := s.TrustedHosts(ctx)
	if err != nil {
		return labels, err
	}
	puid := policy.PrincipalUID(p)
	agent := policy.NewUID(policy.TypeAgent, p.Agent)
	sattrs := types.RecordMap{"agent": agent}
	if hostpattern.HostAllowed(trusted, name) {
		sattrs["allowHosts"] = types.NewSet(host) // the declared allowlist: trusted hosts
	}
	aattrs := types.RecordMap{}
	if listed(ec) {
		aattrs["hosts"] = types.NewSet(host) // granted by the egress list (checked by the caller)
		if o, ok := s.userUID(ec.Owner); ok {
			sattrs["owner"], aattrs["owner"] = o, o
		}
	}
	ents[puid] = types.Entity{UID: puid, Attributes: types.NewRecord(sattrs)}
	ents[agent] = types.Entity{UID: agent, Attributes: types.NewRecord(aattrs)}
	return labels, nil
}

func (s *Security) approvableEgress(ctx context.Context, p identity.Principal, ec egress.Caller, res, why string, wait time.Duration) (egress.Decision, error) {
	caller := p.ID.String()
	consume := func() (egress.Decision, bool, error) {
		a, ok, err := s.approvals.Consume(ctx, caller, EgressAction, res)
		if err != nil || !ok {
			return egress.Decision{}, false, err
		}
		_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeApproval, Principal: caller, Session: sessionName(p),
			Action: EgressAction, Resource: res, Outcome: "used", Reason: "approval " + a.ID + " by " + a.ResolvedBy})
		return egress.Decision{Verdict: egress.Allow, Reason: "approval " + a.ID + " by " + a.ResolvedBy + " overrides " + why}, true, nil
	}
	if d, ok, err := consume(); err != nil || ok {
		return d, err
	}
	req := api.Approval{Principal: caller, Action: EgressAction, Resource: res, Reason: "denied by " + why}
	if listed(ec) {
		req.Owner = ec.Owner
	}
	a, created, err := s.approvals.Request(ctx, req)
	if err != nil {
		return egress.Decision{}, err
	}
	if created {
		_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeApproval, Principal: caller, Session: sessionName(p),
			Action: EgressAction, Resource: res, Outcome: "requested", Reason: req.Reason, Detail: map[string]any{"approval": a.ID}})
	}
	if wait > 0 { // wait mode: hold the request until a person decides, or wait ends
		wctx, cancel := context.WithTimeout(ctx, min(wait, egress.MaxApprovalWait))
		got, err := s.approvals.Wait(wctx, a.ID)
		cancel()
		if err != nil {
			return egress.Decision{}, err
		}
		switch got.Status {
		case approval.Approved:
			if d, ok, err := consume(); err != nil || ok {
				return d, err
			}
		case approval.Denied:
			return egress.Decision{Verdict: egress.Deny, Reason: fmt.Sprintf("approval %s was denied by %s (%s)", a.ID, got.ResolvedBy, why)}, nil
		}
		return egress.Decision{Verdict: egress.Pending, Reason: fmt.Sprintf("approval %s still pending after waiting %s (%s): run agentcloud approvals approve %s, then retry", a.ID, wait, why, a.ID)}, nil
	}
	return egress.Decision{Verdict: egress.Pending, Reason: fmt.Sprintf("approval %s required (%s): run agentcloud approvals approve %s, then retry", a.ID, why, a.ID)}, nil
}

func sessionName(p identity.Principal) string {
	if p.Kind != identity.KindSession {
		return ""
	}
	return p.Agent + "/" + p.Name
}

// AuditEgress records every egress decision (the proxy's Auditor), with
// the caller's ID, purpose, target and session; a
// session's sandbox reading an answer from a host that is not trusted
// lowers the session's integrity here, as each answer arrives.
func (s *Security) AuditEgress(ctx context.Context, ev egress.Event) {
	r := ev.Request
	e := api.AuditEvent{Time: ev.Time.UTC(), Type: audit.TypeEgress, Principal: r.Caller.ID, Action: EgressAction,
		Resource: uidString(HostUID(r.Host)), Outcome: ev.Outcome, Reason: ev.Reason,
		Detail: map[string]any{"method": r.Method, "scheme": r.Scheme, "port": r.Port, "path": r.Path}}
	if ec := r.Caller; ec.Purpose != egress.PurposeDirect {
		e.Detail["purpose"] = string(ec.Purpose)
	}
	if ec := r.Caller; ec.Target != "" {
		e.Detail["target"] = ec.Target // the model provider or tool upstream
	}
	if ec := r.Caller; ec.Session != "" {
		e.Session = ec.Agent + "/" + ec.Session
	}
	if ec := r.Caller; ec.Sandbox != "" {
		e.Detail["sandbox"] = ec.Sandbox
		if ec.Session != "" && ev.Status != 0 {
			s.taintSession(ctx, ec, r.Host)
		}
	}
	if ev.Status != 0 {
		e.Detail["status"] = ev.Status
		e.Detail["duration_ms"] = float64(ev.Duration.Microseconds()) / 1000
	}
	if len(ev.Secrets) > 0 {
		e.Detail["secrets"] = ev.Secrets
	}
	_ = s.audit.Record(ctx, e)
}

// ClientCert presents a session's X.509-SVID to upstream servers that ask
// for a client certificate (the proxy's ClientCert hook); other callers
// present none.
func (s *Security) ClientCert(_ context.Context, caller egress.Caller) (*tls.Certificate, error) {
	id, err := spiffeid.FromString(caller.ID)
	if err != nil {
		return nil, nil
	}
	if p, err := identity.PrincipalFromID(s.td, id); err != nil || p.Kind != identity.KindSession {
		return nil, nil
	}
	r, err := s.sessionSVID(id)
	if err != nil {
		return nil, err
	}
	svid, err := r.GetX509SVID()
	if err != nil {
		return nil, err
	}
	raw := make([][]byte, len(svid.Certificates))
	for i, c := range svid.Certificates {
		raw[i] = c.Raw
	}
	return &tls.Certificate{Certificate: raw, PrivateKey: svid.PrivateKey, Leaf: svid.Certificates[0]}, nil
}

// taintSession lowers the integrity of the session that made a sandbox when
// an answer from a host that is not trusted is about to reach the sandbox
// (the audit of an answered request comes before its body is relayed).
func (s *Security) taintSession(ctx context.Context, ec egress.Caller, host string) {
	if err := s.labelRead(ctx, ec.Agent, ec.Session, host, "sandbox "+ec.Sandbox+" "); err != nil {
		s.log.Warn("label session", "sandbox", ec.Sandbox, "err", err)
	}
}

// labelRead moves a session's labels for a response it (or its sandbox,
// named in who) read from host: a host not marked trusted lowers its
// integrity; a host marked private raises its confidentiality to private.
// A list that cannot be read counts against the session (fail closed).
func (s *Security) labelRead(ctx context.Context, agent, sess, host, who string) error {
	var l policy.Labels
	var why []string
	trusted, err := s.TrustedHosts(ctx)
	if err != nil || !hostpattern.HostAllowed(trusted, host) {
		l.Integrity = policy.Untrusted
		why = append(why, "which is not a trusted host")
	}
	private, err := s.PrivateHosts(ctx)
	if err != nil || hostpattern.HostAllowed(private, host) {
		l.Confidentiality = policy.Private
		why = append(why, "whose data is private")
	}
	if len(why) == 0 {
		return nil
	}
	_, err = s.labels.join(ctx, agent, sess, l, who+"read a response from "+host+", "+strings.Join(why, " and "))
	return err
}
