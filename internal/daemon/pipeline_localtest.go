package daemon

// POST /v1/pipeline/test (pipeline_localtest.go): the pipeline's test stage
// on a bundle without deploying it, for `agentcloud test DIR`. The bundle
// is stored as an immutable version (content-addressed, never made
// current) and its tests run exactly as a run's test stage would.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/pipeline"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/session/sessionhttp"
)

// localTestTimeout bounds one local test run (the test stage's own limit).
const localTestTimeout = 2 * time.Minute

// localTestRoute is the route; authorized like a deploy (the tests run
// the bundle's code), against the agent its manifest names.
func localTestRoute(h httpapi.HandlerFunc) httpapi.Route {
	return httpapi.Route{Method: "POST", Path: "/v1/pipeline/test", Tag: "pipeline",
		Summary: "Run a bundle's tests (tests/*.test.js against a fresh session of it, the manifest's test command in a sandbox) " +
			"as the pipeline's test stage would, without deploying it. 200 with the report; its passed field says whether they passed.",
		RequestContentType: "application/gzip", Response: api.PipelineTestReport{},
		Action: session.ActionAgentDeploy, Resource: func(*http.Request) httpapi.Resource { return httpapi.Resource{Type: "Agent"} },
		Handler: h}
}

func (d *Daemon) handleLocalTest(w http.ResponseWriter, r *http.Request) error {
	b, err := bundle.LoadTarGz(r.Body)
	if err != nil {
		return sessionhttp.BundleProblem(err)
	}
	by, _ := httpapi.PrincipalFrom(r.Context())
	rep, err := d.testBundle(r.Context(), by, b)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, rep)
	return nil
}

// testBundle stores b as a version of its agent (not current) and runs
// its tests for by, who must be allowed to deploy the agent.
func (d *Daemon) testBundle(ctx context.Context, by httpapi.Principal, b *bundle.Bundle) (api.PipelineTestReport, error) {
	agent := b.Manifest.Name
	if err := d.sec.Authorize(ctx, security.Principal(by), session.ActionAgentDeploy, security.Resource{Type: "Agent", ID: agent}); err != nil {
		return api.PipelineTestReport{}, err
	}
	p := d.pipe
	if p == nil || p.tester == nil {
		return api.PipelineTestReport{}, api.Errorf(api.KindUnavailable, "the deploy pipeline is not running")
	}
	if _, err := d.sessions.StoreVersion(ctx, b); err != nil {
		return api.PipelineTestReport{}, err
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	tctx, cancel := context.WithTimeout(ctx, localTestTimeout)
	defer cancel()
	rep, err := p.tester.Test(tctx, pipeline.TestInput{Run: "local-" + hex.EncodeToString(id[:]), Agent: agent, Version: b.Digest, Bundle: b})
	if err != nil {
		if tctx.Err() != nil && ctx.Err() == nil {
			return api.PipelineTestReport{}, api.Errorf(api.KindTimeout, "the tests did not finish within %s (the test stage's time limit)", localTestTimeout)
		}
		return api.PipelineTestReport{}, api.Errorf(api.KindValidation, "tests could not run: %v", err)
	}
	return rep, nil
}
