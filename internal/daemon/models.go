package daemon

// Model gateway wiring: internal/modelgw over the "models" KV bucket, its
// routes on the API, env.ai for agent code (modelgw.Env), the security part for who calls
// and model.invoke, and every provider call through the egress proxy with
// the API key filled in there (internal/security/models.go).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/modelgw"
	"github.com/agentcloud/agentcloud/internal/modelgw/modelgwhttp"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/store"
)

// startModels builds the model gateway and registers its routes and
// env.ai. Must be called after the router, the proxy and sessions exist.
// maxModelExchange bounds one provider exchange through the egress proxy,
// a streamed completion included.
const maxModelExchange = 30 * time.Minute

func (d *Daemon) startModels(ctx context.Context) error {
	kv, err := d.store.KV(ctx, "models", store.KVOptions{Description: "model providers, token budgets, usage"})
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	node, err := identity.NewID(d.sec.TrustDomain(), identity.KindNode, d.cfg.NodeID)
	if err != nil {
		return fmt.Errorf("models: node identity: %w", err)
	}
	nodeID := node.String()
	proxy := d.proxy
	gw, err := modelgw.New(modelgw.Config{
		KV: kv,
		Do: func(ctx context.Context, out modelgw.Outbound, req *http.Request) (*http.Response, error) {
			// The gateway bounds each attempt and a stream lives as long as
			// its client; the proxy's whole-exchange limit would cut long
			// streams, so it is raised to a generous ceiling here.
			resp, err := proxy.Do(ctx, security.ModelEgressCaller(nodeID, out, maxModelExchange), req)
			if errors.Is(err, egress.ErrDenied) || errors.Is(err, egress.ErrPendingApproval) {
				hint := ""
				if errors.Is(err, egress.ErrForbiddenAddress) && !out.AllowPrivate {
					hint = " (a provider on a private or loopback address needs allow_private: agentcloud models add --allow-private)"
				}
				return nil, api.Errorf(api.KindForbidden, "model provider %s refused by the platform: %v%s", out.Provider, err, hint)
			}
			return resp, err
		},
		Authorize:         d.sec.AuthorizeModel,
		AuthorizeProvider: d.sec.AuthorizeProvider,
		Answered:          d.sec.ModelAnswered,
		CheckSecret:       d.sec.CheckModelSecret,
		Metrics:           d.reg,
		Logger:            d.log.With("component", "models"),
	})
	if err != nil {
		return err
	}
	d.models = gw
	modelgwhttp.New(modelgwhttp.Config{Gateway: gw, Caller: d.sec.ModelCaller}).Routes(d.router)
	d.env["ai"] = modelgw.NewEnv(gw, d.sec.TrustDomain(), d.log.With("component", "models"))
	return nil
}
