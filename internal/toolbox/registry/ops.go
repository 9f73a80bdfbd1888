package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
)

// maxNotes bounds an entry's notes.
const maxNotes = 20

// Names lists the registered upstreams, sorted.
func (r *Registry) Names(ctx context.Context) ([]string, error) {
	keys, err := r.cfg.KV.Keys(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list upstreams: %w", err)
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		parts, err := store.KeyParts(k)
		if err == nil && len(parts) == 1 {
			out = append(out, parts[0])
		}
	}
	return out, nil
}

// List returns every entry, sorted by name, as stored.
func (r *Registry) List(ctx context.Context) ([]Entry, error) {
	names, err := r.Names(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(names))
	for _, n := range names {
		e, err := r.Get(ctx, n)
		if api.IsKind(err, api.KindNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Get returns one entry as stored.
func (r *Registry) Get(ctx context.Context, name string) (Entry, error) {
	u, err := r.load(ctx, name)
	if err != nil {
		return Entry{}, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.entry, nil
}

// load reads name from the KV into the node-local state.
func (r *Registry) load(ctx context.Context, name string) (*upstream, error) {
	kv, err := r.cfg.KV.Get(ctx, store.Key(name))
	if errors.Is(err, store.ErrNotFound) {
		r.forget(name)
		return nil, api.FieldErrorf(api.KindNotFound, "name", "no upstream named %q is registered (agentcloud tools registry lists them)", name)
	}
	if err != nil {
		return nil, fmt.Errorf("load upstream %s: %w", name, err)
	}
	var e Entry
	if err := json.Unmarshal(kv.Value, &e); err != nil {
		return nil, fmt.Errorf("load upstream %s: %w", name, err)
	}
	r.mu.Lock()
	u := r.state[name]
	if u == nil {
		u = &upstream{}
		r.state[name] = u
	}
	r.mu.Unlock()
	u.mu.Lock()
	if kv.Revision != u.rev {
		if u.entry.URL != e.URL || u.entry.Kind != e.Kind {
			u.closeLocked()
		}
		u.entry, u.rev = e, kv.Revision
	}
	u.mu.Unlock()
	return u, nil
}

// cached returns the node-local state of name, loading it if this node has
// not seen it yet.
func (r *Registry) cached(ctx context.Context, name string) (*upstream, error) {
	r.mu.Lock()
	u := r.state[name]
	r.mu.Unlock()
	if u != nil {
		return u, nil
	}
	return r.load(ctx, name)
}

func (r *Registry) forget(name string) {
	r.mu.Lock()
	u := r.state[name]
	delete(r.state, name)
	r.mu.Unlock()
	if u != nil {
		u.close()
	}
}

// update applies change to the stored entry with optimistic concurrency,
// retrying when another node wrote in between.
func (r *Registry) update(ctx context.Context, name string, change func(e *Entry) error) (Entry, error) {
	for range 5 {
		u, err := r.load(ctx, name)
		if err != nil {
			return Entry{}, err
		}
		u.mu.Lock()
		e, rev := u.entry, u.rev
		u.mu.Unlock()
		e.Tools = append([]Pinned(nil), e.Tools...)
		if err := change(&e); err != nil {
			return Entry{}, err
		}
		b, err := marshalEntry(e)
		if err != nil {
			return Entry{}, err
		}
		nrev, err := r.cfg.KV.Update(ctx, store.Key(name), b, rev)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return Entry{}, fmt.Errorf("save upstream %s: %w", name, err)
		}
		u.mu.Lock()
		if u.rev == rev {
			u.entry, u.rev = e, nrev
		}
		u.mu.Unlock()
		return e, nil
	}
	return Entry{}, api.Errorf(api.KindConflict, "upstream %s is being changed concurrently; retry", name)
}

// Refresh fetches the upstream's definitions now and reconciles them with
// the pins: changed and new tools are quarantined, removed ones dropped
// with a note. An unreachable upstream keeps its pins and records the error.
func (r *Registry) Refresh(ctx context.Context, name string) (Entry, error) {
	u, err := r.load(ctx, name)
	if err != nil {
		return Entry{}, err
	}
	u.refresh.Lock()
	defer u.refresh.Unlock()
	return r.refreshLocked(ctx, name, u)
}

func (r *Registry) refreshLocked(ctx context.Context, name string, u *upstream) (Entry, error) {
	defs, ferr := r.fetch(ctx, u)
	now := r.cfg.Now().UTC()
	e, err := r.update(ctx, name, func(e *Entry) error {
		e.Refreshed = now
		if ferr != nil {
			e.RefreshError = api.AsProblem(ferr).Detail
			if p := api.AsProblem(ferr); p.Kind() == api.KindInternal {
				e.RefreshError = ferr.Error()
			}
			return nil
		}
		pins, notes, err := reconcile(e.Tools, defs, now)
		if err != nil {
			return err
		}
		e.RefreshError, e.Tools = "", pins
		e.Notes = append(e.Notes, notes...)
		if len(e.Notes) > maxNotes {
			e.Notes = e.Notes[len(e.Notes)-maxNotes:]
		}
		return nil
	})
	if err != nil {
		return Entry{}, err
	}
	u.mu.Lock()
	u.checked = r.cfg.Now()
	u.mu.Unlock()
	for _, p := range e.Tools {
		if p.Status == StatusQuarantined {
			r.log.Warn("upstream tool quarantined", "upstream", name, "tool", p.Name, "reason", p.Reason)
		}
	}
	if ferr != nil {
		r.log.Warn("upstream refresh failed", "upstream", name, "err", e.RefreshError)
	}
	return e, nil
}

// maybeRefresh refreshes name when its definitions are older than the TTL.
// It fails only when the upstream is no longer registered (api.KindNotFound);
// an unreachable upstream keeps its pins.
func (r *Registry) maybeRefresh(ctx context.Context, name string, u *upstream) error {
	u.mu.Lock()
	fresh := r.cfg.Now().Sub(u.checked) < r.cfg.TTL
	u.mu.Unlock()
	if fresh {
		return nil
	}
	u.refresh.Lock()
	defer u.refresh.Unlock()
	u.mu.Lock()
	fresh = r.cfg.Now().Sub(u.checked) < r.cfg.TTL
	u.mu.Unlock()
	if fresh { // another caller refreshed while we waited
		return nil
	}
	if _, err := r.load(ctx, name); err != nil {
		if api.IsKind(err, api.KindNotFound) {
			return err
		}
		r.log.Warn("upstream load failed", "upstream", name, "err", err)
		return nil
	}
	if _, err := r.refreshLocked(ctx, name, u); err != nil {
		if api.IsKind(err, api.KindNotFound) {
			return err
		}
		r.log.Warn("upstream refresh failed", "upstream", name, "err", err)
	}
	return nil
}

// Approve re-pins the quarantined tools named (all quarantined tools when
// none are named) to what the upstream serves now, making them callable.
// It returns the entry and the tools approved.
func (r *Registry) Approve(ctx context.Context, name string, tools []string) (Entry, []string, error) {
	var done []string
	now := r.cfg.Now().UTC()
	e, err := r.update(ctx, name, func(e *Entry) error {
		pins, approved, err := approve(e.Tools, tools)
		if err != nil {
			return api.FieldErrorf(api.KindValidation, "tools", "%v", err)
		}
		e.Tools, done = pins, approved
		if len(approved) > 0 {
			e.Approved = now
		}
		return nil
	})
	if err != nil {
		return Entry{}, nil, err
	}
	r.log.Info("upstream tools approved", "upstream", name, "tools", done)
	return e, done, nil
}

// Remove unregisters name.
func (r *Registry) Remove(ctx context.Context, name string) error {
	if _, err := r.load(ctx, name); err != nil {
		return err
	}
	if err := r.cfg.KV.Delete(ctx, store.Key(name)); err != nil {
		return fmt.Errorf("remove upstream %s: %w", name, err)
	}
	r.forget(name)
	r.log.Info("tool upstream removed", "name", name)
	return nil
}

// Close drops every upstream connection.
func (r *Registry) Close() {
	r.mu.Lock()
	state := r.state
	r.state = map[string]*upstream{}
	r.mu.Unlock()
	for _, u := range state {
		u.close()
	}
}

func (u *upstream) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closeLocked()
}

func (u *upstream) closeLocked() {
	if u.conn != nil {
		u.conn.close()
		u.conn = nil
	}
}
