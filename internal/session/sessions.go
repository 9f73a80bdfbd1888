package session

import (
	"context"
	"encoding/json"
	"sort"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
)

func sortVersions(v []api.AgentVersion) {
	sort.Slice(v, func(i, j int) bool { return v[i].Created.Before(v[j].Created) })
}

// view renders a session for the API, preferring live in-memory facts.
func (m *Manager) view(meta Meta) api.Session {
	out := api.Session{Agent: meta.Agent, ID: meta.ID, State: "hibernated", Version: meta.Version,
		Created: meta.Created, LastActive: meta.LastActive, SnapshotBytes: meta.SnapshotBytes, Alarm: meta.Alarm}
	if !meta.Hibernated {
		out.State = "new"
	}
	m.mu.Lock()
	if s := m.sessions[sessKey{meta.Agent, meta.ID}]; s != nil && s.elem != nil {
		out.State = "live"
		out.LastActive = s.lastActive.UTC()
		out.MemoryBytes = s.mem
		out.SnapshotBytes = 0
	}
	m.mu.Unlock()
	return out
}

// Sessions lists an agent's sessions.
func (m *Manager) Sessions(ctx context.Context, agent string) ([]api.Session, error) {
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return nil, p
	}
	if _, err := m.currentVersion(ctx, agent); err != nil {
		return nil, err
	}
	keys, err := m.meta.Keys(ctx, store.Key(agent))
	if err != nil {
		return nil, err
	}
	out := make([]api.Session, 0, len(keys))
	for _, k := range keys {
		e, err := m.meta.Get(ctx, k)
		if err != nil {
			continue
		}
		var meta Meta
		if json.Unmarshal(e.Value, &meta) != nil {
			continue
		}
		out = append(out, m.view(meta))
	}
	return out, nil
}

// Session describes one session.
func (m *Manager) Session(ctx context.Context, agent, id string) (api.Session, error) {
	if err := CheckAddr(agent, id); err != nil {
		return api.Session{}, err
	}
	e, err := m.meta.Get(ctx, store.Key(agent, id))
	if isNotFound(err) {
		return api.Session{}, api.Errorf(api.KindNotFound, "session %s/%s does not exist", agent, id)
	}
	if err != nil {
		return api.Session{}, err
	}
	var meta Meta
	if err := json.Unmarshal(e.Value, &meta); err != nil {
		return api.Session{}, err
	}
	return m.view(meta), nil
}

// Delete removes a session: its isolate, snapshot, state and alarm.
func (m *Manager) Delete(ctx context.Context, agent, id string) error {
	if _, err := m.Session(ctx, agent, id); err != nil {
		return err
	}
	k := sessKey{agent, id}
	s := m.lookup(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.iso != nil {
		_ = s.iso.Close(ctx)
		s.iso = nil
	}
	m.forget(s)
	m.alarms.cancel(k)
	mkey := store.Key(agent, id)
	keys, err := m.state.Keys(ctx, mkey)
	if err != nil {
		return err
	}
	for _, key := range keys {
		if err := m.state.Delete(ctx, key); err != nil {
			return err
		}
	}
	if err := m.deleteSnapshot(ctx, k); err != nil {
		return err
	}
	for _, kv := range []store.KV{m.txns, m.alarmKV, m.meta} {
		if err := kv.Delete(ctx, mkey); err != nil {
			return err
		}
	}
	m.met.storedChanged(-1)
	if m.b.Owner != nil { // its fence keys (fence.go), last
		for _, kv := range []store.KV{m.state, m.txns, m.snapshots} {
			if err := kv.Delete(ctx, fenceKey(k)); err != nil {
				return err
			}
		}
	}
	return nil
}
