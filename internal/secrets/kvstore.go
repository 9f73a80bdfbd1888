package secrets

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/agentcloud/agentcloud/internal/store"
)

// kvPrefix is the first key token of every KVStore record, so the store can
// share a bucket with other data.
const kvPrefix = "secret"

// KVStore is a Store persisted in a store.KV bucket: one key per secret
// holding the JSON of its Record (metadata and ciphertext; the value is
// never stored in plaintext).
type KVStore struct {
	kv store.KV
}

var _ Store = (*KVStore)(nil)

// NewKVStore returns a Store backed by kv.
func NewKVStore(kv store.KV) *KVStore { return &KVStore{kv: kv} }

func kvKey(name string) string { return store.Key(kvPrefix, name) }

// Put stores rec, replacing any record with the same name.
func (s *KVStore) Put(ctx context.Context, rec Record) error {
	if rec.Name == "" {
		return fmt.Errorf("put secret: %w", ErrInvalidName)
	}
	b, err := MarshalRecord(rec)
	if err != nil {
		return fmt.Errorf("put secret %s: %w", rec.Name, err)
	}
	if _, err := s.kv.Put(ctx, kvKey(rec.Name), b); err != nil {
		return fmt.Errorf("put secret %s: %w", rec.Name, err)
	}
	return nil
}

// Get returns the record named name, or an error wrapping ErrNotFound.
func (s *KVStore) Get(ctx context.Context, name string) (Record, error) {
	if name == "" {
		return Record{}, fmt.Errorf("get secret: %w", ErrNotFound)
	}
	e, err := s.kv.Get(ctx, kvKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return Record{}, fmt.Errorf("get secret %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("get secret %s: %w", name, err)
	}
	r, err := UnmarshalRecord(e.Value)
	if err != nil {
		return Record{}, fmt.Errorf("get secret %s: %w", name, err)
	}
	if r.Name != name {
		// The ciphertext is bound to the name by its AAD, so a mismatch
		// could not decrypt anyway; report it as corruption.
		return Record{}, fmt.Errorf("get secret %s: record names %q", name, r.Name)
	}
	return r, nil
}

// Delete removes name; deleting a missing secret is not an error.
func (s *KVStore) Delete(ctx context.Context, name string) error {
	if name == "" {
		return nil
	}
	if err := s.kv.Delete(ctx, kvKey(name)); err != nil {
		return fmt.Errorf("delete secret %s: %w", name, err)
	}
	return nil
}

// List returns the stored names, sorted.
func (s *KVStore) List(ctx context.Context) ([]string, error) {
	keys, err := s.kv.Keys(ctx, kvPrefix)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		parts, err := store.KeyParts(k)
		if err != nil || len(parts) != 2 || parts[0] != kvPrefix {
			continue
		}
		names = append(names, parts[1])
	}
	// Keys are sorted by their escaped form; names must be sorted as names.
	slices.Sort(names)
	return names, nil
}
