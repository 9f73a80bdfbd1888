package session

import "context"

// Authorization actions on agents and sessions (Cedar action names, except
// ActionAgentList, which any principal may ask: the answer is filtered).
// The HTTP routes (sessionhttp) and the built-in tools ask them.
const (
	ActionAgentDeploy   = "agent.deploy"
	ActionAgentRead     = "agent.read"
	ActionAgentDelete   = "agent.delete"
	ActionAgentList     = "agent.list"
	ActionSessionCall   = "session.call"
	ActionSessionRead   = "session.read"
	ActionSessionDelete = "session.delete"
)

// Principal is who asks for a deploy: ID is stable ("admin", a SPIFFE
// ID), Kind is admin, user, agent, session, sandbox or node. The zero
// value is nobody.
type Principal struct {
	ID   string
	Kind string
}

// DeployAuthorizer decides whether p may deploy (ActionAgentDeploy) the
// agent named; an error (an api.KindForbidden problem) refuses. Deploy asks
// it inside its compare-and-set: ctx pins the agent record the decision is
// about, so an authorizer that looks the agent up through
// Manager.AgentInfo with that ctx sees the revision being replaced.
type DeployAuthorizer interface {
	AuthorizeDeploy(ctx context.Context, p Principal, agent string) error
}

type filteringKey struct{}

// Filtering marks ctx as filtering a listing: an authorizer asked under it
// is checking items one by one for the caller, and need not audit each
// denial as an attempt.
func Filtering(ctx context.Context) context.Context {
	return context.WithValue(ctx, filteringKey{}, true)
}

// IsFiltering reports whether ctx was marked by Filtering.
func IsFiltering(ctx context.Context) bool { return ctx.Value(filteringKey{}) != nil }
