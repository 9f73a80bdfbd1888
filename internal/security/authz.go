package security

import (
	"context"
	"fmt"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/secrets"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/cedar-policy/cedar-go/types"
)

// openActions are route actions outside the Cedar schema that any
// authenticated principal may perform: reading the platform's own state,
// and listings whose handlers filter each item through Cedar.
var openActions = map[string]bool{
	"status.read": true, "whoami": true, "api.read": true, "policy.read": true,
	"agent.list": true, "secret.list": true, "approval.list": true, "sandbox.list": true,
	"volume.list":   true, // a principal lists only its own volumes
	"token.request": true, // the handler asks Cedar token.create for the subject
	"token.revoke":  true, // the handler lets callers revoke their own tokens
	// The toolbox authorizes tool.call per tool itself (tools.go).
	ActionToolList: true, ActionToolInvoke: true,
}

// createActions make the resource they name; for them a resource that does
// not exist yet counts as the caller's own.
var createActions = map[string]bool{"agent.deploy": true, "secret.set": true, "sandbox.create": true}

// readActions are not audited when allowed (denials always are), so reads
// do not pay for a durable write. Nor is a call into an agent session: it
// is the data plane, at request rates, and what a session then does that
// matters (egress, secrets, tools, sandboxes, label changes) is audited
// where it happens.
func readAction(a string) bool {
	return strings.HasSuffix(a, ".read") || strings.HasSuffix(a, ".list") || openActions[a] ||
		a == session.ActionSessionCall
}

// Authorize decides whether p may perform action on res: it builds the
// Cedar request and the entities it needs (owners come from the records)
// and asks the engine. A denial is an api.KindForbidden problem that says
// why and what the caller can do; denials and non-read allows are audited
// (denials not while a listing filters its items, session.Filtering).
func (s *Security) Authorize(ctx context.Context, p Principal, action string, res Resource) error {
	if err := s.onlyMetrics(p, action); err != nil {
		return err
	}
	if openActions[action] {
		return nil
	}
	ip, err := s.principalOf(p)
	if err != nil {
		return err
	}
	d, ruid, err := s.decide(ctx, ip, action, res, nil)
	if err != nil {
		return err
	}
	if d.Allowed && readAction(action) || !d.Allowed && session.IsFiltering(ctx) {
		if d.Allowed {
			return nil
		}
		return api.Errorf(api.KindForbidden, "%s", denialText(ip, action, ruid, d))
	}
	outcome := "allow"
	if !d.Allowed {
		outcome = "deny"
	}
	ev := api.AuditEvent{Type: audit.TypeDecision, Principal: p.ID, Action: action, Resource: uidString(ruid),
		Outcome: outcome, Reason: strings.Join(d.Reasons, ",")}
	if ip.Kind == identity.KindSession {
		ev.Session = ip.Agent + "/" + ip.Name
	}
	_ = s.audit.Record(ctx, ev)
	if d.Allowed {
		return nil
	}
	return api.Errorf(api.KindForbidden, "%s", denialText(ip, action, ruid, d))
}

// decide answers one question for an authenticated principal; labels, if
// not nil, replace a session's stored labels (policy tests).
func (s *Security) decide(ctx context.Context, ip identity.Principal, action string, res Resource, override *policy.Labels) (policy.Decision, policy.UID, error) {
	if override == nil && res.Type == policy.TypeSession && ip.Kind != identity.KindSession && ip.Kind != identity.KindSandbox {
		return s.decideOnSession(ctx, ip, action, res)
	}
	ents := types.EntityMap{}
	labels, err := s.principalEntity(ctx, ents, ip)
	if err != nil {
		return policy.Decision{}, policy.UID{}, err
	}
	if override != nil {
		labels = *override
	}
	ruid, err := s.resourceEntity(ctx, ents, res, ip, createActions[action])
	if err != nil {
		return policy.Decision{}, ruid, err
	}
	now := s.now()
	extra := types.RecordMap{
		"hour": types.Long(now.UTC().Hour()),
		"rate": types.Long(s.rate.hit(now, ip.ID.String())),
	}
	d, err := s.engine.Decide(ctx, ents, policy.Request{Principal: policy.PrincipalUID(ip), Action: action,
		Resource: ruid, Labels: labels, Context: extra})
	if err != nil {
		return d, ruid, fmt.Errorf("authorize %s: %w", action, err)
	}
	return d, ruid, nil
}

// decideOnSession is decide for the data plane's common question: a caller
// that is not a session or sandbox (so has no labels and an entity without
// attributes) acting on a session. The entities are then made from the
// caller, the session's address and its agent's owner alone, so the
// decision is cached under those (policy.DecideCached): the owner is
// looked up on every request, and the cache starts empty whenever the
// policy set changes. TestDecisionCacheClass checks it against decide's
// general path.
func (s *Security) decideOnSession(ctx context.Context, ip identity.Principal, action string, res Resource) (policy.Decision, policy.UID, error) {
	uid := policy.NewUID(policy.TypeSession, res.Parent+"/"+res.ID)
	owner, exists, err := s.agentOwner(ctx, res.Parent)
	if err != nil {
		return policy.Decision{}, uid, fmt.Errorf("owner of %s: %w", uidString(uid), err)
	}
	who := ip.ID.String()
	if !exists && createActions[action] {
		owner = who
	}
	now := s.now()
	rate := s.rate.hit(now, who)
	key := policy.CacheKey{Principal: who, Action: action, ResourceType: res.Type, ResourceParent: res.Parent, ResourceID: res.ID, Data: owner}
	d, err := s.engine.DecideCached(ctx, key, func() (policy.Entities, policy.Request) {
		puid := policy.PrincipalUID(ip)
		agent := policy.NewUID(policy.TypeAgent, res.Parent)
		attrs := types.RecordMap{"agent": agent}
		if o, ok := s.userUID(owner); ok {
			attrs["owner"] = o
		}
		ents := types.EntityMap{puid: {UID: puid}, agent: {UID: agent}, uid: {UID: uid, Attributes: types.NewRecord(attrs)}}
		return ents, policy.Request{Principal: puid, Action: action, Resource: uid,
			Context: types.RecordMap{"hour": types.Long(now.UTC().Hour()), "rate": types.Long(rate)}}
	})
	if err != nil {
		return d, uid, fmt.Errorf("authorize %s: %w", action, err)
	}
	return d, uid, nil
}

func uidString(u policy.UID) string { return string(u.Type) + "::" + string(u.ID) }

// denialText says why, and what the caller can do about it.
func denialText(ip identity.Principal, action string, res policy.UID, d policy.Decision) string {
	who := string(ip.Kind) + " " + ip.Name
	if ip.Kind == identity.KindSession {
		who = "session " + ip.Agent + "/" + ip.Name
	}
	base := fmt.Sprintf("%s may not %s %s", who, action, uidString(res))
	switch {
	case d.Approvable:
		return base + ": denied by " + strings.Join(d.Reasons, ", ") + "; an approval can allow it (agentcloud approvals list)"
	case len(d.Reasons) > 0:
		return base + ": denied by policy " + strings.Join(d.Reasons, ", ")
	case res.Type == policy.TypePlatform:
		return base + ": this operation is for administrators"
	}
	return base + ": no policy permits it (only its owner or an administrator may; an administrator can grant it with agentcloud policy apply)"
}

// principalEntity adds the caller's entity and returns its session labels.
func (s *Security) principalEntity(ctx context.Context, ents types.EntityMap, ip identity.Principal) (policy.Labels, error) {
	uid := policy.PrincipalUID(ip)
	if ip.Kind == identity.KindSandbox {
		return s.sandboxPrincipal(ctx, ents, ip, nil)
	}
	if ip.Kind != identity.KindSession {
		ents[uid] = types.Entity{UID: uid}
		return policy.Labels{}, nil
	}
	agent := policy.NewUID(policy.TypeAgent, ip.Agent)
	attrs := types.RecordMap{"agent": agent}
	agentAttrs := types.RecordMap{}
	info, ok, err := s.agents.AgentInfo(ctx, ip.Agent)
	if err == nil && ok {
		if o, ok := s.userUID(info.Owner); ok {
			attrs["owner"] = o
		}
		// The manifest's tools are the agent's tool grant.
		agentAttrs["tools"] = toolSet(info.Manifest.Tools)
	}
	ents[uid] = types.Entity{UID: uid, Attributes: types.NewRecord(attrs)}
	ents[agent] = types.Entity{UID: agent, Attributes: types.NewRecord(agentAttrs)}
	l, err := s.labels.get(ctx, ip.Agent, ip.Name)
	if err != nil {
		return policy.Labels{}, fmt.Errorf("labels of session %s/%s: %w", ip.Agent, ip.Name, err)
	}
	return l, nil
}

// userUID maps an owner SPIFFE ID to its User entity (owners are users;
// admin-owned resources have no owner attribute: admins may do anything).
func (s *Security) userUID(owner string) (policy.UID, bool) {
	if owner == "" {
		return policy.UID{}, false
	}
	p, err := identity.ParsePrincipal(s.td, owner)
	if err != nil || p.Kind != identity.KindUser {
		return policy.UID{}, false
	}
	return policy.NewUID(policy.TypeUser, p.Name), true
}

// resourceEntity adds the resource's entity with its owner and returns its
// UID. For an action that creates it, a resource that does not exist yet
// is treated as the caller's own (creating it makes the caller its owner);
// otherwise a missing resource has no owner, so only administrators get as
// far as the handler's 404 (users cannot probe for others' names).
func (s *Security) resourceEntity(ctx context.Context, ents types.EntityMap, res Resource, caller identity.Principal, creating bool) (policy.UID, error) {
	var (
		uid    policy.UID
		attrs  = types.RecordMap{}
		owner  string
		exists bool
		err    error
	)
	switch res.Type {
	case "":
		return policy.Platform, nil
	case policy.TypeAgent:
		uid = policy.NewUID(policy.TypeAgent, res.ID)
		owner, exists, err = s.agentOwner(ctx, res.ID)
	case policy.TypeSession:
		uid = policy.NewUID(policy.TypeSession, res.Parent+"/"+res.ID)
		agent := policy.NewUID(policy.TypeAgent, res.Parent)
		attrs["agent"] = agent
		ents[agent] = types.Entity{UID: agent}
		owner, exists, err = s.agentOwner(ctx, res.Parent)
	case policy.TypeSecret:
		uid = policy.NewUID(policy.TypeSecret, res.ID)
		var meta secrets.Secret
		owner, meta, exists, err = s.secretOwner(ctx, res.ID)
		if exists {
			hosts := make([]types.Value, 0, len(meta.AllowHosts))
			for _, h := range meta.AllowHosts {
				hosts = append(hosts, types.String(h))
			}
			attrs["allowHosts"] = types.NewSet(hosts...)
		}
	case policy.TypeTool:
		// Parent carries the tool's source; built-ins are marked so policy
		// can tell them from upstream tools.
		uid = policy.NewUID(policy.TypeTool, res.ID)
		if res.Parent == "builtin" {
			attrs["builtin"] = types.True
		}
	case policy.TypeSandbox:
		uid = policy.NewUID(policy.TypeSandbox, res.ID)
		s.sandboxEntity(ctx, ents, attrs, res.ID, caller, creating)
		ents[uid] = types.Entity{UID: uid, Attributes: types.NewRecord(attrs)}
		return uid, nil
	case policy.TypeApproval:
		uid = policy.NewUID(policy.TypeApproval, res.ID)
		a, gerr := s.approvals.Get(ctx, res.ID)
		owner, exists = a.Owner, gerr == nil
	default:
		uid = policy.NewUID(res.Type, res.ID)
		s.omu.RLock()
		fn := s.owners[res.Type]
		s.omu.RUnlock()
		if fn != nil {
			owner, exists, err = fn(ctx, res.ID, res.Parent)
		}
	}
	if err != nil {
		return uid, fmt.Errorf("owner of %s: %w", uidString(uid), err)
	}
	if !exists && creating {
		owner = caller.ID.String()
	}
	if o, ok := s.userUID(owner); ok {
		attrs["owner"] = o
	}
	ents[uid] = types.Entity{UID: uid, Attributes: types.NewRecord(attrs)}
	return uid, nil
}

// toolSet is an agent's tool grant: its manifest's tools as Tool entities.
func toolSet(names []string) types.Set {
	tools := make([]types.Value, 0, len(names))
	for _, t := range names {
		tools = append(tools, policy.NewUID(policy.TypeTool, t))
	}
	return types.NewSet(tools...)
}

func (s *Security) agentOwner(ctx context.Context, name string) (string, bool, error) {
	info, ok, err := s.agents.AgentInfo(ctx, name)
	if ok && err != nil {
		err = nil // the record exists; a broken version does not hide the owner
	}
	return info.Owner, ok, err
}
