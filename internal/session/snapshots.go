package session

import (
	"bytes"
	"context"
	"fmt"

	"github.com/agentcloud/agentcloud/internal/store"
)

// Hibernated heaps are stored in the session_snapshots KV when they fit one
// store record, and in the session_heaps object store (chunked) when they
// do not, with the KV then holding a pointer to the object. The KV write is
// the commit point in both cases, so a crash between the two leaves the
// previous snapshot in force.

// heapPointer prefixes a KV snapshot value that names an object instead.
// A snapshot itself starts with zstd's magic bytes, never with this.
var heapPointer = []byte("heap-object:")

// heapObject is the object-store name of a session's large snapshot.
func heapObject(k sessKey) string { return "heap-" + store.Key(k.agent, k.id) }

// saveSnapshot stores snap as s's hibernated heap; the size of the
// snapshot it replaces (Meta.SnapshotBytes) says whether an object may be
// left to drop. The KV write is fenced (fence.go).
func (m *Manager) saveSnapshot(ctx context.Context, s *session, snap []byte) error {
	k, prev := s.key, s.meta.SnapshotBytes
	mkey := store.Key(k.agent, k.id)
	limit := m.cfg.Store.MaxRecordBytes()
	if len(snap) <= limit {
		if err := putFenced(ctx, m.snapshots, s.snapshotsFence(), mkey, snap); err != nil {
			return fmt.Errorf("store snapshot: %w", err)
		}
		if prev > int64(limit) { // the large heap stored before is not needed any more
			if err := m.heaps.Delete(ctx, heapObject(k)); err != nil {
				m.log.Warn("drop large snapshot", "agent", k.agent, "session", k.id, "err", err)
			}
		}
		return nil
	}
	name := heapObject(k)
	if err := m.heaps.Put(ctx, name, snap); err != nil {
		return fmt.Errorf("store large snapshot: %w", err)
	}
	if err := putFenced(ctx, m.snapshots, s.snapshotsFence(), mkey, append(append([]byte(nil), heapPointer...), name...)); err != nil {
		return fmt.Errorf("store snapshot pointer: %w", err)
	}
	return nil
}

// loadSnapshot returns k's hibernated heap, or nil when there is none.
func (m *Manager) loadSnapshot(ctx context.Context, k sessKey) ([]byte, error) {
	e, err := m.snapshots.Get(ctx, store.Key(k.agent, k.id))
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load snapshot: %w", err)
	}
	name, ok := bytes.CutPrefix(e.Value, heapPointer)
	if !ok {
		return e.Value, nil
	}
	snap, err := m.heaps.Get(ctx, string(name))
	if isNotFound(err) {
		return nil, nil // lost: the session starts from its template
	}
	if err != nil {
		return nil, fmt.Errorf("load large snapshot: %w", err)
	}
	return snap, nil
}

// deleteSnapshot removes k's hibernated heap.
func (m *Manager) deleteSnapshot(ctx context.Context, k sessKey) error {
	if err := m.heaps.Delete(ctx, heapObject(k)); err != nil && !isNotFound(err) {
		return err
	}
	return m.snapshots.Delete(ctx, store.Key(k.agent, k.id))
}
