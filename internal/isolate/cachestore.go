package isolate

import (
	"container/list"
	"strings"
	"sync"
	"time"
)

// CacheStore is a node's response cache (the Cache API's storage): in
// memory, bounded by a byte budget with least recently used entries
// evicted past it, and by a cap on each entry. Like Workers' cache of one
// location it is a cache, not storage: an entry may be gone at any time,
// and nothing survives a restart. Entries are keyed by agent, so an
// agent's sessions share them and no other agent sees them.
type CacheStore struct {
	budget, entryMax int64
	now              func() time.Time

	// mu protects everything below.
	mu    sync.Mutex
	used  int64
	lru   *list.List // of *cacheItem, most recently used first
	items map[cacheKey]*list.Element
}

type cacheKey struct{ agent, cache, url string }

type cacheItem struct {
	key  cacheKey
	resp CachedResponse
	size int64
}

// Default CacheStore bounds.
const (
	DefaultCacheBytes      = 32 << 20
	DefaultCacheEntryBytes = 5 << 20
)

// NewCacheStore returns a store of at most budget bytes in all, entryMax
// bytes an entry (<= 0: the defaults; entryMax is capped at budget), whose
// expiry decisions read now (nil: time.Now).
func NewCacheStore(budget, entryMax int64, now func() time.Time) *CacheStore {
	if budget <= 0 {
		budget = DefaultCacheBytes
	}
	if entryMax <= 0 {
		entryMax = DefaultCacheEntryBytes
	}
	if now == nil {
		now = time.Now
	}
	return &CacheStore{budget: budget, entryMax: min(entryMax, budget), now: now,
		lru: list.New(), items: map[cacheKey]*list.Element{}}
}

// EntryLimit is the most bytes one entry may take.
func (s *CacheStore) EntryLimit() int64 { return s.entryMax }

// Used is the bytes the entries take now.
func (s *CacheStore) Used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// Len is the number of entries.
func (s *CacheStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}

// Match returns agent's unexpired response under url in the named cache.
// The caller must not modify it.
func (s *CacheStore) Match(agent, cache, url string) (CachedResponse, bool) {
	k := cacheKey{agent, cache, url}
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.items[k]
	if !ok {
		return CachedResponse{}, false
	}
	it := el.Value.(*cacheItem)
	if !it.resp.Expires.IsZero() && !s.now().Before(it.resp.Expires) {
		s.remove(el)
		return CachedResponse{}, false
	}
	s.lru.MoveToFront(el)
	return it.resp, true
}

// Put stores r for agent under url in the named cache if cachePolicy lets
// it, evicting least recently used entries (anyone's) to stay within the
// budget. A put the policy refuses quietly removes nothing and answers
// false; one it forbids is its *HostError; one over the entry cap a
// *SizeError.
func (s *CacheStore) Put(agent, cache, url string, r CachedResponse) (bool, error) {
	// The size first: the policy reads the headers, and they count.
	size := r.Size() + int64(len(agent)+len(cache)+len(url))
	if size > s.entryMax {
		return false, &SizeError{Size: size, Limit: s.entryMax}
	}
	exp, ok, err := cachePolicy(r.Status, r.Headers, s.now())
	if err != nil || !ok {
		return false, err
	}
	r.Expires = exp
	k := cacheKey{agent, cache, url}
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.items[k]; ok {
		s.remove(el)
	}
	s.items[k] = s.lru.PushFront(&cacheItem{key: k, resp: r, size: size})
	s.used += size
	for s.used > s.budget {
		s.remove(s.lru.Back())
	}
	return true, nil
}

// Delete removes agent's entry under url in the named cache and reports
// whether there was one (an expired one counts as none).
func (s *CacheStore) Delete(agent, cache, url string) bool {
	k := cacheKey{agent, cache, url}
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.items[k]
	if !ok {
		return false
	}
	exp := el.Value.(*cacheItem).resp.Expires
	s.remove(el)
	return exp.IsZero() || s.now().Before(exp)
}

// Purge removes every entry of agent, and of any agent whose name is
// agent followed by a NUL and more (the session layer's incarnations).
func (s *CacheStore) Purge(agent string) {
	prefix := agent + "\x00"
	s.purge(func(a string) bool { return a == agent || strings.HasPrefix(a, prefix) })
}

// PurgeName drops every entry of exactly the cache name agent (a scratch
// session's own, when it closes), where Purge drops an agent's of every
// deployment.
func (s *CacheStore) PurgeName(agent string) {
	s.purge(func(a string) bool { return a == agent })
}

// purge drops the entries of the agents match names.
func (s *CacheStore) purge(match func(agent string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, el := range s.items {
		if match(k.agent) {
			s.remove(el)
		}
	}
}

// remove drops el. Caller holds s.mu.
func (s *CacheStore) remove(el *list.Element) {
	it := s.lru.Remove(el).(*cacheItem)
	delete(s.items, it.key)
	s.used -= it.size
}
