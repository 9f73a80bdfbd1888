package modelgw

// env.ai for agent code (env.go): chat and embed through the gateway, as
// the calling session.

import (
	"context"
	"errors"
	"log/slog"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Env is env.ai: the session service "ai" over a Gateway.
type Env struct {
	gw  *Gateway
	td  spiffeid.TrustDomain
	log *slog.Logger
}

var _ session.Service = Env{}

// NewEnv returns env.ai over gw; sessions are named in trust domain td.
func NewEnv(gw *Gateway, td spiffeid.TrustDomain, log *slog.Logger) Env {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return Env{gw: gw, td: td, log: log}
}

// Invoke implements session.Service.
func (a Env) Invoke(ctx context.Context, caller session.Caller, method string, args []byte) ([]byte, error) {
	id, err := identity.NewID(a.td, identity.KindSession, caller.Agent+"/"+caller.Session)
	if err != nil {
		return nil, isolate.HostErrorf("ModelError", "session identity: %w", err)
	}
	c := Caller{Agent: caller.Agent, Session: caller.Session, Principal: id.String()}
	var res *Result
	switch method {
	case "chat":
		res, err = a.gw.Chat(ctx, c, args)
	case "embed":
		res, err = a.gw.Embed(ctx, c, args)
	default:
		return nil, isolate.HostErrorf("NotSupportedError", "env.ai.%s does not exist; use chat or embed", method)
	}
	if err != nil {
		var p *api.Problem
		switch {
		case api.IsKind(err, api.KindBudgetExceeded):
			return nil, isolate.HostErrorf("BudgetExceededError", "%s", api.AsProblem(err).Detail)
		case errors.As(err, &p):
			return nil, isolate.HostErrorf("ModelError", "%s", p.Detail)
		}
		a.log.ErrorContext(ctx, "env.ai", "agent", caller.Agent, "session", caller.Session, "err", err)
		return nil, &isolate.HostError{Name: "ModelError", Message: "internal error (see the daemon log)"}
	}
	return res.Body, nil
}
