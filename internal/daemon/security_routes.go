package daemon

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/approval"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/secrets"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/session/sessionhttp"
	"github.com/agentcloud/agentcloud/internal/store"
)

func httpapiSecret(name string) httpapi.Resource {
	return httpapi.Resource{Type: policy.TypeSecret, ID: name}
}

func secretRes(r *http.Request) httpapi.Resource { return httpapiSecret(r.PathValue("secret")) }

func approvalRes(r *http.Request) httpapi.Resource {
	return httpapi.Resource{Type: policy.TypeApproval, ID: r.PathValue("approval")}
}

func caller(r *http.Request) httpapi.Principal {
	p, _ := httpapi.PrincipalFrom(r.Context())
	return p
}

// securityRoutes registers the identity, policy, secret, approval and
// audit endpoints.
func (d *Daemon) securityRoutes() {
	s, rt := d.sec, d.router
	const tag = "security"
	rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/tokens", Tag: tag, Summary: "Issue a JWT-SVID bearer token for a subject (user:alice, agent:bot, ...); users may issue tokens for themselves only, no longer-lived than their own.",
		Action: "token.request", Request: api.TokenRequest{}, Response: api.Token{}, Status: http.StatusCreated, Handler: s.handleTokenCreate})
	rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/tokens/revoke", Tag: tag, Summary: "Revoke a token (by value, or by id) and every token minted with it, on every node; users may revoke their own tokens, administrators any.",
		Action: "token.revoke", Request: api.RevokeRequest{}, Status: http.StatusNoContent, Handler: s.handleTokenRevoke})
	rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/identities", Tag: tag, Summary: "Certify a client's public key (CSR) as an X.509-SVID for a SPIFFE ID.",
		Action: "token.create", Request: api.IdentityRequest{}, Response: api.Identity{}, Status: http.StatusCreated, Handler: s.handleIdentityIssue})
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/policies", Tag: tag, Summary: "Show the user policy set in force and its version.",
		Action: "policy.read", Response: api.PolicySet{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			ps, _, err := s.currentPolicies(r.Context())
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, ps)
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "PUT", Path: "/v1/policies", Tag: tag, Summary: "Validate and apply a Cedar user policy set as the next version.",
		Action: "policy.apply", Request: api.PolicySet{}, Response: api.PolicySet{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			var in api.PolicySet
			if err := httpapi.DecodeJSON(r, &in); err != nil {
				return err
			}
			ps, err := s.applyPolicies(r.Context(), in.Text, caller(r).ID)
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, ps)
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/policies/test", Tag: tag, Summary: "Decide a hypothetical request and name the policies that decided it.",
		Action: "policy.apply", Request: api.PolicyTestRequest{}, Response: api.PolicyDecision{}, Handler: s.handlePolicyTest})
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/trusted-hosts", Tag: tag, Summary: "List hosts marked trusted (fetching them keeps a session's integrity).",
		Action: "policy.read", Response: api.TrustedHosts{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			h, err := s.trustedHosts(r.Context())
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, api.TrustedHosts{Hosts: h})
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "PUT", Path: "/v1/trusted-hosts", Tag: tag, Summary: "Replace the list of trusted host patterns.",
		Action: "policy.apply", Request: api.TrustedHosts{}, Response: api.TrustedHosts{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			var in api.TrustedHosts
			if err := httpapi.DecodeJSON(r, &in); err != nil {
				return err
			}
			if err := s.setTrustedHosts(r.Context(), in.Hosts); err != nil {
				return err
			}
			_ = s.audit.Record(r.Context(), api.AuditEvent{Type: audit.TypePolicy, Principal: caller(r).ID, Action: "trusted-hosts.set",
				Outcome: "applied", Detail: map[string]any{"hosts": in.Hosts}})
			httpapi.WriteJSON(w, http.StatusOK, in)
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/private-hosts", Tag: tag, Summary: "List hosts whose data is private (reading them raises a session's confidentiality).",
		Action: "policy.read", Response: api.TrustedHosts{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			h, err := s.privateHosts(r.Context())
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, api.TrustedHosts{Hosts: h})
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "PUT", Path: "/v1/private-hosts", Tag: tag, Summary: "Replace the list of private-data host patterns.",
		Action: "policy.apply", Request: api.TrustedHosts{}, Response: api.TrustedHosts{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			var in api.TrustedHosts
			if err := httpapi.DecodeJSON(r, &in); err != nil {
				return err
			}
			if err := s.setPrivateHosts(r.Context(), in.Hosts); err != nil {
				return err
			}
			_ = s.audit.Record(r.Context(), api.AuditEvent{Type: audit.TypePolicy, Principal: caller(r).ID, Action: "private-hosts.set",
				Outcome: "applied", Detail: map[string]any{"hosts": in.Hosts}})
			httpapi.WriteJSON(w, http.StatusOK, in)
			return nil
		}})
	s.secretRoutes(rt)
	s.approvalRoutes(rt)
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/audit", Tag: tag, Summary: "Read the audit stream (administrators); filter with ?session=A/S&type=&from=&limit=.",
		Query: []httpapi.QueryParam{
			{Name: "session", Description: "only events of this session, written AGENT/SESSION"},
			{Name: "type", Description: "only events of this type"},
			{Name: "from", Type: httpapi.QueryInteger, Description: "start at this sequence number (the next of a previous page)"},
			{Name: "limit", Type: httpapi.QueryInteger, Description: "at most this many events"},
		},
		Response: api.AuditList{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			q := r.URL.Query()
			from, _ := strconv.ParseUint(q.Get("from"), 10, 64)
			limit, _ := strconv.Atoi(q.Get("limit"))
			evs, next, err := s.audit.List(r.Context(), audit.Filter{From: from, Limit: limit, Type: q.Get("type"), Session: q.Get("session")})
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, api.AuditList{Events: evs, Next: next})
			return nil
		}})
	labels := "/v1/agents/{agent}/sessions/{session}/labels"
	rt.Handle(httpapi.Route{Method: "GET", Path: labels, Tag: tag, Summary: "Show a session's integrity and confidentiality labels.",
		Action: session.ActionSessionRead, Resource: sessionhttp.SessionResource, Response: api.Labels{},
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			l, err := s.labels.get(r.Context(), r.PathValue("agent"), r.PathValue("session"))
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, api.Labels{Integrity: l.Integrity.String(), Confidentiality: l.Confidentiality.String()})
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "DELETE", Path: labels, Tag: tag, Summary: "Reset a session's labels to trusted/public (administrators).",
		Status: http.StatusNoContent, Handler: func(w http.ResponseWriter, r *http.Request) error {
			if err := s.labels.reset(r.Context(), r.PathValue("agent"), r.PathValue("session"), caller(r).ID); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}})
}

func (s *security) handleTokenCreate(w http.ResponseWriter, r *http.Request) error {
	var in api.TokenRequest
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	p, err := s.parseSubject(in.Subject)
	if err != nil {
		return api.FieldErrorf(api.KindValidation, "subject", "%v", err)
	}
	ttl := defaultTokenTTL
	if in.TTL != "" {
		if ttl, err = time.ParseDuration(in.TTL); err != nil || ttl <= 0 || ttl > maxTokenTTL {
			return api.FieldErrorf(api.KindValidation, "ttl", "ttl %q: want a duration from 1s to %s", in.TTL, maxTokenTTL)
		}
	}
	parent, hasParent := s.callerToken(r)
	var chain []string
	if hasParent {
		if chain, err = parent.Lineage(); err != nil {
			return api.Errorf(api.KindForbidden, "%v: mint new tokens with a token closer to the one an administrator issued", err)
		}
	}
	if ttl, err = s.mayIssue(r, p, ttl, parent, hasParent); err != nil {
		return err
	}
	aud := in.Audience
	if len(aud) == 0 {
		aud = []string{APIAudience}
	}
	tok, jti, err := s.ca.IssueJWT(p.ID, aud, ttl, chain...)
	if err != nil {
		return err
	}
	out := api.Token{Token: tok, ID: jti, Subject: p.ID.String(), Audience: aud, Expires: s.now().Add(ttl).UTC().Truncate(time.Second), Chain: chain}
	// Kept until the token expires, so it can be revoked by id alone, by
	// those it belongs to, for its whole life.
	if err := s.revoker.RecordIssued(r.Context(), identity.Issued{ID: jti, Subject: out.Subject, Minter: caller(r).ID,
		Expires: s.now().Add(ttl).UTC(), Chain: chain}); err != nil {
		return err
	}
	detail := map[string]any{"jti": jti, "audience": aud, "expires": out.Expires}
	if len(chain) > 0 {
		detail["chain"] = chain
	}
	_ = s.audit.Record(r.Context(), api.AuditEvent{Type: audit.TypeToken, Principal: caller(r).ID, Action: "token.create",
		Resource: out.Subject, Outcome: "issued", Detail: detail})
	httpapi.WriteJSON(w, http.StatusCreated, out)
	return nil
}

// callerToken returns the JWT-SVID the request authenticated with, if it
// did (not a client certificate, not the bootstrap token).
func (s *security) callerToken(r *http.Request) (identity.Token, bool) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return identity.Token{}, false
	}
	tok := bearer(r)
	if tok == "" || strings.HasPrefix(tok, "acb_") {
		return identity.Token{}, false
	}
	t, err := s.ca.ReadJWT(tok)
	if err != nil {
		return identity.Token{}, false
	}
	return t, true
}

// mayIssue lets administrators issue any token; anyone else a token for
// themselves (Cedar token.create on their own entity, policy
// user-self-token) that expires no later than the credential they called
// with, so a token cannot be renewed past its own life by minting another.
// A token minted with a token never outlives it, administrators' too: its
// chain names that token, and a revocation is kept only until the revoked
// token's own expiry. It returns the ttl to use.
func (s *security) mayIssue(r *http.Request, subject identity.Principal, ttl time.Duration, parent identity.Token, hasParent bool) (time.Duration, error) {
	c := caller(r)
	var until time.Time
	if hasParent {
		until = parent.Expiry
	}
	if c.Kind != string(identity.KindAdmin) {
		uid := policy.PrincipalUID(subject)
		res := httpapi.Resource{Type: string(uid.Type), ID: string(uid.ID)}
		if err := s.Authorize(r.Context(), c, "token.create", res); err != nil {
			return 0, api.Errorf(api.KindForbidden, "%s may create tokens only for itself (subject %s); administrators may create any", c.ID, c.ID)
		}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			until = r.TLS.PeerCertificates[0].NotAfter
		}
	}
	if left := until.Sub(s.now()); !until.IsZero() && left < ttl {
		if left < time.Second {
			return 0, api.Errorf(api.KindUnauthenticated, "the credential you called with is about to expire: ask an administrator for a new one")
		}
		ttl = left.Truncate(time.Second)
	}
	return ttl, nil
}

// handleTokenRevoke revokes a token, given by value or by id; every token
// minted with it is refused from then on (its chain names it). Users may
// revoke tokens issued to them or at their request; administrators any.
func (s *security) handleTokenRevoke(w http.ResponseWriter, r *http.Request) error {
	var in api.RevokeRequest
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	ctx, c := r.Context(), caller(r)
	var jti, subject string
	exp := in.Expires
	switch {
	case in.Token != "":
		t, err := s.ca.ReadJWT(in.Token)
		if err != nil {
			return api.FieldErrorf(api.KindValidation, "token", "cannot revoke: %v", err)
		}
		jti, exp, subject = t.ID, t.Expiry, t.Principal.ID.String()
	case in.ID != "":
		if p := api.CheckID("id", api.IDToken, in.ID); p != nil {
			return p
		}
		jti = in.ID
	default:
		return api.FieldErrorf(api.KindValidation, "id", "give the token, or its id")
	}
	rec, found, err := s.revoker.Issued(ctx, jti)
	if err != nil {
		return err
	}
	if found {
		if rec.Expires.After(exp) {
			exp = rec.Expires // keep the revocation for the token's whole life
		}
		if subject == "" {
			subject = rec.Subject
		}
	}
	if c.Kind != string(identity.KindAdmin) {
		mine := subject == c.ID || found && (rec.Subject == c.ID || rec.Minter == c.ID)
		if !mine {
			_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeToken, Principal: c.ID, Action: "token.revoke",
				Outcome: "deny", Reason: "not the caller's token", Detail: map[string]any{"jti": jti}})
			return api.Errorf(api.KindForbidden, "%s may revoke only tokens issued to it or at its request (and, with them, the tokens minted from them); administrators may revoke any", c.ID)
		}
	}
	if exp.IsZero() {
		exp = s.now().Add(maxTokenTTL)
	}
	if err := s.revoker.Revoke(ctx, jti, exp); err != nil {
		return err
	}
	_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeToken, Principal: c.ID, Action: "token.revoke",
		Resource: subject, Outcome: "revoked", Detail: map[string]any{"jti": jti, "until": exp.UTC()}})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *security) handleIdentityIssue(w http.ResponseWriter, r *http.Request) error {
	var in api.IdentityRequest
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	p, err := s.parseSubject(in.SPIFFEID)
	if err != nil {
		return api.FieldErrorf(api.KindValidation, "spiffe_id", "%v", err)
	}
	blk, _ := pem.Decode([]byte(in.CSR))
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return api.FieldErrorf(api.KindValidation, "csr", "want a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return api.FieldErrorf(api.KindValidation, "csr", "parse: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return api.FieldErrorf(api.KindValidation, "csr", "signature: %v (the CSR proves possession of the key)", err)
	}
	ttl := identity.DefaultX509TTL
	if in.TTL != "" {
		if ttl, err = time.ParseDuration(in.TTL); err != nil || ttl <= 0 || ttl > maxTokenTTL {
			return api.FieldErrorf(api.KindValidation, "ttl", "ttl %q: want a duration from 1s to %s", in.TTL, maxTokenTTL)
		}
	}
	cert, err := s.ca.SignX509SVID(p.ID, csr.PublicKey, ttl)
	if err != nil {
		return err
	}
	out := api.Identity{SPIFFEID: p.ID.String(), Expires: cert.NotAfter.UTC(),
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		Bundle:      string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ca.Certificate().Raw}))}
	_ = s.audit.Record(r.Context(), api.AuditEvent{Type: audit.TypeToken, Principal: caller(r).ID, Action: "identity.issue",
		Resource: out.SPIFFEID, Outcome: "issued", Detail: map[string]any{"expires": out.Expires}})
	httpapi.WriteJSON(w, http.StatusCreated, out)
	return nil
}

func (s *security) handlePolicyTest(w http.ResponseWriter, r *http.Request) error {
	var in api.PolicyTestRequest
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	p, err := s.parseSubject(in.Principal)
	if err != nil {
		return api.FieldErrorf(api.KindValidation, "principal", "%v", err)
	}
	typ, id, ok := strings.Cut(in.Resource, "::")
	if in.Resource == "" {
		typ, id, ok = "", "", true
	}
	if !ok {
		return api.FieldErrorf(api.KindValidation, "resource", "want Type::id, e.g. Agent::bot or Host::example.com")
	}
	id = strings.Trim(id, `"`)
	res := httpapi.Resource{Type: typ, ID: id}
	if typ == policy.TypeSession {
		res.Parent, res.ID, _ = strings.Cut(id, "/")
	}
	if typ == policy.TypePlatform {
		res = httpapi.Resource{}
	}
	var override *policy.Labels
	if in.Integrity != "" || in.Confidentiality != "" {
		var l policy.Labels
		if in.Integrity != "" {
			if l.Integrity, err = policy.ParseIntegrity(in.Integrity); err != nil {
				return api.FieldErrorf(api.KindValidation, "integrity", "%v", err)
			}
		}
		if in.Confidentiality != "" {
			if l.Confidentiality, err = policy.ParseConfidentiality(in.Confidentiality); err != nil {
				return api.FieldErrorf(api.KindValidation, "confidentiality", "%v", err)
			}
		}
		override = &l
	}
	d, _, err := s.decide(r.Context(), p, in.Action, res, override)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, api.PolicyDecision{Allowed: d.Allowed, Approvable: d.Approvable,
		Policies: append([]string{}, d.Reasons...), Errors: d.Errors})
	return nil
}

// maxSecretHosts bounds a secret's allow_hosts list.
const maxSecretHosts = 64

func (s *security) secretRoutes(rt *httpapi.Router) {
	const tag = "security"
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/secrets", Tag: tag, Summary: "List secrets the caller may read (names and allowed hosts, never values).",
		Action: "secret.list", Response: api.SecretList{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			names, err := s.secretNames(r)
			if err != nil {
				return err
			}
			out := api.SecretList{Secrets: []api.Secret{}}
			for _, n := range names {
				if s.Authorize(session.Filtering(r.Context()), caller(r), "secret.read", httpapiSecret(n)) != nil {
					continue
				}
				if sec, err := s.describeSecret(r, n); err == nil {
					out.Secrets = append(out.Secrets, sec)
				}
			}
			httpapi.WriteJSON(w, http.StatusOK, out)
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/secrets/{secret}", Tag: tag, Summary: "Show a secret's metadata (never its value).",
		Action: "secret.read", Resource: secretRes, Response: api.Secret{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			sec, err := s.describeSecret(r, r.PathValue("secret"))
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, sec)
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "PUT", Path: "/v1/secrets/{secret}", Tag: tag, Summary: "Create or replace a secret (AES-256-GCM at rest) and the hosts it may be sent to.",
		Action: "secret.set", Resource: secretRes, Request: api.SecretRequest{}, Response: api.Secret{},
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			var in api.SecretRequest
			if err := httpapi.DecodeJSON(r, &in); err != nil {
				return err
			}
			name := r.PathValue("secret")
			if len(in.AllowHosts) == 0 {
				return api.FieldErrorf(api.KindValidation, "allow_hosts", "name at least one host the secret may be sent to (--allow-host)")
			}
			if len(in.AllowHosts) > maxSecretHosts {
				return api.FieldErrorf(api.KindValidation, "allow_hosts", "%d entries: at most %d", len(in.AllowHosts), maxSecretHosts)
			}
			for i, h := range in.AllowHosts {
				if _, err := secrets.ParseAllowHost(h); err != nil {
					return api.FieldErrorf(api.KindValidation, fmt.Sprintf("allow_hosts[%d]", i), "%v", err)
				}
			}
			def := secrets.Secret{Name: name, AllowHosts: in.AllowHosts, AllowHTTP: in.AllowHTTP}
			err := s.secrets.Set(r.Context(), def, []byte(in.Value))
			if errors.Is(err, secrets.ErrInvalidName) {
				return api.FieldErrorf(api.KindValidation, "name", "secret names are 1-128 characters of A-Z a-z 0-9 _ . -")
			}
			if err != nil {
				return err
			}
			if _, err := s.kv.Create(r.Context(), secretOwnerKey(name), []byte(caller(r).ID)); err != nil && !errors.Is(err, store.ErrExists) {
				return err
			}
			_ = s.audit.Record(r.Context(), api.AuditEvent{Type: audit.TypeSecret, Principal: caller(r).ID, Action: "secret.set",
				Resource: "Secret::" + name, Outcome: "set", Detail: map[string]any{"allow_hosts": in.AllowHosts, "allow_http": in.AllowHTTP}})
			sec, err := s.describeSecret(r, name)
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, sec)
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "DELETE", Path: "/v1/secrets/{secret}", Tag: tag, Summary: "Delete a secret.",
		Action: "secret.set", Resource: secretRes, Status: http.StatusNoContent, Handler: func(w http.ResponseWriter, r *http.Request) error {
			name := r.PathValue("secret")
			if err := s.secrets.Delete(r.Context(), name); err != nil {
				return err
			}
			if err := s.kv.Delete(r.Context(), secretOwnerKey(name)); err != nil {
				return err
			}
			_ = s.audit.Record(r.Context(), api.AuditEvent{Type: audit.TypeSecret, Principal: caller(r).ID, Action: "secret.delete",
				Resource: "Secret::" + name, Outcome: "deleted"})
			w.WriteHeader(http.StatusNoContent)
			return nil
		}})
}

func (s *security) secretNames(r *http.Request) ([]string, error) {
	// The Manager has no List; the names are the owner records.
	keys, err := s.kv.Keys(r.Context(), "secret-owner")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range keys {
		parts, err := store.KeyParts(k)
		if err == nil && len(parts) == 2 {
			out = append(out, parts[1])
		}
	}
	slices.Sort(out)
	return out, nil
}

func (s *security) describeSecret(r *http.Request, name string) (api.Secret, error) {
	owner, meta, ok, err := s.secretOwner(r.Context(), name)
	if err != nil {
		return api.Secret{}, err
	}
	if !ok {
		return api.Secret{}, api.Errorf(api.KindNotFound, "secret %q does not exist: create it with agentcloud secret set", name)
	}
	return api.Secret{Name: meta.Name, AllowHosts: meta.AllowHosts, AllowHTTP: meta.AllowHTTP, Owner: owner}, nil
}

func (s *security) approvalRoutes(rt *httpapi.Router) {
	const tag = "security"
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/approvals", Tag: tag, Summary: "List approvals the caller may resolve (?status=pending).",
		Query:  []httpapi.QueryParam{{Name: "status", Description: "only approvals in this state: pending, approved or denied"}},
		Action: "approval.list", Response: api.ApprovalList{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			all, err := s.approvals.List(r.Context(), r.URL.Query().Get("status"))
			if err != nil {
				return err
			}
			out := api.ApprovalList{Approvals: []api.Approval{}}
			for _, a := range all {
				if s.canResolve(r, a) {
					out.Approvals = append(out.Approvals, a)
				}
			}
			httpapi.WriteJSON(w, http.StatusOK, out)
			return nil
		}})
	for _, verb := range []string{"approve", "deny"} {
		approve := verb == "approve"
		rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/approvals/{approval}/" + verb, Tag: tag,
			Summary: map[bool]string{true: "Approve a pending request: its next retry goes through once.", false: "Deny a pending request."}[approve],
			Action:  "approval.resolve", Resource: approvalRes, Response: api.Approval{},
			Handler: func(w http.ResponseWriter, r *http.Request) error {
				a, err := s.approvals.Resolve(r.Context(), r.PathValue("approval"), approve, caller(r).ID)
				switch {
				case errors.Is(err, approval.ErrNotFound):
					return api.Errorf(api.KindNotFound, "approval %s does not exist", r.PathValue("approval"))
				case errors.Is(err, approval.ErrResolved):
					return api.Errorf(api.KindConflict, "%v", err)
				case err != nil:
					return err
				}
				_ = s.audit.Record(r.Context(), api.AuditEvent{Type: audit.TypeApproval, Principal: caller(r).ID, Action: a.Action,
					Resource: a.Resource, Outcome: a.Status, Reason: "approval " + a.ID + " for " + a.Principal,
					Detail: map[string]any{"approval": a.ID, "approver": caller(r).ID}})
				httpapi.WriteJSON(w, http.StatusOK, a)
				return nil
			}})
	}
}

// canResolve filters approval lists without auditing each probe.
func (s *security) canResolve(r *http.Request, a api.Approval) bool {
	p := caller(r)
	if p.Kind == string(identity.KindAdmin) {
		return true
	}
	ip, err := s.principalOf(p)
	if err != nil {
		return false
	}
	d, _, err := s.decide(r.Context(), ip, "approval.resolve", httpapi.Resource{Type: policy.TypeApproval, ID: a.ID}, nil)
	return err == nil && d.Allowed
}
