package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Entry is one value in a KV bucket.
type Entry struct {
	Key      string
	Value    []byte
	Revision uint64
	Created  time.Time
}

// KV is a key-value bucket. Keys are dot-separated tokens; build them with Key.
type KV interface {
	// Get returns ErrNotFound when the key is absent or deleted.
	Get(ctx context.Context, key string) (Entry, error)
	// Put writes unconditionally and returns the new revision.
	Put(ctx context.Context, key string, value []byte) (uint64, error)
	// Create writes only if the key is absent (ErrExists otherwise).
	Create(ctx context.Context, key string, value []byte) (uint64, error)
	// Update writes only if the key is at revision rev (ErrConflict otherwise).
	Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error)
	// Delete removes the key; deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// Keys lists keys under the dot-separated prefix (all keys when empty), sorted.
	Keys(ctx context.Context, prefix string) ([]string, error)
	// Watch delivers every current entry under prefix (all keys when empty)
	// to fn, returns once they have been delivered, then keeps delivering
	// changes (from this node and every other) in order until ctx ends or
	// the watch fails; done is closed then. fn runs on one goroutine.
	Watch(ctx context.Context, prefix string, fn func(WatchEvent)) (done <-chan struct{}, err error)
}

// WatchEvent is one entry seen by Watch; Deleted entries have no Value.
type WatchEvent struct {
	Key      string
	Value    []byte
	Revision uint64
	Deleted  bool
}

// KVOptions configures a bucket.
type KVOptions struct {
	Description string
	// History is how many revisions to keep per key (default 1).
	History uint8
	// TTL expires values after this long (0: never).
	TTL time.Duration
	// MaxValueSize caps a value in bytes (0: server default).
	MaxValueSize int32
}

// KV opens the named bucket, creating or updating it.
func (s *Store) KV(ctx context.Context, bucket string, o KVOptions) (KV, error) {
	cfg := jetstream.KeyValueConfig{
		Bucket:       bucket,
		Description:  o.Description,
		History:      max(o.History, 1),
		TTL:          o.TTL,
		MaxValueSize: o.MaxValueSize,
		Storage:      jetstream.FileStorage,
		Replicas:     s.opts.Replicas,
	}
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", bucket, err)
	}
	return &natsKV{kv: kv}, nil
}

type natsKV struct{ kv jetstream.KeyValue }

var _ KV = (*natsKV)(nil)

func (k *natsKV) Get(ctx context.Context, key string) (Entry, error) {
	e, err := k.kv.Get(ctx, key)
	if err != nil {
		return Entry{}, mapKVErr("get", key, err)
	}
	return Entry{Key: e.Key(), Value: e.Value(), Revision: e.Revision(), Created: e.Created()}, nil
}

func (k *natsKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := k.kv.Put(ctx, key, value)
	return rev, mapKVErr("put", key, err)
}

func (k *natsKV) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := k.kv.Create(ctx, key, value)
	return rev, mapKVErr("create", key, err)
}

func (k *natsKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	n, err := k.kv.Update(ctx, key, value, rev)
	return n, mapKVErr("update", key, err)
}

func (k *natsKV) Delete(ctx context.Context, key string) error {
	err := k.kv.Delete(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return mapKVErr("delete", key, err)
}

func (k *natsKV) Keys(ctx context.Context, prefix string) ([]string, error) {
	filter := ">"
	if prefix != "" {
		filter = prefix + ".>"
	}
	l, err := k.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, mapKVErr("list", prefix, err)
	}
	var keys []string
	for key := range l.Keys() {
		keys = append(keys, key)
	}
	sortStrings(keys)
	return keys, nil
}

func (k *natsKV) Watch(ctx context.Context, prefix string, fn func(WatchEvent)) (<-chan struct{}, error) {
	filter := ">"
	if prefix != "" {
		filter = prefix + ".>"
	}
	w, err := k.kv.Watch(ctx, filter)
	if err != nil {
		return nil, mapKVErr("watch", prefix, err)
	}
	initial, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = w.Stop() }()
		caughtUp := false
		catchUp := func() {
			if !caughtUp {
				caughtUp = true
				close(initial)
			}
		}
		defer catchUp()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil { // the end of the current entries
					catchUp()
					continue
				}
				fn(WatchEvent{Key: e.Key(), Value: e.Value(), Revision: e.Revision(),
					Deleted: e.Operation() != jetstream.KeyValuePut})
			}
		}
	}()
	select {
	case <-initial:
		return done, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func mapKVErr(op, key string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return fmt.Errorf("%s %q: %w", op, key, ErrNotFound)
	case errors.Is(err, jetstream.ErrKeyExists):
		// Create on an existing key and Update at a stale revision both
		// surface as ErrKeyExists ("wrong last sequence").
		if op == "update" {
			return fmt.Errorf("%s %q: %w", op, key, ErrConflict)
		}
		return fmt.Errorf("%s %q: %w", op, key, ErrExists)
	case errors.Is(err, jetstream.ErrInvalidKey):
		return fmt.Errorf("%s %q: %w", op, key, ErrInvalid)
	default:
		return fmt.Errorf("%s %q: %w", op, key, err)
	}
}

// Key joins parts into a KV key, escaping each part so that any string is a
// valid token: bytes outside [A-Za-z0-9_-] become =XX (hex).
func Key(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		if p == "" {
			b.WriteString("=")
			continue
		}
		for j := 0; j < len(p); j++ {
			c := p[j]
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
				b.WriteByte(c)
				continue
			}
			const hex = "0123456789ABCDEF"
			b.WriteByte('=')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// KeyParts reverses Key.
func KeyParts(key string) ([]string, error) {
	tokens := strings.Split(key, ".")
	out := make([]string, len(tokens))
	for i, t := range tokens {
		if t == "=" {
			continue
		}
		var b strings.Builder
		for j := 0; j < len(t); j++ {
			if t[j] != '=' {
				b.WriteByte(t[j])
				continue
			}
			if j+2 >= len(t) {
				return nil, fmt.Errorf("key %q: truncated escape: %w", key, ErrInvalid)
			}
			hi, ok1 := unhex(t[j+1])
			lo, ok2 := unhex(t[j+2])
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("key %q: bad escape: %w", key, ErrInvalid)
			}
			b.WriteByte(hi<<4 | lo)
			j += 2
		}
		out[i] = b.String()
	}
	return out, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
