package session

import "context"

// Flow moves information-flow labels across calls into sessions. Every
// request that reaches a session through Call (the HTTP route, agent-to-
// agent tool calls) passes it: Enter runs before the request reaches
// session agent/id and an error refuses the request; Leave runs after the
// request ended, whatever its outcome, before anything of it is returned,
// and an error withholds the response. ctx is the caller's: the daemon reads
// who calls from it (httpapi.PrincipalFrom). Calls that no principal makes
// (alarms) pass it too; a Flow ignores them.
type Flow interface {
	Enter(ctx context.Context, agent, id string) error
	Leave(ctx context.Context, agent, id string) error
}
