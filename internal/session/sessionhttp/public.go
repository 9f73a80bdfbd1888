package sessionhttp

// Public agents (public.go): the sessions an agent's manifest opens to
// anyone, at /public/{agent}/{session}/..., and its A2A agent card at
// /public/{agent}/.well-known/agent-card.json. Both are public routes:
// the front door has scheduled and rate limited the caller (anonymous by
// address, or a verified Web Bot Auth signer) before they run; nothing
// here authenticates.

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/httpapi"
)

// PublicPrefix is where public agents are served. A prefix of its own
// keeps agents' names out of the platform's paths (/v1, /healthz, /ui...).
const PublicPrefix = "/public/"

// CardInfo is what agent cards say beyond the manifest: the front door's
// limits on public callers and the node's Web Bot Auth.
type CardInfo struct {
	// Limits are the rate limits public callers meet.
	Limits []api.CardRateLimit
	// VerifiesWebBotAuth: signed requests are verified and scheduled as
	// their signer.
	VerifiesWebBotAuth bool
	// SignatureDirectory is the node's key directory URL, "" when its
	// agents' outbound requests are not signed.
	SignatureDirectory string
}

// CardFrom reads CardInfo from the node's config: the rate limits that
// apply to anonymous callers and bots (or to every caller), and the Web
// Bot Auth settings.
func CardFrom(cfg config.Config) CardInfo {
	info := CardInfo{VerifiesWebBotAuth: cfg.Gateway.WebBotAuth.Enabled}
	if o := cfg.EgressSignatureAgent; o != "" {
		info.SignatureDirectory = strings.TrimSuffix(o, "/") + "/.well-known/http-message-signatures-directory"
	}
	for _, rl := range cfg.Gateway.Effective().RateLimits {
		var kinds []string
		all := len(rl.Match) == 0
		for _, m := range rl.Match {
			if len(m.Kinds) == 0 {
				all = true
			}
			for _, k := range m.Kinds {
				if (k == "anonymous" || k == "bot") && !slices.Contains(kinds, k) {
					kinds = append(kinds, k)
				}
			}
		}
		if all || len(kinds) > 0 {
			if all {
				kinds = nil
			}
			info.Limits = append(info.Limits, api.CardRateLimit{Name: rl.Name, Quota: rl.Quota,
				WindowSeconds: rl.Window.D().Seconds(), Key: rl.Key, Kinds: kinds})
		}
	}
	return info
}

// publicRoutes registers the public session routes and the agent card.
func (h *Handler) publicRoutes(r *httpapi.Router) {
	traffic := httpapi.Route{Tag: "public", RawContentType: "*/*", Handler: h.handlePublic, AnyQuery: true, Public: true,
		Summary: "Send a request to a session the agent's manifest makes public (public.sessions, public.methods), without a " +
			"platform token; 404 for an agent or session that is not public."}
	for _, p := range []string{PublicPrefix + "{agent}/{session}", PublicPrefix + "{agent}/{session}/{path...}"} {
		traffic.Path = p
		r.Handle(traffic)
	}
	r.Handle(httpapi.Route{Method: "GET", Path: PublicPrefix + "{agent}/.well-known/agent-card.json", Tag: "public", Public: true,
		Summary:  "A public agent's A2A agent card, from its manifest, with the front door's rate limits and Web Bot Auth (ETag).",
		Response: api.AgentCard{}, Handler: h.handleCard})
}

// publicManifest returns the public section of agent's current manifest,
// or the same 404 for an agent that does not exist and one that is not
// public (a caller without a token learns nothing of private agents).
func (h *Handler) publicManifest(ctx context.Context, agent string) (bundle.Manifest, error) {
	info, ok, err := h.m.AgentInfo(ctx, agent)
	if err != nil {
		return bundle.Manifest{}, err
	}
	if !ok || info.Manifest.Public == nil {
		return bundle.Manifest{}, api.Errorf(api.KindNotFound, "no public agent %q", agent)
	}
	return info.Manifest, nil
}

// handlePublic serves a public session's traffic, after checking the
// session and method are ones the manifest opens.
func (h *Handler) handlePublic(w http.ResponseWriter, r *http.Request) error {
	agent, id := r.PathValue("agent"), r.PathValue("session")
	m, err := h.publicManifest(r.Context(), agent)
	if err != nil {
		return err
	}
	pub := m.Public
	if !slices.Contains(pub.Sessions, id) {
		return api.Errorf(api.KindNotFound, "agent %q serves no public session %q", agent, id)
	}
	if !slices.Contains(pub.Methods, r.Method) {
		w.Header().Set("Allow", strings.Join(pub.Methods, ", "))
		return api.Errorf(api.KindMethodNotAllowed, "agent %q serves %s publicly, not %s", agent, strings.Join(pub.Methods, ", "), r.Method)
	}
	// Credentials a caller sent are the front door's business (its
	// traffic class), never the agent's.
	r.Header.Del("Cookie")
	if pub.Cacheable && httpapi.Coalescible(r) {
		// The manifest says a GET's answer does not depend on who asks:
		// identical ones in flight share one call into the session.
		h.public.Do(w, r, httpapi.CoalesceKey(r, ""), func(w http.ResponseWriter) {
			if err := h.handleTraffic(w, r); err != nil {
				httpapi.WriteProblem(w, r, h.log, err)
			}
		})
		return nil
	}
	return h.handleTraffic(w, r)
}

// handleCard serves a public agent's A2A agent card.
func (h *Handler) handleCard(w http.ResponseWriter, r *http.Request) error {
	agent := r.PathValue("agent")
	m, err := h.publicManifest(r.Context(), agent)
	if err != nil {
		return err
	}
	httpapi.WriteJSONConditional(w, r, h.card(r, m))
	return nil
}

// card builds the agent card of m as served to r.
func (h *Handler) card(r *http.Request, m bundle.Manifest) api.AgentCard {
	pub := m.Public
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	base := scheme + "://" + r.Host + PublicPrefix + m.Name + "/"
	desc := m.Description
	if desc == "" {
		desc = "agentcloud agent " + m.Name
	}
	c := api.AgentCard{ProtocolVersion: "0.3.0", Name: m.Name, Description: desc, URL: base + pub.Sessions[0],
		PreferredTransport: "HTTP+JSON", Version: pub.Version,
		DefaultInputModes: []string{"application/json", "text/plain"}, DefaultOutputModes: []string{"application/json", "text/plain"},
		Skills: []api.AgentSkill{}, Security: []map[string][]string{},
		SecuritySchemes: map[string]api.SecurityScheme{
			"platformToken": {Type: "http", Scheme: "bearer", BearerFormat: "JWT",
				Description: "optional: an agentcloud JWT-SVID schedules the caller as itself instead of as anonymous"},
			"mtls": {Type: "mutualTLS", Description: "optional: an agentcloud X.509-SVID, as platformToken"},
		},
	}
	for _, s := range pub.Skills {
		tags := s.Tags
		if tags == nil {
			tags = []string{}
		}
		c.Skills = append(c.Skills, api.AgentSkill{ID: s.ID, Name: s.Name, Description: s.Description, Tags: tags})
	}
	sessions := make([]string, len(pub.Sessions))
	for i, s := range pub.Sessions {
		sessions[i] = base + s
	}
	c.Capabilities.Extensions = []api.AgentExtension{
		{URI: "urn:agentcloud:rate-limits:v1", Description: "the front door's limits on public callers; every answer carries RateLimit " +
			"and RateLimit-Policy, a refusal 429 or 503 with Retry-After",
			Params: map[string]any{"limits": h.cardInfo.Limits, "sessions": sessions, "methods": pub.Methods}},
		{URI: "urn:agentcloud:web-bot-auth:v1", Description: "requests signed with Web Bot Auth (RFC 9421, Signature-Agent) are " +
			"scheduled as their verified signer instead of by address; signature_directory, if set, is the key directory this " +
			"node's agents sign their outbound requests with",
			Params: map[string]any{"verifies_inbound": h.cardInfo.VerifiesWebBotAuth, "signature_directory": h.cardInfo.SignatureDirectory}},
	}
	return c
}

// PublicWaiting is how many public requests wait for an identical one's
// answer in flight.
func (h *Handler) PublicWaiting() int { return h.public.Waiting() }
