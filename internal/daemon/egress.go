package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/approval"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/egress/hostpattern"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/modelgw"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/policy/egresspolicy"
	"github.com/agentcloud/agentcloud/internal/secrets"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// egressCallKey carries what the decider and the secret hook need to know
// about the session making an outbound request.
type egressCallKey struct{}

// egressCall describes one session fetch.
type egressCall struct {
	agent, session string
	allow          []string // manifest egress patterns
	owner          string   // agent owner (SPIFFE ID)
	secrets        []string // secrets the manifest declares
	sandbox        string   // sandbox id, when a sandbox makes the request
}

// egressHooks loosen the egress proxy for the package's tests, which set
// them through SetEgressTestHooks (egress_export_test.go). Benchmarks and
// other packages' tests use the egress_loopback_hosts and
// egress_upstream_ca_file settings instead.
type egressHooks struct {
	Resolver      egress.Resolver
	AllowLoopback bool
	// UpstreamRoots replaces the system roots for verifying upstreams.
	UpstreamRoots *x509.CertPool
}

// manifestDecider allows a request only to hosts the calling agent's
// manifest lists. The egress proxy has already refused private, loopback and
// metadata destinations by then. It is used when no security parts exist.
var manifestDecider = egress.DeciderFunc(func(ctx context.Context, r egress.Request) (egress.Decision, error) {
	ec, _ := ctx.Value(egressCallKey{}).(*egressCall)
	if ec != nil && hostpattern.Allowed(ec.allow, r.Host, r.Port) {
		return egress.Decision{Verdict: egress.Allow, Reason: "host is in the agent manifest's egress list"}, nil
	}
	return egress.Decision{Verdict: egress.Deny, Reason: notInEgressList(r)}, nil
})

// notInEgressList says why a host:port is refused by an egress list, with
// the pattern that would allow it.
func notInEgressList(r egress.Request) string {
	want := r.Host
	if r.Port != 80 && r.Port != 443 {
		want = fmt.Sprintf("%s:%d", r.Host, r.Port)
	}
	return fmt.Sprintf("%s:%d is not in the egress list (a pattern without a port allows 80 and 443 only; add %q)", r.Host, r.Port, want)
}

// newEgressProxy builds the one outbound proxy: decided by the manifest
// allowlist and the policy engine, secrets substituted by the hook, every
// decision audited.
func (d *Daemon) newEgressProxy() (*egress.Proxy, error) {
	cfg := egress.Config{Decider: manifestDecider, Logger: d.log.With("component", "egress"),
		Resolver: d.egressHooks.Resolver, UnsafeAllowLoopback: d.egressHooks.AllowLoopback,
		UpstreamRoots: d.egressHooks.UpstreamRoots, AllowPrivate: privateGrant}
	if err := d.egressSettings(&cfg); err != nil {
		return nil, err
	}
	if s := d.sec; s != nil {
		cfg.Decider = modelDecider{next: s} // model gateway calls: models.go
		cfg.Secrets = s.modelSecrets(s.substituteSecrets)
		cfg.Auditor = egress.AuditorFunc(s.auditEgress)
		cfg.ClientCert = s.clientCert
		// CONNECT from sandboxes is intercepted with leaves from the
		// platform CA, which sandboxes trust (sandboxCABundle), so each
		// HTTPS request is decided, audited and gets its secrets.
		cfg.InterceptCA, cfg.InterceptKey = s.ca.Certificate(), s.ca.Signer()
	}
	return egress.New(cfg)
}

// privateGrant opens private and loopback destinations for the platform
// calls an operator named with allow_private: a model provider's request
// to its own host:port, a tool upstream's requests to its destinations.
// Sessions and sandboxes never get it. The proxy still refuses metadata
// addresses and the daemon's own listeners (protectListeners).
func privateGrant(ctx context.Context, r egress.Request) bool {
	if out, _ := ctx.Value(modelCallKey{}).(*modelgw.Outbound); out != nil {
		return out.AllowPrivate && hostpattern.Allowed([]string{out.Dest}, r.Host, r.Port)
	}
	if rc, _ := ctx.Value(registryCallKey{}).(*registryCall); rc != nil {
		return rc.allowPrivate && hostpattern.Allowed(rc.hosts, r.Host, r.Port)
	}
	return false
}

// protectListeners makes the egress proxy refuse the daemon's own API
// listener and the embedded NATS server's, whatever grants and test hooks
// say. Called once the API listens (before that there is nothing to reach).
func (d *Daemon) protectListeners() {
	var own []netip.AddrPort
	for _, a := range []net.Addr{d.ln.Addr(), d.store.ListenAddr()} {
		if ta, ok := a.(*net.TCPAddr); ok && ta != nil {
			own = append(own, ta.AddrPort())
		}
	}
	d.proxy.Protect(own...)
}

// sessionFetcher sends session fetch() calls through the egress proxy and
// lowers the session's integrity after it reads from an untrusted host.
type sessionFetcher struct {
	proxy *egress.Proxy
	sec   *security
}

var _ session.Fetcher = sessionFetcher{}

func (f sessionFetcher) Fetch(ctx context.Context, c session.Caller, req *http.Request) (*http.Response, error) {
	ec := &egressCall{agent: c.Agent, session: c.Session, allow: c.Egress}
	ctx = context.WithValue(ctx, egressCallKey{}, ec)
	if f.sec == nil {
		return f.proxy.Do(ctx, egress.Caller{ID: "agent/" + c.Agent + "/session/" + c.Session}, req)
	}
	id, err := sessionID(f.sec.td, c)
	if err != nil {
		return nil, fmt.Errorf("session identity: %w", err)
	}
	if f.sec.sessions != nil {
		if info, ok, err := f.sec.sessions.AgentInfo(ctx, c.Agent); ok && err == nil {
			ec.owner, ec.secrets = info.Owner, info.Manifest.Secrets
		}
	}
	resp, err := f.proxy.Do(ctx, egress.Caller{ID: id.String()}, req)
	if err != nil {
		return nil, err
	}
	if err := f.sec.labelRead(ctx, c.Agent, c.Session, strings.ToLower(req.URL.Hostname()), ""); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// DecideEgress implements egress.Decider: the manifest allowlist AND the
// Cedar decision on (caller, egress.fetch, Host) with the session's labels.
// An approvable denial consumes an approved approval for the same request,
// or records a pending one whose id the caller sees.
func (s *security) DecideEgress(ctx context.Context, r egress.Request) (egress.Decision, error) {
	if rc, _ := ctx.Value(registryCallKey{}).(*registryCall); rc != nil {
		return s.decideRegistryEgress(ctx, rc, r) // tools_registry.go
	}
	ec, _ := ctx.Value(egressCallKey{}).(*egressCall)
	if ec != nil && !hostpattern.Allowed(ec.allow, r.Host, r.Port) {
		return egress.Decision{Verdict: egress.Deny, Reason: notInEgressList(r)}, nil
	}
	p, err := identity.ParsePrincipal(s.td, r.Caller.ID)
	if err != nil {
		return egress.Decision{}, fmt.Errorf("egress caller: %w", err)
	}
	host := egresspolicy.HostUID(r.Host)
	puid := policy.PrincipalUID(p)
	ents := types.EntityMap{host: types.Entity{UID: host}}
	var labels policy.Labels
	if p.Kind == identity.KindSession {
		if labels, err = s.labels.get(ctx, p.Agent, p.Name); err != nil {
			return egress.Decision{}, err
		}
		trusted, err := s.trustedHosts(ctx)
		if err != nil {
			return egress.Decision{}, err
		}
		agent := policy.NewUID(policy.TypeAgent, p.Agent)
		sattrs := types.RecordMap{"agent": agent}
		if hostpattern.HostAllowed(trusted, r.Host) {
			sattrs["allowHosts"] = types.NewSet(host) // the declared allowlist: trusted hosts
		}
		aattrs := types.RecordMap{}
		if ec != nil {
			aattrs["hosts"] = types.NewSet(host) // granted by the manifest (checked above)
			if o, ok := s.userUID(ec.owner); ok {
				sattrs["owner"], aattrs["owner"] = o, o
			}
		}
		ents[puid] = types.Entity{UID: puid, Attributes: types.NewRecord(sattrs)}
		ents[agent] = types.Entity{UID: agent, Attributes: types.NewRecord(aattrs)}
	} else if p.Kind == identity.KindSandbox {
		extra := types.RecordMap{}
		if ec != nil { // ec.allow was checked above
			extra["hosts"] = types.NewSet(host)
			trusted, err := s.trustedHosts(ctx)
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
	} else {
		ents[puid] = types.Entity{UID: puid}
	}
	d, err := s.engine.Decide(ctx, ents, policy.Request{Principal: puid, Action: egresspolicy.Action, Resource: host, Labels: labels})
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

func (s *security) approvableEgress(ctx context.Context, p identity.Principal, ec *egressCall, res, why string, wait time.Duration) (egress.Decision, error) {
	caller := p.ID.String()
	consume := func() (egress.Decision, bool, error) {
		a, ok, err := s.approvals.Consume(ctx, caller, egresspolicy.Action, res)
		if err != nil || !ok {
			return egress.Decision{}, false, err
		}
		_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeApproval, Principal: caller, Session: sessionName(p),
			Action: egresspolicy.Action, Resource: res, Outcome: "used", Reason: "approval " + a.ID + " by " + a.ResolvedBy})
		return egress.Decision{Verdict: egress.Allow, Reason: "approval " + a.ID + " by " + a.ResolvedBy + " overrides " + why}, true, nil
	}
	if d, ok, err := consume(); err != nil || ok {
		return d, err
	}
	req := api.Approval{Principal: caller, Action: egresspolicy.Action, Resource: res, Reason: "denied by " + why}
	if ec != nil {
		req.Owner = ec.owner
	}
	a, created, err := s.approvals.Request(ctx, req)
	if err != nil {
		return egress.Decision{}, err
	}
	if created {
		_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeApproval, Principal: caller, Session: sessionName(p),
			Action: egresspolicy.Action, Resource: res, Outcome: "requested", Reason: req.Reason, Detail: map[string]any{"approval": a.ID}})
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

// substituteSecrets is the egress secret hook: a session may use a secret
// its manifest declares and its agent's owner owns, for the destinations
// the secret allows (https to its hosts and ports; plain http only if it
// allows that), unless a policy forbids it. Using one raises the session's
// confidentiality to secret. The values substituted are scrubbed from the
// response by the proxy.
func (s *security) substituteSecrets(ctx context.Context, caller egress.Caller, req egress.Request, h http.Header) (egress.Substitution, error) {
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
	if rc, _ := ctx.Value(registryCallKey{}).(*registryCall); rc != nil {
		sub, err := s.substituteRegistrySecret(ctx, rc, caller, names, destinationOf(req), h) // tools_registry.go
		return egressSubstitution(sub), err
	}
	ec, _ := ctx.Value(egressCallKey{}).(*egressCall)
	p, err := identity.ParsePrincipal(s.td, caller.ID)
	if err != nil || ec == nil || (p.Kind != identity.KindSession && p.Kind != identity.KindSandbox) {
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
		if !slices.Contains(ec.secrets, n) {
			return deny(n, declared)
		}
		owner, _, exists, err := s.secretOwner(ctx, n)
		if err != nil {
			return egress.Substitution{}, err
		}
		if !exists {
			return deny(n, "no such secret")
		}
		if owner != ec.owner {
			return deny(n, "owned by someone other than the caller's owner")
		}
		d, _, err := s.decide(ctx, p, "secret.use", httpapiSecret(n), nil)
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
	if ec.session != "" {
		if _, err := s.labels.join(ctx, ec.agent, ec.session, policy.Labels{Confidentiality: policy.SecretData},
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

// auditEgress records every egress decision.
func (s *security) auditEgress(ctx context.Context, ev egress.Event) {
	r := ev.Request
	e := api.AuditEvent{Time: ev.Time.UTC(), Type: audit.TypeEgress, Principal: r.Caller.ID, Action: egresspolicy.Action,
		Resource: uidString(egresspolicy.HostUID(r.Host)), Outcome: ev.Outcome, Reason: ev.Reason,
		Detail: map[string]any{"method": r.Method, "scheme": r.Scheme, "port": r.Port, "path": r.Path}}
	if ec, _ := ctx.Value(egressCallKey{}).(*egressCall); ec != nil {
		if ec.session != "" {
			e.Session = ec.agent + "/" + ec.session
		}
		if ec.sandbox != "" {
			e.Detail["sandbox"] = ec.sandbox
		}
		if ec.sandbox != "" && ec.session != "" && ev.Status != 0 {
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

// clientCert presents a session's X.509-SVID to upstream servers.
func (s *security) clientCert(_ context.Context, caller egress.Caller) (*tls.Certificate, error) {
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
func (s *security) taintSession(ctx context.Context, ec *egressCall, host string) {
	if err := s.labelRead(ctx, ec.agent, ec.session, host, "sandbox "+ec.sandbox+" "); err != nil {
		s.log.Warn("label session", "sandbox", ec.sandbox, "err", err)
	}
}

// labelRead moves a session's labels for a response it (or its sandbox,
// named in who) read from host: a host not marked trusted lowers its
// integrity; a host marked private raises its confidentiality to private.
// A list that cannot be read counts against the session (fail closed).
func (s *security) labelRead(ctx context.Context, agent, sess, host, who string) error {
	var l policy.Labels
	var why []string
	trusted, err := s.trustedHosts(ctx)
	if err != nil || !hostpattern.HostAllowed(trusted, host) {
		l.Integrity = policy.Untrusted
		why = append(why, "which is not a trusted host")
	}
	private, err := s.privateHosts(ctx)
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
