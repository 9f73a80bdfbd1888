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
	// PutFenced and DeleteFenced write like Put and Delete, but only while
	// the fence key (of this bucket) is still at the fence's revision,
	// checked in the same operation (ErrFenced otherwise; fence.go).
	PutFenced(ctx context.Context, key string, value []byte, f Fence) (uint64, error)
	DeleteFenced(ctx context.Context, key string, f Fence) error
	// Keys lists keys under the dot-separated prefix (all keys when empty), sorted.
	Keys(ctx context.Context, prefix string) ([]string, error)
	// Watch delivers every current entry under prefix (all keys when empty)
	// to fn, returns once they have been delivered, then keeps delivering
	// changes (from this node and every other) in order until ctx ends or
	// the watch fails; done is closed then. fn runs on one goroutine.
	Watch(ctx context.Context, prefix string, fn func(WatchEvent)) (done <-chan struct{}, err error)
	// WatchKey is Watch of one key: its entry, if any, then its changes.
	WatchKey(ctx context.Context, key string, fn func(WatchEvent)) (done <-chan struct{}, err error)
	// LastRevision is the bucket's latest revision: every write to any of
	// its keys (put, delete) advances it, so an unchanged revision says
	// the bucket holds what it held when the revision was read.
	LastRevision(ctx context.Context) (uint64, error)
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
	// ReadCache, if positive, is the size in bytes of a ring that keeps the
	// values this process wrote, so that gets of recent writes do not load
	// JetStream's message blocks (readcache.go). Only an exclusive store
	// without TTL uses it; every KV of the bucket shares the first size.
	// A cached answer's Entry.Created is when this process saw the write
	// acknowledged (JetStream's own stamp is the server's receive time).
	ReadCache int64
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
	rc, err := s.readCacheFor(bucket, o.ReadCache, o.TTL)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", bucket, err)
	}
	k := &natsKV{s: s, stream: "KV_" + bucket, rc: rc}
	k.b = binding[jetstream.KeyValue]{s: s, open: func(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
		if s.opts.Replicas <= 1 {
			return js.CreateOrUpdateKeyValue(ctx, cfg)
		}
		return openReplicated(ctx, js, cfg)
	}}
	if _, err := k.b.get(ctx); err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", bucket, err)
	}
	return k, nil
}

// openReplicated opens a replicated bucket, creating it if it does not
// exist, with direct gets turned off: a direct get may be answered by any
// replica, one that has not yet applied the latest write, so a member
// would read an acknowledged write back stale (a lost update for the next
// increment). Without them every get is answered by the stream's leader.
// An existing bucket is not updated to cfg: every member opens every
// bucket at start, and each update would turn direct gets on again for a
// moment (CreateOrUpdateKeyValue always asks for them).
func openReplicated(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	st, err := js.Stream(ctx, "KV_"+cfg.Bucket)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err = js.CreateKeyValue(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			return nil, err
		}
		st, err = js.Stream(ctx, "KV_"+cfg.Bucket)
	}
	if err != nil {
		return nil, err
	}
	if scfg := st.CachedInfo().Config; scfg.AllowDirect {
		scfg.AllowDirect = false
		if _, err := js.UpdateStream(ctx, scfg); err != nil {
			return nil, err
		}
	}
	return js.KeyValue(ctx, cfg.Bucket)
}

type natsKV struct {
	s      *Store
	stream string
	b      binding[jetstream.KeyValue]
	rc     *readCache // nil: none
}

var _ KV = (*natsKV)(nil)

// handle checks key and returns the bucket on the current connection.
func (k *natsKV) handle(ctx context.Context, op, key string) (jetstream.KeyValue, error) {
	if err := checkKey("key", key, op == "list"); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	kv, err := k.b.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", op, short(key), err)
	}
	return kv, nil
}

func (k *natsKV) Get(ctx context.Context, key string) (Entry, error) {
	if e, ok := k.rc.get(key); ok {
		return e, nil
	}
	kv, err := k.handle(ctx, "get", key)
	if err != nil {
		return Entry{}, err
	}
	var e jetstream.KeyValueEntry
	err = k.s.read(ctx, k.stream, func(ctx context.Context) (err error) {
		e, err = kv.Get(ctx, key)
		return err
	})
	if err != nil {
		return Entry{}, mapKVErr("get", key, err)
	}
	return Entry{Key: e.Key(), Value: e.Value(), Revision: e.Revision(), Created: e.Created()}, nil
}

func (k *natsKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	kv, err := k.handle(ctx, "put", key)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	w := k.rc.begin(key)
	k.s.send()
	rev, err := kv.Put(ctx, key, value)
	err = k.s.durable(k.stream, err)
	k.rc.end(key, w, value, rev, err)
	k.s.met.wrote("put", t0, err)
	if err == nil {
		k.s.wroteKey(k.stream, key, rev)
	}
	return rev, mapKVErr("put", key, tooLarge("value", len(value), err))
}

func (k *natsKV) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	kv, err := k.handle(ctx, "create", key)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	w := k.rc.begin(key)
	k.s.send()
	rev, err := kv.Create(ctx, key, value)
	if d := deferredOf(ctx); d != nil {
		err = k.s.durableLater(d, k.stream, err)
	} else {
		err = k.s.durable(k.stream, err)
	}
	k.rc.end(key, w, value, rev, err)
	k.s.met.wrote("create", t0, err)
	if err == nil {
		k.s.wroteKey(k.stream, key, rev)
	}
	return rev, mapKVErr("create", key, tooLarge("value", len(value), err))
}

func (k *natsKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	kv, err := k.handle(ctx, "update", key)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	w := k.rc.begin(key)
	k.s.send()
	n, err := kv.Update(ctx, key, value, rev)
	err = k.s.durable(k.stream, err)
	k.rc.end(key, w, value, n, err)
	k.s.met.wrote("update", t0, err)
	if err == nil {
		k.s.wroteKey(k.stream, key, n)
	}
	return n, mapKVErr("update", key, tooLarge("value", len(value), err))
}

func (k *natsKV) Delete(ctx context.Context, key string) error {
	kv, err := k.handle(ctx, "delete", key)
	if err != nil {
		return err
	}
	t0 := time.Now()
	w := k.rc.begin(key)
	k.s.send()
	err = k.s.durable(k.stream, kv.Delete(ctx, key))
	k.rc.end(key, w, nil, 0, err)
	k.s.met.wrote("delete", t0, err)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return mapKVErr("delete", key, err)
}

// filter turns a key prefix into a subject filter.
func filter(prefix string) string {
	if prefix == "" {
		return ">"
	}
	return prefix + ".>"
}

func (k *natsKV) Keys(ctx context.Context, prefix string) ([]string, error) {
	kv, err := k.handle(ctx, "list", filter(prefix))
	if err != nil {
		return nil, err
	}
	var keys []string
	err = k.s.read(ctx, k.stream, func(ctx context.Context) error {
		l, err := kv.ListKeysFiltered(ctx, filter(prefix))
		if err != nil {
			return err
		}
		keys = keys[:0]
		for key := range l.Keys() {
			keys = append(keys, key)
		}
		return ctx.Err() // a listing cut short by its deadline is retried whole
	})
	if err != nil {
		return nil, mapKVErr("list", prefix, err)
	}
	sortStrings(keys)
	return keys, nil
}

// Watch follows the bucket across connection replacements: when the
// connection is replaced it watches again on the new one, delivers the
// entries again and reports keys deleted in the gap as deletions, so the
// caller's copy converges without knowing a gap happened.
func (k *natsKV) Watch(ctx context.Context, prefix string, fn func(WatchEvent)) (<-chan struct{}, error) {
	f := filter(prefix)
	if err := checkKey("prefix", f, true); err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	return k.watch(ctx, f, fn)
}

// WatchKey implements KV.
func (k *natsKV) WatchKey(ctx context.Context, key string, fn func(WatchEvent)) (<-chan struct{}, error) {
	if err := checkKey("key", key, false); err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	return k.watch(ctx, key, fn)
}

func (k *natsKV) watch(ctx context.Context, f string, fn func(WatchEvent)) (<-chan struct{}, error) {
	w := &kvWatch{k: k, filter: f, fn: fn, known: map[string]struct{}{}, stall: newStallCheck(),
		initial: make(chan struct{}), done: make(chan struct{})}
	k.s.watches.add(k.stream, w)
	go func() {
		defer k.s.watches.remove(k.stream, w)
		w.run(ctx)
	}()
	select {
	case <-w.initial:
		if w.err != nil {
			return nil, w.err
		}
		return w.done, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func mapKVErr(op, key string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return fmt.Errorf("%s %q: %w", op, short(key), ErrNotFound)
	case errors.Is(err, jetstream.ErrKeyExists), isWrongLastSeq(err):
		// Create on an existing key and Update at a stale revision both
		// surface as ErrKeyExists ("wrong last sequence"), or, on a
		// replicated bucket, as the API error 10164 itself.
		if op == "update" {
			return fmt.Errorf("%s %q: %w", op, short(key), ErrConflict)
		}
		return fmt.Errorf("%s %q: %w", op, short(key), ErrExists)
	case errors.Is(err, jetstream.ErrInvalidKey):
		return fmt.Errorf("%s %q: %w", op, short(key), ErrInvalid)
	default:
		return fmt.Errorf("%s %q: %w", op, short(key), mapConnErr(err))
	}
}

// Key joins parts into a KV key, escaping each part so that any string is a
// valid token: bytes outside [A-Za-z0-9_-] become =XX (hex).
func Key(parts ...string) string {
	if len(parts) == 1 && plainToken(parts[0]) {
		return parts[0] // the common case: nothing to escape, nothing to copy
	}
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

// plainToken says p is a non-empty run of [A-Za-z0-9_-]: Key leaves it as is.
func plainToken(p string) bool {
	if p == "" {
		return false
	}
	for j := 0; j < len(p); j++ {
		c := p[j]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
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
