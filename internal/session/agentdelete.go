package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
)

// DeleteAgent removes an agent: its record (the current-version pointer
// and routing), every session (live isolate, state, pending commits,
// snapshot, alarm), every version with its bundle and template, and its
// log stream. The record is first marked deleting (durably), so from
// then on the agent is not found by requests, listings and deploys
// (a deploy of the name fails with a conflict until the deletion ends);
// then the rest is removed and the record last. A deletion cut short by
// a crash is finished by the next DeleteAgent or the next Start, so no
// session of a deleted agent can come back, not even to a new agent of
// the same name.
func (m *Manager) DeleteAgent(ctx context.Context, agent string) error {
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return p
	}
	if err := m.deleteAgent(ctx, agent); err != nil {
		return err
	}
	// Its preview (preview.go) goes with it.
	if err := m.deleteAgent(ctx, PreviewName(agent)); err != nil && !api.IsKind(err, api.KindNotFound) {
		return err
	}
	return nil
}

// deleteAgent is DeleteAgent of an internal agent name (an agent or its
// preview namespace).
func (m *Manager) deleteAgent(ctx context.Context, agent string) error {
	m.routeMu.Lock()
	defer m.routeMu.Unlock()
	key := store.Key(agent)
	e, err := m.agents.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return api.Errorf(api.KindNotFound, "agent %s is not deployed", agent)
	}
	if err != nil {
		return fmt.Errorf("agent %s: %w", agent, err)
	}
	var ar agentRecord
	if err := json.Unmarshal(e.Value, &ar); err != nil {
		return fmt.Errorf("agent record %s: %w", agent, err)
	}
	if !ar.Deleting {
		ar.Deleting = true
		rec, _ := json.Marshal(ar)
		if _, err := m.agents.Update(ctx, key, rec, e.Revision); errors.Is(err, store.ErrConflict) {
			return api.Errorf(api.KindConflict, "agent %s changed meanwhile; delete it again", agent)
		} else if err != nil {
			return fmt.Errorf("mark agent %s deleting: %w", agent, err)
		}
	}
	m.agentCache.put(key, ar)
	return m.finishDelete(ctx, agent)
}

// finishDelete removes what a deleting agent left and then its record.
func (m *Manager) finishDelete(ctx context.Context, agent string) error {
	m.dropLive(agent)
	prefix := store.Key(agent)
	snaps, err := m.snapshots.Keys(ctx, prefix)
	if err != nil {
		return fmt.Errorf("delete agent %s: %w", agent, err)
	}
	for _, k := range snaps {
		if err := m.heaps.Delete(ctx, "heap-"+k); err != nil && !isNotFound(err) {
			return fmt.Errorf("delete agent %s: heap: %w", agent, err)
		}
	}
	// Meta last: a session is listed until everything of it is gone.
	for _, kv := range []store.KV{m.state, m.txns, m.snapshots, m.alarmKV} {
		if _, err := deletePrefix(ctx, kv, prefix); err != nil {
			return fmt.Errorf("delete agent %s: %w", agent, err)
		}
	}
	n, err := deletePrefix(ctx, m.meta, prefix)
	m.met.storedChanged(-n)
	if err != nil {
		return fmt.Errorf("delete agent %s: %w", agent, err)
	}
	vkeys, err := m.versions.Keys(ctx, prefix)
	if err != nil {
		return fmt.Errorf("delete agent %s: %w", agent, err)
	}
	for _, k := range vkeys {
		digest := k[strings.LastIndexByte(k, '.')+1:]
		e, err := m.versions.Get(ctx, k)
		if err == nil {
			var vr versionRecord
			if json.Unmarshal(e.Value, &vr) == nil && vr.Digest != "" {
				digest = vr.Digest
			}
		}
		for _, name := range []string{digest, "template-" + digest} {
			if err := m.bundles.Delete(ctx, name); err != nil && !isNotFound(err) {
				return fmt.Errorf("delete agent %s: %s: %w", agent, name, err)
			}
		}
		if err := m.versions.Delete(ctx, k); err != nil && !isNotFound(err) {
			return fmt.Errorf("delete agent %s: version: %w", agent, err)
		}
		m.vmu.Lock()
		delete(m.vcache, digest)
		m.vmu.Unlock()
	}
	m.logs.drop(agent)
	m.caches.Purge(agent)
	if err := m.agents.Delete(ctx, store.Key(agent)); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete agent %s: %w", agent, err)
	}
	return nil
}

// deletePrefix deletes the keys under prefix and returns how many it
// deleted.
func deletePrefix(ctx context.Context, kv store.KV, prefix string) (int, error) {
	keys, err := kv.Keys(ctx, prefix)
	if err != nil {
		return 0, err
	}
	for i, k := range keys {
		if err := kv.Delete(ctx, k); err != nil && !isNotFound(err) {
			return i, err
		}
	}
	return len(keys), nil
}

// dropLive closes the agent's live sessions on this node and cancels
// their alarms.
func (m *Manager) dropLive(agent string) {
	m.mu.Lock()
	var live []*session
	for k, s := range m.sessions {
		if k.agent == agent {
			live = append(live, s)
		}
	}
	m.mu.Unlock()
	for _, s := range live {
		s.mu.Lock()
		if s.iso != nil {
			_ = s.iso.Close(context.Background())
			s.iso = nil
		}
		if !s.gone {
			m.forget(s)
		}
		s.mu.Unlock()
	}
	m.alarms.cancelAgent(agent)
}

// resumeDeletes finishes deletions a crash cut short (Start).
func (m *Manager) resumeDeletes(ctx context.Context) error {
	keys, err := m.agents.Keys(ctx, "")
	if err != nil {
		return fmt.Errorf("resume agent deletions: %w", err)
	}
	for _, k := range keys {
		e, err := m.agents.Get(ctx, k)
		if err != nil {
			continue
		}
		var ar agentRecord
		if json.Unmarshal(e.Value, &ar) != nil || !ar.Deleting {
			continue
		}
		if err := m.finishDelete(ctx, ar.Name); err != nil {
			return fmt.Errorf("resume deletion: %w", err)
		}
	}
	return nil
}
