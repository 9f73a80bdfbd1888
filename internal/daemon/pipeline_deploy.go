package daemon

// Every deploy path goes through the pipeline (pipeline_deploy.go):
// POST /v1/agents (the CLI's deploy and dev) and the deploy_agent tool
// submit a run and wait for it, at most deployWait; a run that passes
// answers like a deploy did (201 and the version), one that waits for a
// review or runs longer answers 202 with the run, one that fails answers
// 422 pipeline-failed with the failing stage's reason.

import (
	"context"
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
	"github.com/agentcloud/agentcloud/internal/pipeline/pipelinehttp"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/toolbox/builtin"
)

// deployWait bounds how long a deploy waits for its run before it answers
// with the run in progress (202). A run waiting for review answers at once.
const deployWait = 60 * time.Second

// pipelinePrincipal is an authenticated caller as a pipeline principal:
// its kind (person, agent, session), and labels the gate and the ledger
// see — RoleLabel for the platform administrator, the agent a session or
// agent acts for ("agent") and a session's flow labels.
func (d *Daemon) pipelinePrincipal(ctx context.Context, p httpapi.Principal) api.PipelinePrincipal {
	pp := pipelinehttp.DefaultPrincipal(ctx, p)
	if p.Kind == string(identity.KindAdmin) {
		pp.Labels = map[string]string{pipeline.RoleLabel: pipeline.RoleAdmin}
		return pp
	}
	ip, err := identity.ParsePrincipal(d.sec.TrustDomain(), p.ID)
	if err != nil {
		return pp
	}
	switch ip.Kind {
	case identity.KindAgent:
		pp.Labels = map[string]string{"agent": ip.Name}
	case identity.KindSession:
		pp.Labels = map[string]string{"agent": ip.Agent}
		if l, err := d.sec.Labels(ctx, ip.Agent, ip.Name); err == nil {
			pp.Labels["integrity"], pp.Labels["confidentiality"] = l.Integrity, l.Confidentiality
		}
	}
	return pp
}

// pipelinePrincipalHTTP is pipelinePrincipal as pipelinehttp wants it.
func (d *Daemon) pipelinePrincipalHTTP(ctx context.Context, p httpapi.Principal) api.PipelinePrincipal {
	return d.pipelinePrincipal(ctx, p)
}

// deployBundle sends b through the pipeline for by and waits up to wait
// for its run. by is authorized (agent.deploy on the agent b names) before
// the run and again once the run holds the agent (one active run per
// agent), so a deploy racing another principal's first deploy of the same
// name never lands under their ownership. A bundle that serves already
// answers without a run.
func (d *Daemon) deployBundle(ctx context.Context, by httpapi.Principal, b *bundle.Bundle, wait time.Duration) (api.AgentVersion, error) {
	agent := b.Manifest.Name
	authorize := func() error {
		return d.sec.Authorize(ctx, security.Principal(by), session.ActionAgentDeploy, security.Resource{Type: "Agent", ID: agent})
	}
	if err := authorize(); err != nil {
		return api.AgentVersion{}, err
	}
	p := d.pipe
	if p == nil || p.runner == nil {
		return api.AgentVersion{}, api.Errorf(api.KindUnavailable, "the deploy pipeline is not running")
	}
	v, err := d.sessions.StoreVersion(ctx, b)
	if err != nil {
		return api.AgentVersion{}, err
	}
	if cur, ok, err := d.sessions.CurrentVersion(ctx, agent); err != nil {
		return api.AgentVersion{}, err
	} else if ok && cur == b.Digest {
		return v, nil // serves already: nothing to run
	}
	who := d.pipelinePrincipal(ctx, by)
	run, err := p.runner.Submit(ctx, pipeline.Submission{Bundle: b, Principal: who})
	if err != nil {
		return api.AgentVersion{}, err
	}
	if err := authorize(); err != nil {
		_, _ = p.runner.Cancel(context.WithoutCancel(ctx), run.ID, who)
		return api.AgentVersion{}, err
	}
	if wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, wait)
		got, err := p.runner.Wait(wctx, run.ID)
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
		pr := api.Errorf(api.KindPipelineFailed, "the deploy of agent %s stopped at its %s stage: %s; the previous version keeps serving (agentcloud pipeline show %s)",
			agent, stage, reason, run.ID)
		pr.Instance = runLocation(run.ID)
		return v, pr
	}
	return v, nil
}

// handleDeploy answers POST /v1/agents once the bundle is loaded: 201 and
// the version when its run passed, 202 and the version with its run (and
// Location) when the run waits for review or is still going (at once with
// Prefer: respond-async).
func (d *Daemon) handleDeploy(w http.ResponseWriter, r *http.Request, b *bundle.Bundle) error {
	by, _ := httpapi.PrincipalFrom(r.Context())
	wait := deployWait
	if strings.Contains(strings.ToLower(r.Header.Get("Prefer")), "respond-async") {
		wait = 0
	}
	v, err := d.deployBundle(r.Context(), by, b, wait)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if v.Run != "" {
		w.Header().Set("Location", runLocation(v.Run))
		if v.RunState != api.RunPassed {
			status = http.StatusAccepted
		}
	}
	httpapi.WriteJSON(w, status, v)
	return nil
}

// pipelineAgents is the agent platform for the built-in tools: deploy_agent
// goes through the pipeline like every deploy; the rest is the session
// manager's.
type pipelineAgents struct{ d *Daemon }

var _ builtin.Agents = pipelineAgents{}

func (a pipelineAgents) Agents(ctx context.Context) ([]api.Agent, error) {
	return a.d.sessions.Agents(ctx)
}

func (a pipelineAgents) Call(ctx context.Context, agent, id string, req isolate.Request) (isolate.Response, error) {
	return a.d.sessions.Call(ctx, agent, id, req)
}

// Deploy implements builtin.Agents: the version answered names the run and
// its state (waiting: a person must review it).
func (a pipelineAgents) Deploy(ctx context.Context, by session.Principal, b *bundle.Bundle) (api.AgentVersion, error) {
	return a.d.deployBundle(ctx, httpapi.Principal{ID: by.ID, Kind: by.Kind}, b, deployWait)
}
