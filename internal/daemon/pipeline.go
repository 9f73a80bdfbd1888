package daemon

// Deploy pipeline wiring (pipeline.go): the ledger (its signing key in the
// data dir), the rollout controller (its Meter observes every session
// call, session.Bindings.Observer), and the pipeline Runner over the real
// parts — the session manager as the version store, the JS test runner and
// the manifest's test command in a sandbox, the Cedar release gate, its
// own approvals, the provenance key, the ledger and the rollout controller
// as the roll-out stage. Two parts: "pipeline" builds it all and registers
// the /v1/ledger, /v1/pipeline and rollout routes before the toolbox (whose
// deploy_agent submits runs) and before "sessions"; "pipeline runs" starts
// the runner (resuming runs) and the rollout loop once sessions serve.
// Every deploy path goes through Runner.Submit (pipeline_deploy.go).

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/approval"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/ledger/ledgerhttp"
	"github.com/agentcloud/agentcloud/internal/pipeline"
	"github.com/agentcloud/agentcloud/internal/pipeline/cmdtest"
	"github.com/agentcloud/agentcloud/internal/pipeline/jstest"
	"github.com/agentcloud/agentcloud/internal/pipeline/pipelinehttp"
	"github.com/agentcloud/agentcloud/internal/rollout"
	"github.com/agentcloud/agentcloud/internal/rollout/rollouthttp"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/toolbox/registry"
	"github.com/agentcloud/agentcloud/internal/version"
)

// pipelineParts are the deploy pipeline's parts of one daemon.
type pipelineParts struct {
	ledger  *ledger.Ledger
	rollout *rollout.Controller
	runner  *pipeline.Runner
	gate    *pipeline.CedarGate
	deploy  *pipelinehttp.Deployer // every deploy path, POST /v1/pipeline/test
	// seal seals the audit stream into the ledger (every auditSealInterval
	// and at close).
	seal *ledger.Sealer
	// stop ends the rollout loop; done is closed when it has returned.
	stop context.CancelFunc
	done chan struct{}
}

// startPipeline opens the ledger and the rollout controller, builds the
// runner and registers the routes. Must be called after startSandboxes
// (the test command's sandboxes) and before startTools and startSessions.
func (d *Daemon) startPipeline(ctx context.Context) error {
	log := d.log.With("component", "pipeline")
	lk, pk, err := pipeline.LoadKeys(filepath.Join(d.cfg.Data, "pipeline"), d.cfg.TrustDomain)
	if err != nil {
		return err
	}
	p := &pipelineParts{}
	d.pipe = p
	if p.ledger, err = ledger.Open(ctx, d.store, lk, ledger.Options{Logger: d.log.With("component", "ledger")}); err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	if p.seal, err = ledger.NewSealer(ctx, d.store, p.ledger, "audit", d.sec.Audit().Source()); err != nil {
		return err
	}
	rcfg := rollout.Settings(d.cfg)
	rcfg.Store, rcfg.Router, rcfg.Ledger, rcfg.Logger = d.store, d.sessions, p.ledger, d.log.With("component", "rollout")
	rcfg.Now = d.pipelineNow
	if p.rollout, err = rollout.New(ctx, rcfg); err != nil {
		return err
	}
	reviews, err := d.store.KV(ctx, "pipeline_reviews", store.KVOptions{Description: "pipeline review approvals"})
	if err != nil {
		return fmt.Errorf("pipeline reviews: %w", err)
	}
	if p.gate, err = pipeline.NewCedarGate(nil, func(ctx context.Context, agent string) (string, error) {
		info, _, err := d.sessions.AgentInfo(ctx, agent)
		return info.Owner, err
	}); err != nil {
		return err
	}
	tester, err := d.pipelineTester()
	if err != nil {
		return err
	}
	p.runner, err = pipeline.New(ctx, pipeline.Config{
		Store: d.store, Versions: d.sessions, Previews: d.sessions, Tester: tester, Gate: p.gate, Reviews: approval.New(reviews, nil),
		Signer: pipeline.KeySigner{Key: pk}, Ledger: p.ledger, Rollout: rollout.Stage{C: p.rollout}, Targets: d.configTargets(),
		Builder: "spiffe://" + d.cfg.TrustDomain + "/node/" + d.cfg.NodeID, BuilderVersion: version.Version,
		Now: d.pipelineNow, Logger: log, Metrics: d.reg,
	})
	if err != nil {
		return err
	}
	d.pipeRunner.Store(p.runner)
	ledgerhttp.New(p.ledger, d.log.With("component", "ledger")).Routes(d.router)
	principal := pipelinehttp.PrincipalOf(d.sec.TrustDomain(), d.sec.Labels)
	pipelinehttp.New(p.runner, principal, log).Routes(d.router)
	rollouthttp.New(p.rollout).Routes(d.router)
	p.deploy = pipelinehttp.NewDeployer(pipelinehttp.DeployConfig{Runner: p.runner, Tester: tester, Versions: d.sessions,
		Principal: principal, Authorize: func(ctx context.Context, by httpapi.Principal, agent string) error {
			return d.sec.Authorize(ctx, security.Principal(by), session.ActionAgentDeploy, security.Resource{Type: "Agent", ID: agent})
		}})
	p.deploy.Routes(d.router)
	return nil
}

// configTargets are the configuration changed through runs, on security.
func (d *Daemon) configTargets() map[string]pipeline.ConfigTarget {
	return map[string]pipeline.ConfigTarget{
		api.ConfigPolicies:     pipeline.PolicyTarget{Get: d.sec.Policies, Put: d.sec.ApplyPolicies, Validate: security.CheckPolicies},
		api.ConfigTrustedHosts: pipeline.HostListTarget{Get: d.sec.TrustedHosts, Set: d.sec.SetTrustedHosts, Validate: security.CheckHosts},
		api.ConfigPrivateHosts: pipeline.HostListTarget{Get: d.sec.PrivateHosts, Set: d.sec.SetPrivateHosts, Validate: security.CheckHosts},
		api.ConfigToolPins:     pipeline.ToolPinsTarget{Registry: func() pipeline.ToolPinner { return d.toolRegistry }, Validate: registry.CheckPins},
		api.ConfigSecret:       pipeline.SecretTarget{Describe: d.sec.DescribeSecret, Set: d.sec.SetSecretMetadata, Validate: security.CheckSecretMetadata},
	}
}

// configChanger submits configuration changes as runs (securityhttp, registryhttp).
func (d *Daemon) configChanger() pipelinehttp.ConfigChanger {
	return pipelinehttp.ConfigChanger{Runner: d.pipeRunner.Load, Principal: pipelinehttp.PrincipalOf(d.sec.TrustDomain(), d.sec.Labels)}
}

// pipelineTester runs a version's tests/*.test.js in fresh isolates
// against scratch sessions of it, and its manifest's test command in a
// sandbox when this host runs sandboxes.
func (d *Daemon) pipelineTester() (pipeline.Tester, error) {
	js, err := jstest.New(jstest.Config{Runtime: d.runtime,
		NewScratch: func(ctx context.Context, agent, digest, name string) (jstest.Scratch, error) {
			return d.sessions.NewScratch(ctx, agent, digest, name)
		}})
	if err != nil {
		return nil, err
	}
	if d.sandboxes == nil || d.sandboxes.manager == nil {
		return js, nil
	}
	cmd, err := cmdtest.New(cmdtest.Config{Sandboxes: d.sandboxes.manager})
	if err != nil {
		return nil, err
	}
	return cmdtest.Tester{js, cmd}, nil
}

// pipelineNow is the clock of runs and rollouts (tests shift it to run
// rollout steps without waiting).
func (d *Daemon) pipelineNow() time.Time {
	if f := d.pipelineClock.Load(); f != nil {
		return (*f)()
	}
	return time.Now()
}

func (d *Daemon) closePipeline(context.Context) error {
	if d.pipe == nil {
		return nil
	}
	var err error
	if d.pipe.ledger != nil {
		err = d.pipe.ledger.Close()
	}
	d.pipe = nil
	return err
}

// startPipelineRuns resumes the runs that had not ended and starts the
// rollout loop (step analysis, automatic rollback). After "sessions": the
// stages build versions and call scratch sessions.
func (d *Daemon) startPipelineRuns(ctx context.Context) error {
	p := d.pipe
	if err := p.runner.Start(ctx); err != nil {
		return err
	}
	loop, stop := context.WithCancel(context.WithoutCancel(ctx))
	p.stop, p.done = stop, make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { p.rollout.Run(loop) })
	wg.Go(func() { ledger.SealEvery(loop, auditSealInterval, d.SealAudit, d.log) })
	go func() {
		wg.Wait()
		close(p.done)
	}()
	return nil
}

// auditSealInterval is how often new audit records are sealed into the
// ledger (a batch holds up to ledger.MaxAuditRecords of them).
const auditSealInterval = 5 * time.Second

// SealAudit seals the audit records written so far into the ledger.
func (d *Daemon) SealAudit(ctx context.Context) error {
	p := d.pipe
	if p == nil || p.seal == nil {
		return nil
	}
	if err := d.sec.Audit().Flush(ctx); err != nil {
		return err
	}
	_, err := p.seal.Seal(ctx)
	return err
}

// CheckAudit compares the sealed audit records with the ledger: nil, or
// a *ledger.SealError naming the first record changed or missing.
func (d *Daemon) CheckAudit(ctx context.Context) (int, error) {
	p := d.pipe
	if p == nil || p.seal == nil {
		return 0, api.Errorf(api.KindUnavailable, "the ledger is not open")
	}
	return p.seal.Check(ctx)
}

// closePipelineRuns stops the rollout loop and the runner; runs in
// progress stay where they are and resume at the next start.
func (d *Daemon) closePipelineRuns(ctx context.Context) error {
	p := d.pipe
	if p == nil {
		return nil
	}
	if p.stop != nil {
		p.stop()
		<-p.done
		p.stop = nil
		if err := d.SealAudit(ctx); err != nil {
			d.log.Warn("seal audit records into the ledger", "err", err)
		}
	}
	if p.runner != nil {
		d.pipeRunner.Store(nil)
		p.runner.Close()
	}
	return nil
}

// handleDeploy answers POST /v1/agents through the pipeline.
func (d *Daemon) handleDeploy(w http.ResponseWriter, r *http.Request, b *bundle.Bundle) error {
	if d.pipe == nil || d.pipe.deploy == nil {
		return api.Errorf(api.KindUnavailable, "the deploy pipeline is not running")
	}
	return d.pipe.deploy.HandleDeploy(w, r, b)
}
