package security

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/toolbox/registry"
)

// RegistryDoer is the tool registry's Doer: it sends an upstream request
// through proxy as spiffe://TD/node/tool-registry: only to the upstream's
// hosts, with its
// credential's placeholder filled in by the secret hook (and, for a query
// parameter, here), audited. A secret value the upstream echoes back is
// scrubbed (secrets.Scrubber) before anyone reads it.
func (s *Security) RegistryDoer(proxy *egress.Proxy) func(context.Context, registry.Upstream, *http.Request) (*http.Response, error) {
	return func(ctx context.Context, up registry.Upstream, req *http.Request) (*http.Response, error) {
		return s.registryDo(ctx, proxy, up, req)
	}
}

func (s *Security) registryDo(ctx context.Context, proxy *egress.Proxy, up registry.Upstream, req *http.Request) (*http.Response, error) {
	rc := &RegistryCall{Upstream: up.Name, Hosts: up.Hosts, AllowPrivate: up.AllowPrivate}
	if up.Credential != nil {
		rc.Secret = up.Credential.Secret
	}
	caller, err := s.RegistryCaller(rc)
	if err != nil {
		return nil, err
	}
	if strings.Contains(req.URL.RawQuery, "secret") {
		if err := s.SubstituteRegistryQuery(ctx, rc, caller, req); err != nil {
			return nil, err
		}
	}
	resp, err := proxy.Do(ctx, caller, req)
	if errors.Is(err, egress.ErrDenied) || errors.Is(err, egress.ErrPendingApproval) {
		if errors.Is(err, egress.ErrForbiddenAddress) && !up.AllowPrivate {
			return nil, api.Errorf(api.KindForbidden, "%s (an upstream on a private or loopback address needs allow_private: agentcloud tools add --allow-private)", rc.Redact(err.Error()))
		}
		return nil, api.Errorf(api.KindForbidden, "%s", rc.Redact(err.Error()))
	}
	if err != nil {
		return nil, errors.New(rc.Redact(err.Error()))
	}
	if sc := rc.QueryScrubber(); sc != nil {
		sc.Header(resp.Header)
		if resp.ContentLength != 0 {
			resp.Header.Del("Content-Length")
			resp.ContentLength = -1
		}
		resp.Body = sc.Reader(resp.Body, func() { sc.Header(resp.Trailer) })
	}
	return resp, nil
}
