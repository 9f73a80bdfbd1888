// Package security is agentcloud's security core: who a caller is, what
// it may do, and what follows from what it did. It owns
//
//   - authentication of API requests: the bootstrap admin token, JWT-SVIDs
//     for the API audience, client X.509-SVIDs; failures are audited with
//     bounded fields and a per-address budget (authn.go);
//   - authorization: Cedar requests built per call with the caller and the
//     resource and their owners from the records (agents, secrets,
//     approvals, sandboxes, registered types), decisions audited
//     (authz.go, sandboxes.go);
//   - the stored policy set, the trusted and private host lists (state.go)
//     and session labels, which move one way under compare-and-set
//     (labels.go) and follow calls between sessions and model calls
//     (flow.go);
//   - egress decisions: the manifest or sandbox egress list AND Cedar
//     egress.fetch, approvable denials, the grant to private addresses, the
//     egress audit and the labels an answer moves (egress.go); the secret
//     hook that fills in {{secret:NAME}} placeholders (egress_secrets.go);
//     the rules of model gateway calls (models.go) and tool registry calls
//     (registry.go);
//   - identities: session SVIDs minted at activation (identity.go), tokens
//     and X.509-SVIDs issued on request (tokens.go), the node and admin
//     certificates (tls.go);
//   - secrets and approvals as resources (secrets.go, approvals.go), and
//     the toolbox's authorizer, auditor and labeler (tools.go).
//
// It does not own the HTTP surface of these (security/securityhttp, which
// adapts Security to the router's Authenticator and Authorizer), the egress
// proxy (internal/egress: Security is its Decider and secret hook), the
// Cedar engine (internal/policy), the CA (internal/identity), secret storage
// (internal/secrets), the audit stream (internal/audit) or the records of
// agents and sandboxes, which it reads through AgentDirectory and
// SandboxDirectory. It does not import the HTTP API packages: a caller is a
// Principal, a resource a Resource, both plain values the router's types
// convert to.
package security
