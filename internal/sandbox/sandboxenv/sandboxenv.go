// Package sandboxenv is env.sandbox for agent code: the session service
// "sandbox" with methods run, exec and delete, and the sandboxes of the
// run_code tool (builtin.Sandboxes).
//
// run makes a sandbox owned by the agent's owner and tied to the calling
// session (its egress grants and secrets are the manifest's), writes the
// given files, runs the code or command, answers {stdout, stderr,
// exit_code, files} (files: what the run created or changed under
// /workspace) and deletes the sandbox, unless keep is set: then the answer
// carries its id for exec and delete. Every call is authorized by Cedar as
// the session (sandbox.create, sandbox.exec, sandbox.delete), and counts
// against the owner's sandbox quota.
//
// The package owns the service's argument checks, the run (write files,
// exec, collect what changed) and the ownership stamped on the sandboxes
// it makes. It does not own the sandboxes' tiers, caps or networking (the
// Manager, its Admission and sandboxnet), nor the policy: it asks the
// security part through the small Security interface below.
package sandboxenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Bounds of env.sandbox calls.
const (
	runDefaultTimeout = 30 * time.Second
	runMaxTimeout     = 10 * time.Minute
	keptTimeout       = 10 * time.Minute // life of a kept sandbox
	runMaxOutput      = 1 << 20          // per stream; the rest is cut
	runMaxFileBytes   = 1 << 20          // per returned file
	runMaxFilesBytes  = 4 << 20          // all returned files
	runMaxFiles       = 64
)

// languages maps env.sandbox.run's language to the file its code goes in
// and the command that runs it.
var languages = map[string]struct{ file, cmd string }{
	"python":     {"main.py", "python3"},
	"javascript": {"main.js", "node"},
	"bash":       {"main.sh", "bash"},
}

// sandboxRun is the argument of run and exec.
type sandboxRun struct {
	ID       string            `json:"id"` // exec only
	Language string            `json:"language"`
	Code     string            `json:"code"`
	Cmd      string            `json:"cmd"`
	Args     []string          `json:"args"`
	Files    map[string]string `json:"files"`
	Stdin    string            `json:"stdin"`
	Env      map[string]string `json:"env"`
	Tier     string            `json:"tier"`     // run only
	Timeout  float64           `json:"timeout"`  // seconds, this exec
	Keep     bool              `json:"keep"`     // run only
	Template string            `json:"template"` // run only
	// Volumes are the agent owner's volumes to mount (run only; checked
	// like POST /v1/sandboxes: volume.Store.Resolve).
	Volumes []sandbox.VolumeRef `json:"volumes"`
}

// sandboxRunResult is the answer of run and exec.
type sandboxRunResult struct {
	ID       string            `json:"id,omitempty"` // set when the sandbox is kept
	Stdout   string            `json:"stdout"`
	Stderr   string            `json:"stderr"`
	ExitCode int               `json:"exit_code"`
	Files    map[string]string `json:"files"`
	// FilesBase64 holds returned files that are not UTF-8 text.
	FilesBase64 map[string]string `json:"files_base64,omitempty"`
	// Error names a limit the run hit (timeout, memory, processes, disk).
	Error     string `json:"error,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
}

// Security is what env.sandbox needs of the security part.
type Security interface {
	TrustDomain() spiffeid.TrustDomain
	Authorize(ctx context.Context, p security.Principal, action string, res security.Resource) error
	// Admin owns the sandboxes of agents an administrator deployed.
	Admin() security.Principal
}

// Agents finds deployed agents (their owner and manifest).
type Agents interface {
	AgentInfo(ctx context.Context, name string) (session.AgentInfo, bool, error)
}

var (
	_ Security = (*security.Security)(nil)
	_ Agents   = (*session.Manager)(nil)
)

// Volumes resolves named volumes for a new sandbox: the one check every
// way of making a sandbox uses (*volume.Store).
type Volumes interface {
	Resolve(ctx context.Context, owner string, ms []sandbox.VolumeRef, authz sandbox.AuthorizeMount) ([]sandbox.VolumeMount, func(), error)
}

// Config is what a Service runs on.
type Config struct {
	Manager  *sandbox.Manager
	Security Security
	Agents   Agents
	// Volumes, if set, are the node's named volumes, mountable by run.
	Volumes Volumes
	Logger  *slog.Logger
	// Unavailable, if set, is why this host runs no sandboxes: every call
	// answers a NotSupportedError naming it.
	Unavailable error
}

// Service implements session.Service for env.sandbox.
type Service struct{ cfg Config }

var _ session.Service = (*Service)(nil)

// New returns env.sandbox over cfg.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg}
}

// Invoke implements session.Service.
func (s *Service) Invoke(ctx context.Context, c session.Caller, method string, args []byte) ([]byte, error) {
	if s.cfg.Unavailable != nil {
		return nil, isolate.HostErrorf("NotSupportedError", "sandboxes are unavailable on this node: %v", s.cfg.Unavailable)
	}
	var req sandboxRun
	if err := json.Unmarshal(args, &req); err != nil {
		return nil, isolate.HostErrorf("TypeError", "env.sandbox.%s: %v", method, err)
	}
	var (
		out any
		err error
	)
	switch method {
	case "run":
		out, err = s.run(ctx, c, req)
	case "exec":
		out, err = s.exec(ctx, c, req)
	case "delete":
		err = s.delete(ctx, c, req.ID)
		out = map[string]bool{"deleted": err == nil}
	default:
		return nil, isolate.HostErrorf("NotSupportedError", "env.sandbox has no method %q (run, exec, delete)", method)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

// authorize asks Cedar whether the session may do action to the sandbox.
func (s *Service) authorize(ctx context.Context, c session.Caller, action, id string) error {
	return s.authorizeOn(ctx, c, action, security.Resource{Type: policy.TypeSandbox, ID: id})
}

// authorizeOn asks Cedar whether the session may do action to res.
func (s *Service) authorizeOn(ctx context.Context, c session.Caller, action string, res security.Resource) error {
	sid, err := identity.NewID(s.cfg.Security.TrustDomain(), identity.KindSession, c.Agent+"/"+c.Session)
	if err != nil {
		return fmt.Errorf("session identity: %w", err)
	}
	p := security.Principal{ID: sid.String(), Kind: string(identity.KindSession)}
	if err := s.cfg.Security.Authorize(ctx, p, action, res); err != nil {
		return isolate.HostErrorf("PermissionError", "%s", problemText(err))
	}
	return nil
}

// mountVolumes checks and holds owner's volumes for a sandbox the
// session makes: the same check as a create through the API
// (volume.Store.Resolve), with the session needing volume.mount on each.
func (s *Service) mountVolumes(ctx context.Context, c session.Caller, owner string, ms []sandbox.VolumeRef, spec *sandbox.Spec) (release func(), err error) {
	if len(ms) == 0 {
		return func() {}, nil
	}
	if s.cfg.Volumes == nil {
		return func() {}, isolate.HostErrorf("NotSupportedError", "env.sandbox: volumes: this node keeps no volumes")
	}
	vols, release, err := s.cfg.Volumes.Resolve(ctx, owner, ms, func(ctx context.Context, owner, name string) error {
		return s.authorizeOn(ctx, c, sandbox.ActionVolumeMount, security.Resource{Type: sandbox.TypeVolume, ID: name, Parent: owner})
	})
	switch {
	case err == nil:
		spec.Volumes = vols
		return release, nil
	case api.IsKind(err, api.KindNotFound):
		return release, isolate.HostErrorf("NotFoundError", "env.sandbox: %s", problemText(err))
	case api.IsKind(err, api.KindValidation), api.IsKind(err, api.KindInvalidID):
		p := api.AsProblem(err)
		return release, isolate.HostErrorf("TypeError", "env.sandbox: %s: %s", fieldOf(p), p.Detail)
	}
	return release, err // a PermissionError, or the store's
}

// fieldOf names the first field a problem is about.
func fieldOf(p *api.Problem) string {
	if p.Field != "" {
		return p.Field
	}
	if len(p.Errors) > 0 {
		return p.Errors[0].Field
	}
	return "volumes"
}

func problemText(err error) string {
	if p := api.AsProblem(err); p != nil {
		return p.Detail
	}
	return err.Error()
}

func (s *Service) run(ctx context.Context, c session.Caller, req sandboxRun) (*sandboxRunResult, error) {
	if req.ID != "" {
		return nil, &isolate.HostError{Name: "TypeError", Message: "env.sandbox.run makes a new sandbox: use env.sandbox.exec(id, ...) for a kept one"}
	}
	if err := checkRun(req); err != nil {
		return nil, err
	}
	id := s.cfg.Manager.NewID()
	if err := s.authorize(ctx, c, sandbox.ActionCreate, id); err != nil {
		return nil, err
	}
	info, ok, err := s.cfg.Agents.AgentInfo(ctx, c.Agent)
	if err != nil || !ok {
		return nil, fmt.Errorf("agent %s: not deployed (%v)", c.Agent, err)
	}
	tier := req.Tier
	if tier == "" {
		tier = sandbox.TierProcess
	}
	spec := sandbox.Spec{Tier: tier, Template: req.Template, Labels: map[string]string{}}
	if len(c.Egress) > 0 {
		spec.Labels[sandbox.LabelEgress] = strings.Join(c.Egress, ",")
	}
	if len(info.Manifest.Secrets) > 0 {
		spec.Labels[sandbox.LabelSecrets] = strings.Join(info.Manifest.Secrets, ",")
	}
	if req.Keep {
		spec.Timeout = keptTimeout
	}
	owner := info.Owner
	if owner == "" { // deployed by an administrator
		owner = s.cfg.Security.Admin().ID
	}
	sandbox.Own(&spec, owner, c.Agent, c.Session)
	release, err := s.mountVolumes(ctx, c, owner, req.Volumes, &spec)
	if err != nil {
		return nil, err
	}
	sb, err := s.cfg.Manager.Create(ctx, id, spec)
	release() // the Manager lists it now (or it failed)
	if api.IsKind(err, api.KindRateLimited) || api.IsKind(err, api.KindValidation) {
		return nil, isolate.HostErrorf("LimitError", "%s", problemText(err)) // the owner's caps (sandboxCaps)
	}
	if err != nil {
		return nil, isolate.HostErrorf("SandboxError", "%v", err)
	}
	if !req.Keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := s.cfg.Manager.Delete(dctx, id); err != nil && !errors.Is(err, sandbox.ErrNotFound) {
				s.cfg.Logger.Warn("delete run sandbox", "sandbox", id, "err", err)
			}
		}()
	}
	res, err := runIn(ctx, sb, req)
	if err != nil {
		return nil, err
	}
	if req.Keep {
		res.ID = id
	}
	return res, nil
}

func (s *Service) exec(ctx context.Context, c session.Caller, req sandboxRun) (*sandboxRunResult, error) {
	if req.ID == "" {
		return nil, &isolate.HostError{Name: "TypeError", Message: "env.sandbox.exec needs the id of a sandbox kept with env.sandbox.run({keep: true, ...})"}
	}
	if req.Keep || req.Tier != "" || req.Template != "" || req.Volumes != nil {
		return nil, &isolate.HostError{Name: "TypeError", Message: "env.sandbox.exec runs in an existing sandbox: keep, tier, template and volumes do not apply"}
	}
	if err := checkRun(req); err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, sandbox.ActionExec, req.ID); err != nil {
		return nil, err
	}
	sb, err := s.cfg.Manager.Get(req.ID)
	if err != nil {
		return nil, isolate.HostErrorf("NotFoundError", "sandbox %s does not exist (deleted or expired)", req.ID)
	}
	return runIn(ctx, sb, req)
}

func (s *Service) delete(ctx context.Context, c session.Caller, id string) error {
	if id == "" {
		return &isolate.HostError{Name: "TypeError", Message: "env.sandbox.delete needs a sandbox id"}
	}
	if err := s.authorize(ctx, c, sandbox.ActionDelete, id); err != nil {
		return err
	}
	if err := s.cfg.Manager.Delete(ctx, id); err != nil {
		if errors.Is(err, sandbox.ErrNotFound) {
			return isolate.HostErrorf("NotFoundError", "sandbox %s does not exist (deleted or expired)", id)
		}
		return isolate.HostErrorf("SandboxError", "%v", err)
	}
	return nil
}
