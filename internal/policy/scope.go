package policy

import (
	"sync"
	"sync/atomic"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/ast"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// Scope prefiltering.
//
// cedar-go compiles a policy into the conjunction of its scope tests
// (principal, action, resource) followed by its conditions, and stops at the
// first false conjunct; scope tests never error. So a policy whose scope
// cannot match a request contributes nothing to the decision, its reasons or
// its errors, and leaving it out of the evaluation changes nothing but the
// cost. A scope test "cannot match" when it is decided by the request's
// types and action alone:
//
//   - principal/resource `== E`, `is T` and `is T in E` require the entity's
//     type to be E's type or T;
//   - action `== A` requires the action to be A; action `in A` and `in [..]`
//     require the action to be one of the listed actions provided the action
//     entity has no parents in the entity data (otherwise the whole set is
//     evaluated);
//   - `in E` on principal or resource depends on entity data and is always
//     kept.
//
// Filtered lists are cached per (principal type, action, resource type) in
// the snapshot, so they are rebuilt whenever the policy set changes.

// maxScopeCache bounds the per-snapshot cache; requests beyond it are
// filtered without caching.
const maxScopeCache = 4096

type scopeKey struct {
	principal types.EntityType
	action    types.String
	resource  types.EntityType
}

// scoped is the part of a snapshot that can apply to one scopeKey.
type scoped struct {
	permits policyList
	forbids policyList
	// all is what one cedar.Authorize evaluates: each forbid as its
	// permit twin (same id, same scope and conditions), then the permits.
	// With no forbid in it, Authorize reports every policy that matched,
	// and the engine tells forbids from permits by id.
	all policyList
}

// seal builds all from the forbids' twins and the permits, and seals the
// three lists.
func (sc *scoped) seal(twins map[types.PolicyID]*cedar.Policy) {
	sc.all = policyList{}
	for _, id := range sc.forbids.ids {
		sc.all.add(id, twins[id])
	}
	for i, id := range sc.permits.ids {
		sc.all.add(id, sc.permits.ps[i])
	}
	sc.permits.seal()
	sc.forbids.seal()
	sc.all.seal()
}

// permitTwin is a forbid policy with the effect permit: it matches exactly
// when the forbid does.
func permitTwin(p *cedar.Policy) *cedar.Policy {
	twin := *(*xast.Policy)(p.AST())
	twin.Effect = xast.EffectPermit
	return cedar.NewPolicyFromAST((*ast.Policy)(&twin))
}

// scopeIndex caches scoped lists for a snapshot.
type scopeIndex struct {
	m sync.Map // scopeKey → *scoped
	n atomic.Int32
}

// forRequest returns the policies that may apply to req. ents is consulted
// for the action entity's parents only.
func (s *snapshot) forRequest(ents Entities, req cedar.Request) *scoped {
	if a, ok := ents.Get(req.Action); ok && a.Parents.Len() > 0 {
		return &s.everything
	}
	k := scopeKey{principal: req.Principal.Type, action: req.Action.ID, resource: req.Resource.Type}
	if v, ok := s.index.m.Load(k); ok {
		return v.(*scoped)
	}
	sc := s.filter(k)
	if s.index.n.Load() < maxScopeCache {
		if v, loaded := s.index.m.LoadOrStore(k, sc); loaded {
			return v.(*scoped)
		}
		s.index.n.Add(1)
	}
	return sc
}

func (s *snapshot) filter(k scopeKey) *scoped {
	action := types.NewEntityUID("Action", k.action)
	sc := &scoped{}
	for _, from := range []struct{ src, dst *policyList }{{&s.everything.permits, &sc.permits}, {&s.everything.forbids, &sc.forbids}} {
		for i, id := range from.src.ids {
			p := from.src.ps[i]
			a := (*xast.Policy)(p.AST())
			if entityScopeMay(a.Principal, k.principal) && actionScopeMay(a.Action, action) && entityScopeMay(a.Resource, k.resource) {
				from.dst.add(id, p)
			}
		}
	}
	sc.seal(s.twins)
	return sc
}

// entityScopeMay reports whether a principal or resource scope may match an
// entity of type t.
func entityScopeMay(n xast.IsScopeNode, t types.EntityType) bool {
	switch n := n.(type) {
	case xast.ScopeTypeEq:
		return n.Entity.Type == t
	case xast.ScopeTypeIs:
		return n.Type == t
	case xast.ScopeTypeIsIn:
		return n.Type == t
	}
	return true // all, in E, or anything unknown
}

// actionScopeMay reports whether an action scope may match action, given
// that the action entity has no parents.
func actionScopeMay(n xast.IsScopeNode, action types.EntityUID) bool {
	switch n := n.(type) {
	case xast.ScopeTypeEq:
		return n.Entity == action
	case xast.ScopeTypeIn:
		return n.Entity == action
	case xast.ScopeTypeInSet:
		for _, e := range n.Entities {
			if e == action {
				return true
			}
		}
		return false
	}
	return true
}
