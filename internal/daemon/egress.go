package daemon

import (
	"context"
	"fmt"
	"net/http"

	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/secrets"
	"github.com/agentcloud/agentcloud/internal/session"
)

// allowlistKey carries a session's manifest egress list to the decider.
type allowlistKey struct{}

// manifestDecider allows a request only to hosts the calling agent's
// manifest lists. The egress proxy has already refused private, loopback and
// metadata destinations by then.
var manifestDecider = egress.DeciderFunc(func(ctx context.Context, r egress.Request) (egress.Decision, error) {
	allow, _ := ctx.Value(allowlistKey{}).([]string)
	if secrets.HostAllowed(allow, r.Host) {
		return egress.Decision{Verdict: egress.Allow, Reason: "host is in the agent manifest's egress list"}, nil
	}
	return egress.Decision{Verdict: egress.Deny,
		Reason: fmt.Sprintf("host %s is not in the agent manifest's egress list", r.Host)}, nil
})

// sessionFetcher sends session fetch() calls through the egress proxy.
type sessionFetcher struct{ proxy *egress.Proxy }

var _ session.Fetcher = sessionFetcher{}

func (f sessionFetcher) Fetch(ctx context.Context, c session.Caller, req *http.Request) (*http.Response, error) {
	ctx = context.WithValue(ctx, allowlistKey{}, c.Egress)
	return f.proxy.Do(ctx, egress.Caller{ID: "agent/" + c.Agent + "/session/" + c.Session}, req)
}
