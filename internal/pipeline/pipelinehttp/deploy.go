package pipelinehttp

// Every deploy path goes through the pipeline (deploy.go): POST /v1/agents
// (the CLI's deploy and dev) and the deploy_agent tool submit a run and
// wait for it, at most DeployWait; a run that passes answers like a deploy
// did (201 and the version), one that waits for a review or runs longer
// answers 202 with the run, one that fails answers 422 pipeline-failed
// with the failing stage's reason. POST /v1/pipeline/test runs the test
// stage on a bundle without deploying it, for `agentcloud test DIR`.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/pipeline"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/session/sessionhttp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// DeployWait bounds how long a deploy waits for its run before it answers
// with the run in progress (202). A run waiting for review answers at once.
const DeployWait = 60 * time.Second

// localTestTimeout bounds one local test run (the test stage's own limit).
const localTestTimeout = 2 * time.Minute

// Versions stores bundles as immutable versions (the session manager).
type Versions interface {
	StoreVersion(ctx context.Context, b *bundle.Bundle) (api.AgentVersion, error)
	CurrentVersion(ctx context.Context, agent string) (digest string, ok bool, err error)
	PreviewVersion(ctx context.Context, agent string) (digest string, ok bool, err error)
}

// DeployConfig is what a Deployer works with.
type DeployConfig struct {
	Runner   *pipeline.Runner
	Tester   pipeline.Tester
	Versions Versions
	// Authorize decides session.ActionAgentDeploy for by on agent.
	Authorize func(ctx context.Context, by httpapi.Principal, agent string) error
	// Principal maps a caller to the run's principal (nil: DefaultPrincipal).
	Principal PrincipalFunc
}

// Deployer sends deploys through the pipeline.
type Deployer struct{ cfg DeployConfig }

// NewDeployer returns a Deployer of cfg.
func NewDeployer(cfg DeployConfig) *Deployer {
	if cfg.Principal == nil {
		cfg.Principal = DefaultPrincipal
	}
	return &Deployer{cfg: cfg}
}

// Deploy sends b through the pipeline for by and waits up to wait for its
// run. by is authorized (agent.deploy on the agent b names) before the run
// and again once the run holds the agent (one active run per agent), so a
// deploy racing another principal's first deploy of the same name never
// lands under their ownership. A bundle that serves already answers
// without a run.
func (d *Deployer) Deploy(ctx context.Context, by httpapi.Principal, b *bundle.Bundle, wait time.Duration) (api.AgentVersion, error) {
	return d.submit(ctx, by, b, wait, false)
}

// Preview is Deploy of b as its agent's preview (a preview run: tested and
// recorded, served to the agent's preview sessions only), authorized like
// a deploy.
func (d *Deployer) Preview(ctx context.Context, by httpapi.Principal, b *bundle.Bundle, wait time.Duration) (api.AgentVersion, error) {
	return d.submit(ctx, by, b, wait, true)
}

func (d *Deployer) submit(ctx context.Context, by httpapi.Principal, b *bundle.Bundle, wait time.Duration, preview bool) (api.AgentVersion, error) {
	agent := b.Manifest.Name
	authorize := func() error { return d.cfg.Authorize(ctx, by, agent) }
	if err := authorize(); err != nil {
		return api.AgentVersion{}, err
	}
	v, err := d.cfg.Versions.StoreVersion(ctx, b)
	if err != nil {
		return api.AgentVersion{}, err
	}
	current, what := d.cfg.Versions.CurrentVersion, "deploy"
	if preview {
		current, what = d.cfg.Versions.PreviewVersion, "preview"
	}
	if cur, ok, err := current(ctx, agent); err != nil {
		return api.AgentVersion{}, err
	} else if ok && cur == b.Digest {
		return v, nil // serves already: nothing to run
	}
	who := d.cfg.Principal(ctx, by)
	run, err := d.cfg.Runner.Submit(ctx, pipeline.Submission{Bundle: b, Principal: who, Preview: preview})
	if err != nil {
		return api.AgentVersion{}, err
	}
	if err := authorize(); err != nil {
		_, _ = d.cfg.Runner.Cancel(context.WithoutCancel(ctx), run.ID, who)
		return api.AgentVersion{}, err
	}
	if wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, wait)
		got, err := d.cfg.Runner.Wait(wctx, run.ID)
		cancel()
		switch {
		case err == nil, errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil && got.ID != "":
			run = got
		case ctx.Err() != nil:
			return api.AgentVersion{}, ctx.Err()
		}
	}
	v.Run, v.RunState = run.ID, run.State
	if run.State == api.RunFailed || run.State == api.RunCancelled {
		stage, reason := failedStage(run)
		pr := api.Errorf(api.KindPipelineFailed, "the %s of agent %s stopped at its %s stage: %s; the previous version keeps serving (agentcloud pipeline show %s)",
			what, agent, stage, reason, run.ID)
		pr.Instance = RunLocation(run.ID)
		return v, pr
	}
	return v, nil
}

// HandleDeploy answers POST /v1/agents once the bundle is loaded: 201 and
// the version when its run passed, 202 and the version with its run (and
// Location) when the run waits for review or is still going (at once with
// Prefer: respond-async).
func (d *Deployer) HandleDeploy(w http.ResponseWriter, r *http.Request, b *bundle.Bundle) error {
	return d.handle(w, r, b, false)
}

func (d *Deployer) handle(w http.ResponseWriter, r *http.Request, b *bundle.Bundle, preview bool) error {
	by, _ := httpapi.PrincipalFrom(r.Context())
	wait := DeployWait
	if strings.Contains(strings.ToLower(r.Header.Get("Prefer")), "respond-async") {
		wait = 0
	}
	v, err := d.submit(r.Context(), by, b, wait, preview)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if v.Run != "" {
		w.Header().Set("Location", RunLocation(v.Run))
		if v.RunState != api.RunPassed {
			status = http.StatusAccepted
		}
	}
	httpapi.WriteJSON(w, status, v)
	return nil
}

// Routes registers POST /v1/pipeline/test: authorized like a deploy (the
// tests run the bundle's code), against the agent its manifest names.
func (d *Deployer) Routes(rt *httpapi.Router) {
	rt.Handle(httpapi.Route{Method: "POST", Path: Prefix + "/test", Tag: "pipeline",
		Summary: "Run a bundle's tests (tests/*.test.js against a fresh session of it, the manifest's test command in a sandbox) " +
			"as the pipeline's test stage would, without deploying it. 200 with the report; its passed field says whether they passed.",
		RequestContentType: "application/gzip", Response: api.PipelineTestReport{},
		Action: session.ActionAgentDeploy, Resource: func(*http.Request) httpapi.Resource { return httpapi.Resource{Type: "Agent"} },
		Handler: d.handleTest})
	rt.Handle(httpapi.Route{Method: "POST", Path: PreviewPath, Tag: "agents",
		Summary: "Make a bundle its agent's preview (agentcloud dev): a preview run validates, builds, tests and records it in the " +
			"ledger as a preview, never releasing it; the agent's preview sessions (/agents/{agent}/preview/sessions/...) run it " +
			"and production keeps its version. Answers like POST /v1/agents.",
		RequestContentType: "application/gzip", Response: api.AgentVersion{}, Status: http.StatusCreated,
		Action: session.ActionAgentDeploy, Resource: func(*http.Request) httpapi.Resource { return httpapi.Resource{Type: "Agent"} },
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			b, err := bundle.LoadTarGz(r.Body)
			if err != nil {
				return sessionhttp.BundleProblem(err)
			}
			return d.handle(w, r, b, true)
		}})
}

// PreviewPath is the route that makes a bundle its agent's preview.
const PreviewPath = "/v1/previews"

func (d *Deployer) handleTest(w http.ResponseWriter, r *http.Request) error {
	b, err := bundle.LoadTarGz(r.Body)
	if err != nil {
		return sessionhttp.BundleProblem(err)
	}
	by, _ := httpapi.PrincipalFrom(r.Context())
	rep, err := d.Test(r.Context(), by, b)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, rep)
	return nil
}

// Test stores b as a version of its agent (content-addressed, never made
// current) and runs its tests for by, who must be allowed to deploy the
// agent, exactly as a run's test stage would.
func (d *Deployer) Test(ctx context.Context, by httpapi.Principal, b *bundle.Bundle) (api.PipelineTestReport, error) {
	agent := b.Manifest.Name
	if err := d.cfg.Authorize(ctx, by, agent); err != nil {
		return api.PipelineTestReport{}, err
	}
	if _, err := d.cfg.Versions.StoreVersion(ctx, b); err != nil {
		return api.PipelineTestReport{}, err
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	tctx, cancel := context.WithTimeout(ctx, localTestTimeout)
	defer cancel()
	rep, err := d.cfg.Tester.Test(tctx, pipeline.TestInput{Run: "local-" + hex.EncodeToString(id[:]), Agent: agent, Version: b.Digest, Bundle: b})
	if err != nil {
		if tctx.Err() != nil && ctx.Err() == nil {
			return api.PipelineTestReport{}, api.Errorf(api.KindTimeout, "the tests did not finish within %s (the test stage's time limit)", localTestTimeout)
		}
		return api.PipelineTestReport{}, api.Errorf(api.KindValidation, "tests could not run: %v", err)
	}
	return rep, nil
}

// RunLocation is where a run is served.
func RunLocation(id string) string { return Prefix + "/runs/" + id }

// failedStage is the stage a failed run stopped at, and why.
func failedStage(run api.PipelineRun) (string, string) {
	for _, st := range run.Stages {
		if st.State == api.StageFailed {
			return st.Name, st.Reason
		}
	}
	return run.Stage, run.Error
}

// Labeler gives a session's flow labels.
type Labeler func(ctx context.Context, agent, session string) (api.Labels, error)

// PrincipalOf maps callers of trust domain td to run principals with the
// labels the gate and the ledger see: RoleLabel for the platform
// administrator, the agent a session or agent acts for ("agent") and a
// session's flow labels.
func PrincipalOf(td spiffeid.TrustDomain, labels Labeler) PrincipalFunc {
	return func(ctx context.Context, p httpapi.Principal) api.PipelinePrincipal {
		pp := DefaultPrincipal(ctx, p)
		if p.Kind == string(identity.KindAdmin) {
			pp.Labels = map[string]string{pipeline.RoleLabel: pipeline.RoleAdmin}
			return pp
		}
		ip, err := identity.ParsePrincipal(td, p.ID)
		if err != nil {
			return pp
		}
		switch ip.Kind {
		case identity.KindAgent:
			pp.Labels = map[string]string{"agent": ip.Name}
		case identity.KindSession:
			pp.Labels = map[string]string{"agent": ip.Agent}
			if l, err := labels(ctx, ip.Agent, ip.Name); err == nil {
				pp.Labels["integrity"], pp.Labels["confidentiality"] = l.Integrity, l.Confidentiality
			}
		}
		return pp
	}
}

// Sessions lists and calls agents (the session manager).
type Sessions interface {
	Agents(ctx context.Context) ([]api.Agent, error)
	Call(ctx context.Context, agent, id string, req isolate.Request) (isolate.Response, error)
}

// ToolAgents is the agent platform of the built-in tools
// (toolbox/builtin.Agents): deploy_agent goes through the pipeline like
// every deploy; listing and calling are the session manager's.
type ToolAgents struct {
	Sessions
	Deployer *Deployer
}

// Deploy deploys b for by through the pipeline; the version answered names
// the run and its state (waiting: a person must review it).
func (a ToolAgents) Deploy(ctx context.Context, by session.Principal, b *bundle.Bundle) (api.AgentVersion, error) {
	return a.Deployer.Deploy(ctx, httpapi.Principal{ID: by.ID, Kind: by.Kind}, b, DeployWait)
}
