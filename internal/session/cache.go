package session

import (
	"strconv"
	"strings"

	"github.com/agentcloud/agentcloud/internal/isolate"
)

// The Cache API's storage (isolate.CacheStore): one per node, in memory,
// shared by each agent's sessions here. It is a cache, like Workers' cache
// of one location: entries are evicted past the budget, never replicated,
// and gone after a restart.

var _ isolate.CacheHost = (*callHost)(nil)

// cacheAgent is the name the agent's entries have in the node's cache:
// the agent's name and when it was first deployed, so an agent deleted and
// deployed again under the same name, by anyone, starts with none of the
// old one's entries (on every node, not only the one that deleted it).
// Session ids cannot contain a NUL, so neither name is another's.
func (h *callHost) cacheAgent() (string, error) {
	if h.cacheName != "" {
		return h.cacheName, nil
	}
	if strings.HasPrefix(h.s.key.id, scratchPrefix) {
		// A pipeline's scratch session (whose agent may not be deployed
		// yet) has a cache of its own, apart from the agent's sessions.
		h.cacheName = scratchCacheName(h.s.key)
		return h.cacheName, nil
	}
	ar, ok, err := h.m.agentRecord(h.ctx, h.s.key.agent)
	if err != nil {
		return "", h.stateErr("cache", err) // a store that cannot answer: 503
	}
	if !ok {
		return "", isolate.HostErrorf("NotSupportedError", "caches: agent %s is not deployed", h.s.key.agent)
	}
	h.cacheName = h.s.key.agent + "\x00" + strconv.FormatInt(ar.Created.UnixNano(), 10)
	return h.cacheName, nil
}

func (h *callHost) CacheMatch(cache, url string) (isolate.CachedResponse, bool, error) {
	defer h.timed(h.enter())
	a, err := h.cacheAgent()
	if err != nil {
		return isolate.CachedResponse{}, false, err
	}
	r, ok := h.m.caches.Match(a, cache, url)
	return r, ok, nil
}

func (h *callHost) CachePut(cache, url string, r isolate.CachedResponse) (bool, error) {
	defer h.timed(h.enter())
	a, err := h.cacheAgent()
	if err != nil {
		return false, err
	}
	return h.m.caches.Put(a, cache, url, r)
}

func (h *callHost) CacheDelete(cache, url string) (bool, error) {
	defer h.timed(h.enter())
	a, err := h.cacheAgent()
	if err != nil {
		return false, err
	}
	return h.m.caches.Delete(a, cache, url), nil
}

func (h *callHost) CacheEntryLimit() int64 { return h.m.caches.EntryLimit() }

// scratchCacheName is the cache name of scratch session k: its own, so
// that its entries go when it closes (Scratch.clear).
func scratchCacheName(k sessKey) string { return k.agent + "\x00" + k.id }
