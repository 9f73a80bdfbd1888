package policy

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// Decision cache.
//
// A caller whose entities and request are a function of a few strings
// (who asks, for what, on which resource, and the data the entities are
// made from, such as the resource's owner) can let the engine remember the
// decision under those strings: DecideCached. The cache lives in the policy
// snapshot, so applying a policy set starts an empty one; nothing is
// skipped but the evaluation, as the caller still looks up the data the key
// is made of on every request. A decision is stored only when no policy of
// the snapshot can observe the request's extra context keys (the rate and
// hour the daemon adds; see contextuse.go), and only if it had no
// evaluation errors (an errored forbid is logged each time).

// CacheKey is everything a cached decision depends on besides the policy
// set. The caller guarantees that equal keys build equal entities and
// requests (up to extra context keys).
type CacheKey struct {
	Principal      string // the principal's identity
	Action         string
	ResourceType   string
	ResourceParent string
	ResourceID     string
	Data           string // the other data the entities are made from
}

// maxDecisionCache bounds a snapshot's cache; past it, decisions are made
// without being stored.
const maxDecisionCache = 8192

// decisionCache is a snapshot's remembered decisions.
type decisionCache struct {
	mu sync.RWMutex // guards m
	m  map[CacheKey]Decision
}

func (c *decisionCache) get(k CacheKey) (Decision, bool) {
	c.mu.RLock()
	d, ok := c.m[k]
	c.mu.RUnlock()
	return d, ok
}

func (c *decisionCache) put(k CacheKey, d Decision) {
	// Callers may append to the slices they get: clip them so an append
	// never writes into the stored decision's arrays.
	d.Reasons, d.Errors = slices.Clip(d.Reasons), slices.Clip(d.Errors)
	c.mu.Lock()
	if c.m == nil {
		c.m = map[CacheKey]Decision{}
	}
	if len(c.m) < maxDecisionCache {
		c.m[k] = d
	}
	c.mu.Unlock()
}

// DecideCached is Decide for a request that build makes from key alone:
// it answers from the current policy set's cache, or calls build, decides
// and remembers the decision when it may. A cached Decision's slices are
// shared: read them, do not change their elements.
func (e *Engine) DecideCached(ctx context.Context, key CacheKey, build func() (Entities, Request)) (Decision, error) {
	snap := e.cur.Load()
	if d, ok := snap.cache.get(key); ok {
		if err := ctx.Err(); err != nil {
			return Decision{}, fmt.Errorf("decide %s: %w", key.Action, err)
		}
		e.met.decided(key.Action, d, nil)
		return d, nil
	}
	ents, req := build()
	d, err := e.decideIn(ctx, snap, ents, req)
	e.met.decided(req.Action, d, err)
	if err == nil && len(d.Errors) == 0 && req.Action == key.Action && snap.cacheable(req) {
		snap.cache.put(key, d)
	}
	return d, err
}

// cacheable reports whether no policy of s can observe req's extra
// context keys.
func (s *snapshot) cacheable(req Request) bool {
	for k := range req.Context {
		if s.ctxUse.uses(string(k)) {
			return false
		}
	}
	return true
}
