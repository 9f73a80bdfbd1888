package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/agentcloud/agentcloud/internal/store"
)

// agentCache is an in-memory copy of the agents bucket kept current by a
// store watch, so the per-request lookups (authorization asks for an
// agent's owner and manifest on every call) cost a map read instead of a
// store round trip. A deploy on this node updates it at once; one on
// another node arrives through the watch. When the watch ends, lookups go
// to the store again.
type agentCache struct {
	mu   sync.RWMutex
	live bool
	recs map[string]agentRecord // store key -> record
}

// watch starts the copy; it returns once the copy holds every agent.
func (c *agentCache) watch(ctx context.Context, kv store.KV) error {
	c.mu.Lock()
	c.recs = map[string]agentRecord{}
	c.mu.Unlock()
	done, err := kv.Watch(ctx, "", func(ev store.WatchEvent) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.recs == nil {
			return
		}
		var ar agentRecord
		if ev.Deleted || json.Unmarshal(ev.Value, &ar) != nil || ar.Deleting {
			delete(c.recs, ev.Key)
			return
		}
		c.recs[ev.Key] = ar
	})
	if err != nil {
		return fmt.Errorf("watch agents: %w", err)
	}
	c.mu.Lock()
	c.live = true
	c.mu.Unlock()
	go func() {
		<-done
		c.mu.Lock()
		c.live, c.recs = false, nil
		c.mu.Unlock()
	}()
	return nil
}

// put records a write this node made, before the watch echoes it.
func (c *agentCache) put(key string, ar agentRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.recs == nil:
	case ar.Deleting:
		delete(c.recs, key)
	default:
		c.recs[key] = ar
	}
}

// agentRecord returns the named agent's record; ok is false when the agent
// is not deployed.
func (m *Manager) agentRecord(ctx context.Context, name string) (ar agentRecord, ok bool, err error) {
	key := store.Key(name)
	if p, ok := pinned(ctx, key); ok {
		return p.rec, p.exists, nil
	}
	m.agentCache.mu.RLock()
	if m.agentCache.live {
		ar, ok = m.agentCache.recs[key]
		m.agentCache.mu.RUnlock()
		if ok || m.b.Owner == nil {
			return ar, ok, nil
		}
		// In a cluster the agent may have been deployed through another
		// member a moment ago, its record not yet watched here: the
		// store decides.
	} else {
		m.agentCache.mu.RUnlock()
	}
	e, err := m.agents.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return agentRecord{}, false, nil
	}
	if err != nil {
		return agentRecord{}, false, fmt.Errorf("agent %s: %w", name, err)
	}
	// A record of its own: unmarshaling into ar would move ar to the heap
	// on every call, the cached path included.
	var rec agentRecord
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return agentRecord{}, false, fmt.Errorf("agent record %s: %w", name, err)
	}
	if rec.Deleting {
		return agentRecord{}, false, nil
	}
	return rec, true, nil
}
