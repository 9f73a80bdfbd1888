package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
)

// revokedPrefix is the first key token of every KVRevoker entry, so the
// revoker can share a bucket with other data; issuedPrefix that of the
// records of issued tokens.
const (
	revokedPrefix = "revoked-jti"
	issuedPrefix  = "issued-jti"
)

// KVRevoker is a Revoker persisted in a store.KV bucket, so revocations
// survive restarts and are shared by every node using the bucket. Each
// revoked jti is one key holding the time until which it must stay revoked
// (the token's expiry plus clock skew); entries past that time are treated
// as absent and removed by Prune. Until Watch is called, lookups read the
// bucket every time; after it, they read an in-memory copy that the bucket's
// watch keeps current (a revocation reaches every node within the watch's
// delivery delay, and this node at once), and fall back to the bucket if the
// watch ends.
type KVRevoker struct {
	kv  store.KV
	now func() time.Time

	mu      sync.RWMutex
	live    bool                 // the watch is running and caught up
	revoked map[string]time.Time // key -> until, while live
}

var _ Revoker = (*KVRevoker)(nil)

// NewKVRevoker returns a Revoker stored in kv using now as its clock (nil
// means time.Now).
func NewKVRevoker(kv store.KV, now func() time.Time) *KVRevoker {
	if now == nil {
		now = time.Now
	}
	return &KVRevoker{kv: kv, now: now}
}

type revokedEntry struct {
	// Until is when the entry may be forgotten: the token's expiry plus
	// clock skew, after which VerifyJWT rejects the token anyway.
	Until time.Time `json:"until"`
}

func revokedKey(jti string) string { return store.Key(revokedPrefix, jti) }

// Revoke marks jti revoked until expiry (plus clock skew). Revoking an
// already revoked jti keeps the later of the two times.
func (r *KVRevoker) Revoke(ctx context.Context, jti string, expiry time.Time) error {
	if jti == "" {
		return errors.New("revoke: empty token id")
	}
	until := expiry.Add(clockSkew).UTC()
	val, err := json.Marshal(revokedEntry{Until: until})
	if err != nil {
		return fmt.Errorf("revoke %s: %w", jti, err)
	}
	key := revokedKey(jti)
	for range 10 {
		_, err := r.kv.Create(ctx, key, val)
		if err == nil {
			r.remember(key, until)
			return nil
		}
		if !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("revoke %s: %w", jti, err)
		}
		e, err := r.kv.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted (pruned) in between: create again
		}
		if err != nil {
			return fmt.Errorf("revoke %s: %w", jti, err)
		}
		if old, err := decodeRevoked(e.Value); err == nil && !old.Until.Before(until) {
			r.remember(key, old.Until)
			return nil // already revoked at least as long
		}
		_, err = r.kv.Update(ctx, key, val, e.Revision)
		if err == nil {
			r.remember(key, until)
			return nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("revoke %s: %w", jti, err)
		}
	}
	return fmt.Errorf("revoke %s: too much contention", jti)
}

// IsRevoked reports whether jti is revoked and its entry has not expired.
func (r *KVRevoker) IsRevoked(ctx context.Context, jti string) (bool, error) {
	if jti == "" {
		return false, nil
	}
	r.mu.RLock()
	if r.live {
		until, ok := r.revoked[revokedKey(jti)]
		r.mu.RUnlock()
		return ok && !r.now().After(until), nil
	}
	r.mu.RUnlock()
	e, err := r.kv.Get(ctx, revokedKey(jti))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("is revoked %s: %w", jti, err)
	}
	ent, err := decodeRevoked(e.Value)
	if err != nil {
		// Fail closed: an unreadable entry still names a revoked token.
		return true, nil
	}
	return !r.now().After(ent.Until), nil
}

// Watch starts keeping an in-memory copy of the revocations, so IsRevoked
// costs a map lookup instead of a store read. It returns once the copy holds
// every current revocation; the copy is dropped (and lookups read the bucket
// again) when ctx ends or the watch fails.
func (r *KVRevoker) Watch(ctx context.Context) error {
	r.mu.Lock()
	r.revoked = map[string]time.Time{}
	r.mu.Unlock()
	done, err := r.kv.Watch(ctx, revokedPrefix, func(ev store.WatchEvent) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.revoked == nil {
			return
		}
		if ev.Deleted {
			delete(r.revoked, ev.Key)
			return
		}
		until := time.Unix(1<<40, 0) // fail closed: unreadable still names a revoked token
		if ent, err := decodeRevoked(ev.Value); err == nil {
			until = ent.Until
		}
		if old, ok := r.revoked[ev.Key]; !ok || until.After(old) {
			r.revoked[ev.Key] = until
		}
	})
	if err != nil {
		return fmt.Errorf("watch revocations: %w", err)
	}
	r.mu.Lock()
	r.live = true
	r.mu.Unlock()
	go func() {
		<-done
		r.mu.Lock()
		r.live, r.revoked = false, nil
		r.mu.Unlock()
	}()
	return nil
}

// remember records a revocation this node made, before the watch echoes it.
func (r *KVRevoker) remember(key string, until time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.revoked != nil {
		if old, ok := r.revoked[key]; !ok || until.After(old) {
			r.revoked[key] = until
		}
	}
}

// Issued is what the platform keeps about a token it issued through its
// API, until the token expires: whom it names, who asked for it, and the
// tokens it was minted with. It lets a token be revoked by id alone, by
// those it belongs to, for as long as it lives.
type Issued struct {
	ID      string    `json:"id"`
	Subject string    `json:"subject"` // SPIFFE ID the token names
	Minter  string    `json:"minter"`  // SPIFFE ID of the caller that asked for it
	Expires time.Time `json:"expires"`
	Chain   []string  `json:"chain,omitempty"`
}

func issuedKey(jti string) string { return store.Key(issuedPrefix, jti) }

// RecordIssued keeps rec until its token expires.
func (r *KVRevoker) RecordIssued(ctx context.Context, rec Issued) error {
	if rec.ID == "" {
		return errors.New("record issued token: empty token id")
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("record issued token %s: %w", rec.ID, err)
	}
	if _, err := r.kv.Put(ctx, issuedKey(rec.ID), b); err != nil {
		return fmt.Errorf("record issued token %s: %w", rec.ID, err)
	}
	return nil
}

// Issued returns the record of an issued token, if it is kept.
func (r *KVRevoker) Issued(ctx context.Context, jti string) (Issued, bool, error) {
	e, err := r.kv.Get(ctx, issuedKey(jti))
	if errors.Is(err, store.ErrNotFound) {
		return Issued{}, false, nil
	}
	if err != nil {
		return Issued{}, false, fmt.Errorf("issued token %s: %w", jti, err)
	}
	var rec Issued
	if err := json.Unmarshal(e.Value, &rec); err != nil || rec.ID != jti {
		return Issued{}, false, fmt.Errorf("issued token %s: unreadable record", jti)
	}
	return rec, true, nil
}

// Prune deletes entries whose tokens have expired (and unreadable ones),
// revocations and records of issued tokens alike, and returns how many it
// deleted. The daemon calls it periodically.
func (r *KVRevoker) Prune(ctx context.Context) (int, error) {
	n, err := r.prune(ctx, revokedPrefix, func(b []byte) (time.Time, bool) {
		e, err := decodeRevoked(b)
		return e.Until, err == nil
	})
	if err != nil {
		return n, err
	}
	m, err := r.prune(ctx, issuedPrefix, func(b []byte) (time.Time, bool) {
		var rec Issued
		err := json.Unmarshal(b, &rec)
		return rec.Expires.Add(clockSkew), err == nil && !rec.Expires.IsZero()
	})
	return n + m, err
}

func (r *KVRevoker) prune(ctx context.Context, prefix string, until func([]byte) (time.Time, bool)) (int, error) {
	keys, err := r.kv.Keys(ctx, prefix)
	if err != nil {
		return 0, fmt.Errorf("prune revocations: %w", err)
	}
	now := r.now()
	n := 0
	for _, k := range keys {
		e, err := r.kv.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("prune revocations: %w", err)
		}
		if t, ok := until(e.Value); ok && !now.After(t) {
			continue
		}
		if err := r.kv.Delete(ctx, k); err != nil {
			return n, fmt.Errorf("prune revocations: %w", err)
		}
		n++
	}
	return n, nil
}

func decodeRevoked(b []byte) (revokedEntry, error) {
	var e revokedEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return revokedEntry{}, err
	}
	if e.Until.IsZero() {
		return revokedEntry{}, errors.New("revocation entry without time")
	}
	return e, nil
}
