package api

import "time"

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	// Subject is "user:alice", "agent:bot", "session:bot/s1", "sandbox:x",
	// "node:n1" or a full SPIFFE ID.
	Subject string `json:"subject"`
	// TTL is a Go duration ("24h"); default 1h, at most 24h.
	TTL string `json:"ttl,omitempty"`
	// Audience defaults to ["agentcloud"], the API's own audience.
	Audience []string `json:"audience,omitempty"`
}

// Token is an issued JWT-SVID.
type Token struct {
	Token    string    `json:"token"`
	ID       string    `json:"id"` // jti; what revoke takes
	Subject  string    `json:"subject"`
	Audience []string  `json:"audience"`
	Expires  time.Time `json:"expires"`
	// Chain lists the ids of the tokens this one was minted with (the
	// caller's token first); revoking any of them revokes this one.
	Chain []string `json:"chain,omitempty"`
}

// RevokeRequest is the body of POST /v1/tokens/revoke: either the token
// itself, or its id (Expires is needed only for a token the platform has
// no record of, e.g. one issued before records were kept). Tokens minted
// with the revoked one are refused too.
type RevokeRequest struct {
	Token   string    `json:"token,omitempty"`
	ID      string    `json:"id,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
}

// IdentityRequest is the body of POST /v1/identities: a CSR (PEM) whose
// public key the CA certifies for SPIFFEID. The private key stays with the
// caller.
type IdentityRequest struct {
	SPIFFEID string `json:"spiffe_id"`
	CSR      string `json:"csr"`
	TTL      string `json:"ttl,omitempty"`
}

// Identity is an issued X.509-SVID: the certificate and the trust bundle.
type Identity struct {
	SPIFFEID    string    `json:"spiffe_id"`
	Certificate string    `json:"certificate"` // PEM
	Bundle      string    `json:"bundle"`      // PEM of the CA root
	Expires     time.Time `json:"expires"`
}

// PolicySet is the user policy set in force (GET/PUT /v1/policies).
type PolicySet struct {
	Version uint64    `json:"version"`
	Text    string    `json:"text"`
	Updated time.Time `json:"updated,omitzero"`
	By      string    `json:"by,omitempty"`
	// Run is the pipeline run that applied (or will apply) this set and
	// RunState its state (passed: in force; waiting: for a review).
	Run      string `json:"run,omitempty"`
	RunState string `json:"run_state,omitempty"`
}

// PolicyTestRequest is the body of POST /v1/policies/test.
type PolicyTestRequest struct {
	Principal string `json:"principal"` // as TokenRequest.Subject, or "admin"
	Action    string `json:"action"`
	// Resource is "Type::id", e.g. "Agent::bot", "Host::example.com".
	Resource        string `json:"resource"`
	Integrity       string `json:"integrity,omitempty"`
	Confidentiality string `json:"confidentiality,omitempty"`
}

// PolicyDecision is the answer of POST /v1/policies/test.
type PolicyDecision struct {
	Allowed    bool     `json:"allowed"`
	Approvable bool     `json:"approvable,omitempty"`
	Policies   []string `json:"policies"` // the ids that decided
	Errors     []string `json:"errors,omitempty"`
}

// SecretRequest is the body of PUT /v1/secrets/{name}.
type SecretRequest struct {
	Value string `json:"value"`
	// AllowHosts are where the secret may be sent: "api.example.com",
	// "*.example.com", or with a port, "api.example.com:8443". An entry
	// without a port allows the default port only (443; 80 for http).
	AllowHosts []string `json:"allow_hosts"`
	// AllowHTTP lets the secret go over plain http too (default: https
	// only).
	AllowHTTP bool `json:"allow_http,omitempty"`
}

// Secret is a secret's metadata; values are never returned.
type Secret struct {
	Name       string   `json:"name"`
	AllowHosts []string `json:"allow_hosts"`
	AllowHTTP  bool     `json:"allow_http,omitempty"`
	Owner      string   `json:"owner,omitempty"`
	// Run and RunState name the pipeline run (target secret) that changes
	// the metadata of an existing secret; the value never enters it.
	Run      string `json:"run,omitempty"`
	RunState string `json:"run_state,omitempty"`
}

// SecretMetadata is a secret's metadata without its value: the body of
// PUT /v1/secrets/{name}/metadata and the value of a secret run.
type SecretMetadata struct {
	AllowHosts []string `json:"allow_hosts"`
	AllowHTTP  bool     `json:"allow_http,omitempty"`
}

// SecretList is the body of GET /v1/secrets.
type SecretList struct {
	Secrets []Secret `json:"secrets"`
}

// Approval is a request denied by an approvable policy, waiting for a person.
type Approval struct {
	ID         string    `json:"id"`
	Status     string    `json:"status"` // pending, approved, denied, used
	Principal  string    `json:"principal"`
	Action     string    `json:"action"`
	Resource   string    `json:"resource"`
	Reason     string    `json:"reason"`
	Owner      string    `json:"owner,omitempty"`
	Created    time.Time `json:"created"`
	ResolvedBy string    `json:"resolved_by,omitempty"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
}

// ApprovalList is the body of GET /v1/approvals.
type ApprovalList struct {
	Approvals []Approval `json:"approvals"`
}

// AuditEvent is one record of the audit stream.
type AuditEvent struct {
	Seq       uint64         `json:"seq"`
	Time      time.Time      `json:"time"`
	Type      string         `json:"type"` // auth, decision, label, approval, secret, egress
	Principal string         `json:"principal,omitempty"`
	Session   string         `json:"session,omitempty"` // AGENT/SESSION
	Action    string         `json:"action,omitempty"`
	Resource  string         `json:"resource,omitempty"`
	Outcome   string         `json:"outcome"`
	Reason    string         `json:"reason,omitempty"`
	Detail    map[string]any `json:"detail,omitempty"`
}

// AuditList is the body of GET /v1/audit.
type AuditList struct {
	Events []AuditEvent `json:"events"`
	Next   uint64       `json:"next"` // pass as ?from= to continue
}

// Labels are a session's information-flow labels.
type Labels struct {
	Integrity       string    `json:"integrity"`       // trusted, untrusted
	Confidentiality string    `json:"confidentiality"` // public, private, secret
	Updated         time.Time `json:"updated,omitzero"`
}

// TrustedHosts lists host patterns whose responses do not lower a session's
// integrity and to which a session holding sensitive data may still send.
type TrustedHosts struct {
	Hosts []string `json:"hosts"`
	// Run and RunState name the pipeline run of a change (answers of PUT).
	Run      string `json:"run,omitempty"`
	RunState string `json:"run_state,omitempty"`
}
