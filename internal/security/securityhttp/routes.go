package securityhttp

import (
	"context"
	"net/http"
	"strconv"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/session"
)

const tag = "security"

func secretRes(r *http.Request) httpapi.Resource {
	return httpapi.Resource{Type: policy.TypeSecret, ID: r.PathValue("secret")}
}

func approvalRes(r *http.Request) httpapi.Resource {
	return httpapi.Resource{Type: policy.TypeApproval, ID: r.PathValue("approval")}
}

func sessionRes(r *http.Request) httpapi.Resource {
	return httpapi.Resource{Type: policy.TypeSession, ID: r.PathValue("session"), Parent: r.PathValue("agent")}
}

// Routes registers the identity, policy, secret, approval, audit and label
// endpoints of s on rt. With changes, a change of the policy set or of the
// trusted or private hosts is a pipeline run (changes.go).
func Routes(rt *httpapi.Router, s *security.Security, changes Changes) {
	identityRoutes(rt, s)
	policyRoutes(rt, s, changes)
	secretRoutes(rt, s, changes)
	approvalRoutes(rt, s)
	keyDirectoryRoute(rt, s) // frontdoor.go
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
			evs, next, err := s.Audit().List(r.Context(), audit.Filter{From: from, Limit: limit, Type: q.Get("type"), Session: q.Get("session")})
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, api.AuditList{Events: evs, Next: next})
			return nil
		}})
	labels := "/v1/agents/{agent}/sessions/{session}/labels"
	rt.Handle(httpapi.Route{Method: "GET", Path: labels, Tag: tag, Summary: "Show a session's integrity and confidentiality labels.",
		Action: session.ActionSessionRead, Resource: sessionRes, Response: api.Labels{},
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			l, err := s.Labels(r.Context(), r.PathValue("agent"), r.PathValue("session"))
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, l)
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "DELETE", Path: labels, Tag: tag, Summary: "Reset a session's labels to trusted/public (administrators).",
		Status: http.StatusNoContent, Handler: func(w http.ResponseWriter, r *http.Request) error {
			if err := s.ResetLabels(r.Context(), r.PathValue("agent"), r.PathValue("session"), caller(r).ID); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}})
}

func identityRoutes(rt *httpapi.Router, s *security.Security) {
	rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/tokens", Tag: tag, Summary: "Issue a JWT-SVID bearer token for a subject (user:alice, agent:bot, ...); users may issue tokens for themselves only, no longer-lived than their own.",
		Action: "token.request", Request: api.TokenRequest{}, Response: api.Token{}, Status: http.StatusCreated,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			var in api.TokenRequest
			if err := httpapi.DecodeJSON(r, &in); err != nil {
				return err
			}
			out, err := s.IssueToken(r.Context(), caller(r), security.CredentialOf(r), in)
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusCreated, out)
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/tokens/revoke", Tag: tag, Summary: "Revoke a token (by value, or by id) and every token minted with it, on every node; users may revoke their own tokens, administrators any.",
		Action: "token.revoke", Request: api.RevokeRequest{}, Status: http.StatusNoContent,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			var in api.RevokeRequest
			if err := httpapi.DecodeJSON(r, &in); err != nil {
				return err
			}
			if err := s.RevokeToken(r.Context(), caller(r), in); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/identities", Tag: tag, Summary: "Certify a client's public key (CSR) as an X.509-SVID for a SPIFFE ID.",
		Action: "token.create", Request: api.IdentityRequest{}, Response: api.Identity{}, Status: http.StatusCreated,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			var in api.IdentityRequest
			if err := httpapi.DecodeJSON(r, &in); err != nil {
				return err
			}
			out, err := s.IssueIdentity(r.Context(), caller(r), in)
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusCreated, out)
			return nil
		}})
}

func policyRoutes(rt *httpapi.Router, s *security.Security, changes Changes) {
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/policies", Tag: tag, Summary: "Show the user policy set in force and its version.",
		Action: "policy.read", Response: api.PolicySet{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			ps, err := s.Policies(r.Context())
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, ps)
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "PUT", Path: "/v1/policies", Tag: tag, Summary: "Validate and apply a Cedar user policy set as the next version, through a pipeline run: " + changeStatuses,
		Action: "policy.apply", Request: api.PolicySet{}, Response: api.PolicySet{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			var in api.PolicySet
			if err := httpapi.DecodeJSON(r, &in); err != nil {
				return err
			}
			if changes != nil {
				return changePolicies(w, r, s, changes, in.Text)
			}
			ps, err := s.ApplyPolicies(r.Context(), in.Text, caller(r).ID)
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, ps)
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/policies/test", Tag: tag, Summary: "Decide a hypothetical request and name the policies that decided it.",
		Action: "policy.apply", Request: api.PolicyTestRequest{}, Response: api.PolicyDecision{},
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			var in api.PolicyTestRequest
			if err := httpapi.DecodeJSON(r, &in); err != nil {
				return err
			}
			out, err := s.TryPolicy(r.Context(), in)
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, out)
			return nil
		}})
	hostList(rt, "/v1/trusted-hosts", "List hosts marked trusted (fetching them keeps a session's integrity).",
		"Replace the list of trusted host patterns", s.TrustedHosts, s.SetTrustedHosts, changes, api.ConfigTrustedHosts)
	hostList(rt, "/v1/private-hosts", "List hosts whose data is private (reading them raises a session's confidentiality).",
		"Replace the list of private-data host patterns", s.PrivateHosts, s.SetPrivateHosts, changes, api.ConfigPrivateHosts)
}

// hostList registers GET and PUT of one host-pattern list (PUT through a
// pipeline run of target when changes is set).
func hostList(rt *httpapi.Router, path, getSummary, putSummary string,
	get func(ctx context.Context) ([]string, error), set func(ctx context.Context, hosts []string, by string) error,
	changes Changes, target string) {
	putSummary += ", through a pipeline run: " + changeStatuses
	rt.Handle(httpapi.Route{Method: "GET", Path: path, Tag: tag, Summary: getSummary,
		Action: "policy.read", Response: api.TrustedHosts{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			h, err := get(r.Context())
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, api.TrustedHosts{Hosts: h})
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "PUT", Path: path, Tag: tag, Summary: putSummary,
		Action: "policy.apply", Request: api.TrustedHosts{}, Response: api.TrustedHosts{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			var in api.TrustedHosts
			if err := httpapi.DecodeJSON(r, &in); err != nil {
				return err
			}
			if changes != nil {
				return changeHosts(w, r, changes, target, in.Hosts)
			}
			if err := set(r.Context(), in.Hosts, caller(r).ID); err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, in)
			return nil
		}})
}

func secretRoutes(rt *httpapi.Router, s *security.Security, changes Changes) {
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/secrets", Tag: tag, Summary: "List secrets the caller may read (names and allowed hosts, never values).",
		Action: "secret.list", Response: api.SecretList{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			list, err := s.ListSecrets(r.Context(), caller(r))
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, api.SecretList{Secrets: list})
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/secrets/{secret}", Tag: tag, Summary: "Show a secret's metadata (never its value).",
		Action: "secret.read", Resource: secretRes, Response: api.Secret{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			sec, err := s.DescribeSecret(r.Context(), r.PathValue("secret"))
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, sec)
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "PUT", Path: "/v1/secrets/{secret}", Tag: tag, Summary: "Create a secret (AES-256-GCM at rest) and the hosts it may be sent to, or replace an existing one's value; a change of an existing one's hosts is a pipeline run without the value (202 with the run).",
		Action: "secret.set", Resource: secretRes, Request: api.SecretRequest{}, Response: api.Secret{},
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			var in api.SecretRequest
			if err := httpapi.DecodeJSON(r, &in); err != nil {
				return err
			}
			if changes != nil {
				return putSecret(w, r, s, changes, in)
			}
			sec, err := s.SetSecret(r.Context(), caller(r).ID, r.PathValue("secret"), in)
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, sec)
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "PUT", Path: "/v1/secrets/{secret}/metadata", Tag: tag,
		Summary: "Change an existing secret's allowed hosts and http flag, without its value, through a pipeline run: " + changeStatuses,
		Action:  "secret.set", Resource: secretRes, Request: api.SecretMetadata{}, Response: api.Secret{},
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			var in api.SecretMetadata
			if err := httpapi.DecodeJSON(r, &in); err != nil {
				return err
			}
			if changes == nil {
				if err := s.SetSecretMetadata(r.Context(), caller(r).ID, r.PathValue("secret"), in); err != nil {
					return err
				}
				sec, err := s.DescribeSecret(r.Context(), r.PathValue("secret"))
				if err != nil {
					return err
				}
				httpapi.WriteJSON(w, http.StatusOK, sec)
				return nil
			}
			return changeSecret(w, r, s, changes, in, nil)
		}})
	rt.Handle(httpapi.Route{Method: "DELETE", Path: "/v1/secrets/{secret}", Tag: tag, Summary: "Delete a secret.",
		Action: "secret.set", Resource: secretRes, Status: http.StatusNoContent, Handler: func(w http.ResponseWriter, r *http.Request) error {
			if err := s.DeleteSecret(r.Context(), caller(r).ID, r.PathValue("secret")); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}})
}

func approvalRoutes(rt *httpapi.Router, s *security.Security) {
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/approvals", Tag: tag, Summary: "List approvals the caller may resolve (?status=pending).",
		Query:  []httpapi.QueryParam{{Name: "status", Description: "only approvals in this state: pending, approved or denied"}},
		Action: "approval.list", Response: api.ApprovalList{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			list, err := s.ListApprovals(r.Context(), caller(r), r.URL.Query().Get("status"))
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, api.ApprovalList{Approvals: list})
			return nil
		}})
	for _, verb := range []string{"approve", "deny"} {
		approve := verb == "approve"
		rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/approvals/{approval}/" + verb, Tag: tag,
			Summary: map[bool]string{true: "Approve a pending request: its next retry goes through once.", false: "Deny a pending request."}[approve],
			Action:  "approval.resolve", Resource: approvalRes, Response: api.Approval{},
			Handler: func(w http.ResponseWriter, r *http.Request) error {
				a, err := s.ResolveApproval(r.Context(), caller(r), r.PathValue("approval"), approve)
				if err != nil {
					return err
				}
				httpapi.WriteJSON(w, http.StatusOK, a)
				return nil
			}})
	}
}
