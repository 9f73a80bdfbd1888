package pipeline

import (
	"encoding/json"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/agentcloud/agentcloud/api"
)

// The Cedar actions of a configuration run's gate and review.
const (
	ActionConfigChange  = "config.change"
	ActionApproveConfig = "config.approve_change"
)

// configUID is a configuration target as a Cedar entity:
// Config::"<target>" or Config::"<target>/<name>".
func configUID(c *api.PipelineConfigChange) types.EntityUID {
	id := c.Target
	if c.Name != "" {
		id += "/" + c.Name
	}
	return types.NewEntityUID("Config", types.String(id))
}

// configContext is the Cedar context of a configuration run and the same
// values as plain JSON (whose digest is the decision's input digest).
func configContext(run api.PipelineRun) (types.RecordMap, map[string]any) {
	c := run.Config
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
	isOwner := c.Owner != "" && run.Principal.Kind == api.AuthorHuman && c.Owner == run.Principal.ID
	rm := types.RecordMap{
		"author_id":       types.String(run.Principal.ID),
		"author_kind":     types.String(run.Principal.Kind),
		"author_labels":   types.NewRecord(labels),
		"author_is_admin": types.Boolean(IsAdmin(run.Principal)),
		"author_is_owner": types.Boolean(isOwner),
		"target":          types.String(c.Target),
		"name":            types.String(c.Name),
		"adds":            strs(c.Adds),
		"removes":         strs(c.Removes),
		"adds_capability": types.Boolean(len(c.Adds) > 0),
	}
	plain := map[string]any{
		"author_id": run.Principal.ID, "author_kind": run.Principal.Kind, "author_labels": run.Principal.Labels,
		"author_is_admin": IsAdmin(run.Principal), "author_is_owner": isOwner, "target": c.Target, "name": c.Name,
		"adds": c.Adds, "removes": c.Removes, "adds_capability": len(c.Adds) > 0, "digest": c.Digest, "parent": c.Parent,
	}
	return rm, plain
}

// decideConfig decides config.change for a configuration run.
func (g *CedarGate) decideConfig(run api.PipelineRun) (api.PipelineDecision, error) {
	p := g.cur.Load()
	rm, plain := configContext(run)
	uid := configUID(run.Config)
	in, _ := json.Marshal(map[string]any{"principal": principalUID(run.Principal).String(), "action": ActionConfigChange,
		"resource": uid.String(), "context": plain})
	d := api.PipelineDecision{PolicySetDigest: p.digest, InputDigest: digestOf(in)}
	g.decide(p, &d, principalUID(run.Principal), ActionConfigChange, uid, rm)
	return d, nil
}

// mayApproveConfig decides config.approve_change.
func (g *CedarGate) mayApproveConfig(reviewer api.PipelinePrincipal, run api.PipelineRun) error {
	p := g.cur.Load()
	rm, _ := configContext(run)
	rm["is_author"] = types.Boolean(reviewer.ID == run.Principal.ID)
	rm["reviewer_kind"] = types.String(reviewer.Kind)
	rm["reviewer_is_admin"] = types.Boolean(IsAdmin(reviewer))
	return g.mayApprove(p, reviewer, run, ActionApproveConfig, configUID(run.Config), rm)
}
