package session

import (
	"context"

	"github.com/agentcloud/agentcloud/internal/isolate"
)

// Remote runs requests in sessions another member of the cluster owns. An
// Owner (Bindings.Owner) that also implements Remote makes Call forward a
// request for a session this node does not own to its owner instead of
// refusing it with 503, so call_agent and every other in-process caller
// reach a session wherever it runs. The caller's node moves the labels
// (Flow) before and after, as for a local call; the owner runs the request
// with CallOwned, which never forwards again. While the session has no
// owner (a hand-off or failover), Remote answers an unavailable problem
// with Retry-After, as a local non-owner would.
type Remote interface {
	CallRemote(ctx context.Context, agent, id string, req isolate.Request) (isolate.Response, error)
}

// run is call here, or on the session's owner through Remote when this
// node does not own it. A streamed call is never forwarded (the HTTP
// forwarder carries those).
func (m *Manager) run(ctx context.Context, agent, id string, req isolate.Request) (isolate.Response, error) {
	if r, ok := m.b.Owner.(Remote); ok && req.Sink == nil {
		if _, mine := m.owns(sessKey{agent, id}); !mine {
			return r.CallRemote(ctx, agent, id, req)
		}
	}
	return m.call(ctx, agent, id, req)
}

// CallOwned runs a request another member forwarded (Remote) in a session
// this node owns, with Call's checks but without moving labels (the
// calling member did) and without forwarding again: a session that moved
// meanwhile answers 503 with Retry-After.
func (m *Manager) CallOwned(ctx context.Context, agent, id string, req isolate.Request) (isolate.Response, error) {
	if len(req.Body) > m.MaxBodyBytes() {
		return isolate.Response{}, BodyTooLarge("request body", m.MaxBodyBytes())
	}
	if err := CheckAddr(agent, id); err != nil {
		return isolate.Response{}, err
	}
	resp, err := m.call(ctx, agent, id, req)
	return resp, storeUnavailable(err)
}
