package session

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
)

// StateEntry is one key of a session's durable state.
type StateEntry struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// checkStateAddr validates an agent, session id and (if not "-") key given
// from outside a session.
func checkStateAddr(agent, id, key string) error {
	if err := CheckAddr(agent, id); err != nil {
		return err
	}
	if key != "-" {
		if p := api.CheckID("key", api.IDStateKey, key); p != nil {
			return p
		}
	}
	return nil
}

// StateGet reads one key of a session's durable state from outside the
// session (the toolbox's state tools). It sees what committed requests
// wrote; ok is false when the key is not set.
func (m *Manager) StateGet(ctx context.Context, agent, id, key string) (json.RawMessage, bool, error) {
	if err := checkStateAddr(agent, id, key); err != nil {
		return nil, false, err
	}
	e, err := m.state.Get(ctx, store.Key(agent, id, key))
	if isNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state get %s/%s: %w", agent, id, err)
	}
	return e.Value, true, nil
}

// StatePut writes one key of a session's durable state from outside the
// session's requests. The write is durable when StatePut returns; it is not
// part of any request's atomic commit (a request that writes the same key
// later wins). value must be JSON.
func (m *Manager) StatePut(ctx context.Context, agent, id, key string, value json.RawMessage) error {
	if err := checkStateAddr(agent, id, key); err != nil {
		return err
	}
	if len(value) > maxStateValue {
		return api.FieldErrorf(api.KindTooLarge, "value", "state value is %d bytes; the limit is %d", len(value), maxStateValue)
	}
	if !json.Valid(value) {
		return api.FieldErrorf(api.KindValidation, "value", "state value must be JSON")
	}
	if _, err := m.state.Put(ctx, store.Key(agent, id, key), value); err != nil {
		return fmt.Errorf("state put %s/%s: %w", agent, id, err)
	}
	m.met.stateWritten(len(value))
	return nil
}

// StateList lists the keys of a session's state that start with prefix,
// sorted, at most limit of them (limit <= 0: 100).
func (m *Manager) StateList(ctx context.Context, agent, id, prefix string, limit int) ([]StateEntry, error) {
	if err := checkStateAddr(agent, id, "-"); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 100
	}
	keys, err := m.state.Keys(ctx, store.Key(agent, id))
	if err != nil {
		return nil, fmt.Errorf("state list %s/%s: %w", agent, id, err)
	}
	var names []string
	for _, k := range keys {
		parts, err := store.KeyParts(k)
		if err != nil || len(parts) != 3 || !strings.HasPrefix(parts[2], prefix) {
			continue
		}
		names = append(names, parts[2])
	}
	sort.Strings(names)
	out := make([]StateEntry, 0, min(limit, len(names)))
	for _, k := range names {
		if len(out) == limit {
			break
		}
		e, err := m.state.Get(ctx, store.Key(agent, id, k))
		if err != nil {
			continue // deleted since listed
		}
		out = append(out, StateEntry{Key: k, Value: e.Value})
	}
	return out, nil
}
