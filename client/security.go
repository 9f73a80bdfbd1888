package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/agentcloud/agentcloud/api"
)

// CreateToken issues a JWT-SVID for a subject such as "user:alice".
func (c *Client) CreateToken(ctx context.Context, req api.TokenRequest) (*api.Token, error) {
	var t api.Token
	if err := c.Do(ctx, http.MethodPost, "/v1/tokens", req, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// RevokeToken revokes a token (by value, or by id and expiry).
func (c *Client) RevokeToken(ctx context.Context, req api.RevokeRequest) error {
	return c.Do(ctx, http.MethodPost, "/v1/tokens/revoke", req, nil)
}

// IssueIdentity has the CA certify the public key in a CSR for a SPIFFE ID.
func (c *Client) IssueIdentity(ctx context.Context, req api.IdentityRequest) (*api.Identity, error) {
	var id api.Identity
	if err := c.Do(ctx, http.MethodPost, "/v1/identities", req, &id); err != nil {
		return nil, err
	}
	return &id, nil
}

// Policies returns the user policy set in force.
func (c *Client) Policies(ctx context.Context) (*api.PolicySet, error) {
	var ps api.PolicySet
	if err := c.Do(ctx, http.MethodGet, "/v1/policies", nil, &ps); err != nil {
		return nil, err
	}
	return &ps, nil
}

// ApplyPolicies validates and applies a Cedar policy set as the next version.
func (c *Client) ApplyPolicies(ctx context.Context, text string) (*api.PolicySet, error) {
	var ps api.PolicySet
	if err := c.Do(ctx, http.MethodPut, "/v1/policies", api.PolicySet{Text: text}, &ps); err != nil {
		return nil, err
	}
	return &ps, nil
}

// TestPolicy decides a hypothetical request.
func (c *Client) TestPolicy(ctx context.Context, req api.PolicyTestRequest) (*api.PolicyDecision, error) {
	var d api.PolicyDecision
	if err := c.Do(ctx, http.MethodPost, "/v1/policies/test", req, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// TrustedHosts lists the hosts marked trusted.
func (c *Client) TrustedHosts(ctx context.Context) ([]string, error) {
	var th api.TrustedHosts
	if err := c.Do(ctx, http.MethodGet, "/v1/trusted-hosts", nil, &th); err != nil {
		return nil, err
	}
	return th.Hosts, nil
}

// PrivateHosts lists the hosts whose data is private.
func (c *Client) PrivateHosts(ctx context.Context) ([]string, error) {
	var th api.TrustedHosts
	if err := c.Do(ctx, http.MethodGet, "/v1/private-hosts", nil, &th); err != nil {
		return nil, err
	}
	return th.Hosts, nil
}

// SetPrivateHosts replaces the private-data host patterns.
func (c *Client) SetPrivateHosts(ctx context.Context, hosts []string) error {
	_, err := c.ChangePrivateHosts(ctx, hosts)
	return err
}

// SetTrustedHosts replaces the trusted host patterns.
func (c *Client) SetTrustedHosts(ctx context.Context, hosts []string) error {
	_, err := c.ChangeTrustedHosts(ctx, hosts)
	return err
}

// ChangeTrustedHosts replaces the trusted host patterns through a pipeline
// run: the answer names the run and its state (passed: in force; waiting:
// for a review).
func (c *Client) ChangeTrustedHosts(ctx context.Context, hosts []string) (*api.TrustedHosts, error) {
	var out api.TrustedHosts
	if err := c.Do(ctx, http.MethodPut, "/v1/trusted-hosts", api.TrustedHosts{Hosts: hosts}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ChangePrivateHosts is ChangeTrustedHosts for the private-data hosts.
func (c *Client) ChangePrivateHosts(ctx context.Context, hosts []string) (*api.TrustedHosts, error) {
	var out api.TrustedHosts
	if err := c.Do(ctx, http.MethodPut, "/v1/private-hosts", api.TrustedHosts{Hosts: hosts}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetSecret creates or replaces a secret.
func (c *Client) SetSecret(ctx context.Context, name string, req api.SecretRequest) (*api.Secret, error) {
	var s api.Secret
	if err := c.Do(ctx, http.MethodPut, "/v1/secrets/"+url.PathEscape(name), req, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// SetSecretMetadata changes an existing secret's allowed hosts and http
// flag without its value, through a pipeline run (the answer names it).
func (c *Client) SetSecretMetadata(ctx context.Context, name string, m api.SecretMetadata) (*api.Secret, error) {
	var s api.Secret
	if err := c.Do(ctx, http.MethodPut, "/v1/secrets/"+url.PathEscape(name)+"/metadata", m, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Secret returns a secret's metadata.
func (c *Client) Secret(ctx context.Context, name string) (*api.Secret, error) {
	var s api.Secret
	if err := c.Do(ctx, http.MethodGet, "/v1/secrets/"+url.PathEscape(name), nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Secrets lists the secrets the caller may read.
func (c *Client) Secrets(ctx context.Context) ([]api.Secret, error) {
	var l api.SecretList
	if err := c.Do(ctx, http.MethodGet, "/v1/secrets", nil, &l); err != nil {
		return nil, err
	}
	return l.Secrets, nil
}

// DeleteSecret deletes a secret.
func (c *Client) DeleteSecret(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/secrets/"+url.PathEscape(name), nil, nil)
}

// Approvals lists approvals the caller may resolve; status may be "".
func (c *Client) Approvals(ctx context.Context, status string) ([]api.Approval, error) {
	var l api.ApprovalList
	p := "/v1/approvals"
	if status != "" {
		p += "?status=" + url.QueryEscape(status)
	}
	if err := c.Do(ctx, http.MethodGet, p, nil, &l); err != nil {
		return nil, err
	}
	return l.Approvals, nil
}

// ResolveApproval approves or denies a pending approval.
func (c *Client) ResolveApproval(ctx context.Context, id string, approve bool) (*api.Approval, error) {
	verb := "deny"
	if approve {
		verb = "approve"
	}
	var a api.Approval
	if err := c.Do(ctx, http.MethodPost, "/v1/approvals/"+url.PathEscape(id)+"/"+verb, nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// AuditQuery filters the audit stream.
type AuditQuery struct {
	Session string // AGENT/SESSION
	Type    string
	From    uint64
	Limit   int
}

// Audit reads the audit stream.
func (c *Client) Audit(ctx context.Context, q AuditQuery) (*api.AuditList, error) {
	v := url.Values{}
	if q.Session != "" {
		v.Set("session", q.Session)
	}
	if q.Type != "" {
		v.Set("type", q.Type)
	}
	if q.From > 0 {
		v.Set("from", strconv.FormatUint(q.From, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	p := "/v1/audit"
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	var l api.AuditList
	if err := c.Do(ctx, http.MethodGet, p, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// Labels returns a session's labels.
func (c *Client) Labels(ctx context.Context, agent, id string) (*api.Labels, error) {
	p, err := sessionPath(agent, id)
	if err != nil {
		return nil, err
	}
	var l api.Labels
	if err := c.Do(ctx, http.MethodGet, p+"/labels", nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// ResetLabels returns a session's labels to trusted/public (administrators).
func (c *Client) ResetLabels(ctx context.Context, agent, id string) error {
	p, err := sessionPath(agent, id)
	if err != nil {
		return err
	}
	return c.Do(ctx, http.MethodDelete, p+"/labels", nil, nil)
}
