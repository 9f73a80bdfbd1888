package pipeline

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/agentcloud/agentcloud/api"
)

//go:embed release.cedar
var defaultReleasePolicies []byte

// DefaultReleasePolicies returns the default release policy text.
func DefaultReleasePolicies() []byte { return append([]byte(nil), defaultReleasePolicies...) }

// The Cedar actions of the gate.
const (
	ActionRelease        = "agent.release"
	ActionApproveRelease = "agent.approve_release"
)

// OwnerFunc returns the owner (principal id) of an agent, "" when it has
// none or is not deployed.
type OwnerFunc func(ctx context.Context, agent string) (string, error)

// CedarGate is the policy gate on Cedar: agent.release decides a run,
// agent.approve_release a review. Policies are one text (the default is
// DefaultReleasePolicies); Set replaces them.
type CedarGate struct {
	owner OwnerFunc
	cur   atomic.Pointer[gatePolicies]
}

type gatePolicies struct {
	set    *cedar.PolicySet
	review map[types.PolicyID]bool
	digest string
}

// NewCedarGate compiles policies (nil: the defaults). owner looks up an
// agent's owner (nil: nobody owns any agent, so every change is reviewed
// unless it is a first release).
func NewCedarGate(policies []byte, owner OwnerFunc) (*CedarGate, error) {
	g := &CedarGate{owner: owner}
	if policies == nil {
		policies = defaultReleasePolicies
	}
	if err := g.Set(policies); err != nil {
		return nil, err
	}
	return g, nil
}

// Set replaces the gate's policies; a text that does not parse is a
// validation problem and leaves the old ones in force.
func (g *CedarGate) Set(src []byte) error {
	list, err := cedar.NewPolicyListFromBytes("release.cedar", src)
	if err != nil {
		return api.FieldErrorf(api.KindValidation, "policies", "release policies: %v", err)
	}
	set := cedar.NewPolicySet()
	review := map[types.PolicyID]bool{}
	for i, p := range list {
		id := types.PolicyID(fmt.Sprintf("policy%d", i))
		if v, ok := p.Annotations()["id"]; ok && v != "" {
			id = types.PolicyID(v)
		}
		if set.Get(id) != nil {
			return api.FieldErrorf(api.KindValidation, "policies", "release policies: duplicate @id %q", id)
		}
		if p.Annotations()["review"] == "true" {
			if p.Effect() != cedar.Forbid {
				return api.FieldErrorf(api.KindValidation, "policies", "release policy %s: @review applies only to forbid policies", id)
			}
			review[id] = true
		}
		set.Add(id, p)
	}
	sum := sha256.Sum256(src)
	g.cur.Store(&gatePolicies{set: set, review: review, digest: "sha256:" + hex.EncodeToString(sum[:])})
	return nil
}

// PolicySetDigest is the digest of the policies in force.
func (g *CedarGate) PolicySetDigest() string { return g.cur.Load().digest }

// RoleLabel is the principal label the daemon sets to RoleAdmin for a
// platform administrator (never taken from a request).
const (
	RoleLabel = "principal.role"
	RoleAdmin = "admin"
)

// IsAdmin reports whether p is a person the daemon marked an administrator.
func IsAdmin(p api.PipelinePrincipal) bool {
	return p.Kind == api.AuthorHuman && p.Labels[RoleLabel] == RoleAdmin
}

// principalUID maps a run's principal to its Cedar entity.
func principalUID(p api.PipelinePrincipal) types.EntityUID {
	typ := "User"
	switch p.Kind {
	case api.AuthorAgent:
		typ = "Agent"
	case api.AuthorSession:
		typ = "Session"
	}
	return types.NewEntityUID(types.EntityType(typ), types.String(p.ID))
}

// releaseContext is the Cedar context of a run's release and the same
// values as plain JSON (whose digest is the decision's input digest).
func (g *CedarGate) releaseContext(ctx context.Context, run api.PipelineRun) (types.RecordMap, map[string]any, error) {
	owner := ""
	if g.owner != nil {
		var err error
		if owner, err = g.owner(ctx, run.Agent); err != nil {
			return nil, nil, fmt.Errorf("owner of %s: %w", run.Agent, err)
		}
	}
	ch := run.Change
	if ch == nil {
		ch = &api.PipelineChange{}
	}
	tests := run.Tests
	if tests == nil {
		tests = &api.PipelineTestSummary{}
	}
	isOwner := run.Principal.Kind == api.AuthorHuman && (owner == run.Principal.ID || (owner == "" && ch.FirstRelease))
	isAdmin := IsAdmin(run.Principal)
	limitsRaised := !ch.FirstRelease && (ch.Limits.MemoryMiB > ch.ParentLimits.MemoryMiB || ch.Limits.CPUMs > ch.ParentLimits.CPUMs || ch.Limits.WallMs > ch.ParentLimits.WallMs)
	labels := types.RecordMap{}
	for k, v := range run.Principal.Labels {
		labels[types.String(k)] = types.String(v)
	}
	strs := func(s []string) types.Set {
		vs := make([]types.Value, len(s))
		for i, x := range s {
			vs[i] = types.String(x)
		}
		return types.NewSet(vs...)
	}
	rm := types.RecordMap{
		"author_id":       types.String(run.Principal.ID),
		"author_kind":     types.String(run.Principal.Kind),
		"author_labels":   types.NewRecord(labels),
		"author_is_owner": types.Boolean(isOwner),
		"author_is_admin": types.Boolean(isAdmin),
		"first_release":   types.Boolean(ch.FirstRelease),
		"new_hosts":       strs(ch.NewHosts),
		"new_secrets":     strs(ch.NewSecrets),
		"new_tools":       strs(ch.NewTools),
		"adds_capability": types.Boolean(AddsCapability(ch)),
		"limits_raised":   types.Boolean(limitsRaised),
		"memory_mib":      types.Long(ch.Limits.MemoryMiB),
		"cpu_ms":          types.Long(ch.Limits.CPUMs),
		"wall_ms":         types.Long(ch.Limits.WallMs),
		"entry_changed":   types.Boolean(ch.EntryChanged),
		"entry_digest":    types.String(ch.EntryDigest),
		"tests_passed":    types.Boolean(tests.Passed),
		"tests_total":     types.Long(tests.Total),
		"tests_failed":    types.Long(tests.Failed),
	}
	plain := map[string]any{
		"author_id": run.Principal.ID, "author_kind": run.Principal.Kind, "author_labels": run.Principal.Labels,
		"author_is_owner": isOwner, "author_is_admin": isAdmin, "first_release": ch.FirstRelease, "new_hosts": ch.NewHosts, "new_secrets": ch.NewSecrets,
		"new_tools": ch.NewTools, "adds_capability": AddsCapability(ch), "limits_raised": limitsRaised, "memory_mib": ch.Limits.MemoryMiB,
		"cpu_ms": ch.Limits.CPUMs, "wall_ms": ch.Limits.WallMs, "entry_changed": ch.EntryChanged, "entry_digest": ch.EntryDigest,
		"tests_passed": tests.Passed, "tests_total": tests.Total, "tests_failed": tests.Failed,
	}
	return rm, plain, nil
}

// authorize evaluates action: allowed, the forbids that matched (those that
// only ask for review apart), and the permits.
func (g *CedarGate) authorize(p *gatePolicies, principal types.EntityUID, action string, resource types.EntityUID, rm types.RecordMap) (allowed bool, reviewOnly bool, reasons []string, err error) {
	req := cedar.Request{Principal: principal, Action: types.NewEntityUID("Action", types.String(action)),
		Resource: resource, Context: types.NewRecord(rm)}
	dec, diag := cedar.Authorize(p.set, types.EntityMap{}, req)
	if len(diag.Errors) > 0 {
		msgs := make([]string, 0, len(diag.Errors))
		for _, e := range diag.Errors {
			msgs = append(msgs, e.String())
		}
		return false, false, nil, fmt.Errorf("release policy error (failing closed): %s", strings.Join(msgs, "; "))
	}
	reviewOnly = true
	for _, r := range diag.Reasons {
		reasons = append(reasons, string(r.PolicyID))
		pol := p.set.Get(r.PolicyID)
		if pol != nil && pol.Effect() == cedar.Forbid && !p.review[r.PolicyID] {
			reviewOnly = false
		}
	}
	sort.Strings(reasons)
	return dec == cedar.Allow, reviewOnly, reasons, nil
}

// Decide implements Gate: allow when a permit matches and no forbid does,
// review when only @review forbids match (and a permit would allow), deny
// otherwise. A policy that errors denies.
func (g *CedarGate) Decide(ctx context.Context, run api.PipelineRun) (api.PipelineDecision, error) {
	if run.Config != nil {
		return g.decideConfig(run)
	}
	p := g.cur.Load()
	rm, plain, err := g.releaseContext(ctx, run)
	if err != nil {
		return api.PipelineDecision{}, err
	}
	in, _ := json.Marshal(map[string]any{"principal": principalUID(run.Principal).String(), "action": ActionRelease,
		"resource": "Agent::" + run.Agent, "context": plain})
	d := api.PipelineDecision{PolicySetDigest: p.digest, InputDigest: digestOf(in)}
	g.decide(p, &d, principalUID(run.Principal), ActionRelease, agentUID(run.Agent), rm)
	return d, nil
}

func agentUID(agent string) types.EntityUID { return types.NewEntityUID("Agent", types.String(agent)) }

// decide fills d's result and reasons: allow, review or deny.
func (g *CedarGate) decide(p *gatePolicies, d *api.PipelineDecision, principal types.EntityUID, action string, resource types.EntityUID, rm types.RecordMap) {
	allowed, reviewOnly, reasons, err := g.authorize(p, principal, action, resource, rm)
	if err != nil {
		d.Result, d.Reasons = api.GateDeny, []string{err.Error()}
		return
	}
	d.Reasons = reasons
	switch {
	case allowed:
		d.Result = api.GateAllow
	case reviewOnly && len(reasons) > 0 && g.permitsWithoutForbids(p, principal, action, resource, rm):
		d.Result = api.GateReview
	default:
		d.Result = api.GateDeny
		if len(reasons) == 0 {
			d.Reasons = []string{"no policy permits the change"}
		}
	}
}

// permitsWithoutForbids reports whether a permit of action matches: review
// can only help a change some policy permits.
func (g *CedarGate) permitsWithoutForbids(p *gatePolicies, principal types.EntityUID, action string, resource types.EntityUID, rm types.RecordMap) bool {
	permits := cedar.NewPolicySet()
	for id, pol := range p.set.All() {
		if pol.Effect() == cedar.Permit {
			permits.Add(id, pol)
		}
	}
	req := cedar.Request{Principal: principal, Action: types.NewEntityUID("Action", types.String(action)),
		Resource: resource, Context: types.NewRecord(rm)}
	dec, _ := cedar.Authorize(permits, types.EntityMap{}, req)
	return dec == cedar.Allow
}

// MayApprove implements Gate with agent.approve_release.
func (g *CedarGate) MayApprove(ctx context.Context, reviewer api.PipelinePrincipal, run api.PipelineRun) error {
	if run.Config != nil {
		return g.mayApproveConfig(reviewer, run)
	}
	p := g.cur.Load()
	rm, _, err := g.releaseContext(ctx, run)
	if err != nil {
		return err
	}
	rm["is_author"] = types.Boolean(reviewer.ID == run.Principal.ID)
	rm["reviewer_kind"] = types.String(reviewer.Kind)
	return g.mayApprove(p, reviewer, run, ActionApproveRelease, agentUID(run.Agent), rm)
}

// mayApprove decides a review action: nil or a forbidden problem.
func (g *CedarGate) mayApprove(p *gatePolicies, reviewer api.PipelinePrincipal, run api.PipelineRun, action string, resource types.EntityUID, rm types.RecordMap) error {
	allowed, _, reasons, err := g.authorize(p, principalUID(reviewer), action, resource, rm)
	if err != nil {
		return api.Errorf(api.KindForbidden, "%s may not review run %s: %v", reviewer.ID, run.ID, err)
	}
	if !allowed {
		why := "no policy lets them"
		if len(reasons) > 0 {
			why = "denied by " + strings.Join(reasons, ", ")
		}
		return api.Errorf(api.KindForbidden, "%s may not review run %s (%s)", reviewer.ID, run.ID, why)
	}
	return nil
}
