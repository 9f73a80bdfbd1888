package daemon

// Model gateway wiring: internal/modelgw over the "models" KV bucket, its
// routes on the API, env.ai for agent code, Cedar for model.invoke, and
// every provider call through the egress proxy with the API key filled in
// there from internal/secrets.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/egress/hostpattern"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/modelgw"
	"github.com/agentcloud/agentcloud/internal/modelgw/modelgwhttp"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/secrets"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// modelCallKey marks a context as a model gateway call to one provider;
// the egress decider and secret hook act on it (see modelDecider).
type modelCallKey struct{}

// startModels builds the model gateway and registers its routes and
// env.ai. Must be called after the router, the proxy and sessions exist.
// maxModelExchange bounds one provider exchange through the egress proxy,
// a streamed completion included.
const maxModelExchange = 30 * time.Minute

func (d *Daemon) startModels(ctx context.Context) error {
	kv, err := d.store.KV(ctx, "models", store.KVOptions{Description: "model providers, token budgets, usage"})
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	node, err := identity.NewID(d.sec.td, identity.KindNode, d.cfg.NodeID)
	if err != nil {
		return fmt.Errorf("models: node identity: %w", err)
	}
	nodeID := node.String()
	proxy := d.proxy
	gw, err := modelgw.New(modelgw.Config{
		KV: kv,
		Do: func(ctx context.Context, out modelgw.Outbound, req *http.Request) (*http.Response, error) {
			ctx = context.WithValue(ctx, modelCallKey{}, &out)
			if out.Caller.Agent != "" { // attributes the egress audit record to the session
				ctx = context.WithValue(ctx, egressCallKey{}, &egressCall{agent: out.Caller.Agent, session: out.Caller.Session})
			}
			// The gateway bounds each attempt and a stream lives as long as
			// its client; the proxy's whole-exchange limit would cut long
			// streams, so it is raised to a generous ceiling here.
			ctx = egress.WithTimeout(ctx, maxModelExchange)
			resp, err := proxy.Do(ctx, egress.Caller{ID: nodeID}, req)
			if errors.Is(err, egress.ErrDenied) || errors.Is(err, egress.ErrPendingApproval) {
				hint := ""
				if errors.Is(err, egress.ErrForbiddenAddress) && !out.AllowPrivate {
					hint = " (a provider on a private or loopback address needs allow_private: agentcloud models add --allow-private)"
				}
				return nil, api.Errorf(api.KindForbidden, "model provider %s refused by the platform: %v%s", out.Provider, err, hint)
			}
			return resp, err
		},
		Authorize:         d.sec.authorizeModel,
		AuthorizeProvider: d.sec.authorizeProvider,
		Answered:          d.sec.modelAnswered,
		CheckSecret:       d.sec.checkModelSecret,
		Metrics:           d.reg,
		Logger:            d.log.With("component", "models"),
	})
	if err != nil {
		return err
	}
	d.models = gw
	modelgwhttp.New(modelgwhttp.Config{Gateway: gw, Caller: d.sec.modelCaller}).Routes(d.router)
	d.sessions.SetService("ai", aiService{gw: gw, td: d.sec.td, log: d.log.With("component", "models")})
	return nil
}

// modelCaller attributes an API request: a session SVID is that session of
// its agent, an agent SVID the agent, anyone else themselves (user:NAME).
func (s *security) modelCaller(r *http.Request) (modelgw.Caller, error) {
	hp, ok := httpapi.PrincipalFrom(r.Context())
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

// authorizeModel asks Cedar whether the caller may invoke Model::"model";
// denials are audited (the route's own model.invoke decision on the
// platform is audited by the router).
func (s *security) authorizeModel(ctx context.Context, c modelgw.Caller, model string) error {
	ip, err := identity.ParsePrincipal(s.td, c.Principal)
	if err != nil {
		return api.Errorf(api.KindForbidden, "caller %q is not an identity of this platform", c.Principal)
	}
	d, ruid, err := s.decide(ctx, ip, modelgw.InvokeAction, httpapi.Resource{Type: policy.TypeModel, ID: model}, nil)
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

// checkModelSecret makes sure a provider's key exists and may go to its
// base URL (scheme, host and port, as Secret.Allows decides at each call).
func (s *security) checkModelSecret(ctx context.Context, name string, base *url.URL) error {
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

// modelDecider lets a model gateway call reach exactly its provider's
// host; every other request goes to next. The proxy's address rules
// (no loopback, private or metadata destinations) still apply.
type modelDecider struct{ next egress.Decider }

func (m modelDecider) DecideEgress(ctx context.Context, r egress.Request) (egress.Decision, error) {
	out, _ := ctx.Value(modelCallKey{}).(*modelgw.Outbound)
	if out == nil {
		return m.next.DecideEgress(ctx, r)
	}
	if !hostpattern.Allowed([]string{out.Dest}, r.Host, r.Port) {
		return egress.Decision{Verdict: egress.Deny, Reason: fmt.Sprintf("model gateway: %s:%d is not the destination of provider %s (%s)", r.Host, r.Port, out.Provider, out.Dest)}, nil
	}
	return egress.Decision{Verdict: egress.Allow, Reason: "model gateway: provider " + out.Provider}, nil
}

// modelSecrets fills in a model call's API key: only the provider's own
// secret, only for destinations the secret allows. Other requests go to
// next.
func (s *security) modelSecrets(next egress.SecretHook) egress.SecretHook {
	return func(ctx context.Context, caller egress.Caller, req egress.Request, h http.Header) (egress.Substitution, error) {
		out, _ := ctx.Value(modelCallKey{}).(*modelgw.Outbound)
		if out == nil {
			return next(ctx, caller, req, h)
		}
		for _, vs := range h {
			for _, v := range vs {
				for _, n := range secrets.Placeholders(v) {
					if n != out.Secret {
						return egress.Substitution{}, fmt.Errorf("model gateway: secret %s is not the key of provider %s", n, out.Provider)
					}
				}
			}
		}
		sub, err := s.secrets.Substitute(ctx, destinationOf(req), h)
		outcome, reason := "allow", ""
		if err != nil {
			outcome, reason = "deny", err.Error()
		}
		if out.Secret != "" {
			detail := secretUseDetail(req)
			detail["provider"], detail["for"] = out.Provider, out.Caller.Principal
			_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeSecret, Principal: caller.ID, Action: "secret.use",
				Resource: "Secret::" + out.Secret, Outcome: outcome, Reason: reason, Detail: detail})
		}
		return egressSubstitution(sub), err
	}
}

// aiService is env.ai: chat and embed through the gateway, as the session.
type aiService struct {
	gw  *modelgw.Gateway
	td  spiffeid.TrustDomain
	log *slog.Logger
}

var _ session.Service = aiService{}

func (a aiService) Invoke(ctx context.Context, caller session.Caller, method string, args []byte) ([]byte, error) {
	id, err := identity.NewID(a.td, identity.KindSession, caller.Agent+"/"+caller.Session)
	if err != nil {
		return nil, isolate.HostErrorf("ModelError", "session identity: %w", err)
	}
	c := modelgw.Caller{Agent: caller.Agent, Session: caller.Session, Principal: id.String()}
	var res *modelgw.Result
	switch method {
	case "chat":
		res, err = a.gw.Chat(ctx, c, args)
	case "embed":
		res, err = a.gw.Embed(ctx, c, args)
	default:
		return nil, isolate.HostErrorf("NotSupportedError", "env.ai.%s does not exist; use chat or embed", method)
	}
	if err != nil {
		var p *api.Problem
		switch {
		case api.IsKind(err, api.KindBudgetExceeded):
			return nil, isolate.HostErrorf("BudgetExceededError", "%s", api.AsProblem(err).Detail)
		case errors.As(err, &p):
			return nil, isolate.HostErrorf("ModelError", "%s", p.Detail)
		}
		a.log.ErrorContext(ctx, "env.ai", "agent", caller.Agent, "session", caller.Session, "err", err)
		return nil, &isolate.HostError{Name: "ModelError", Message: "internal error (see the daemon log)"}
	}
	return res.Body, nil
}
