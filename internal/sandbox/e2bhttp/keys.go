package e2bhttp

// API keys and envd access tokens (keys.go). An API key is "e2b_" and 40
// hex digits (the shape the e2b SDKs check before any call); the store
// keeps only its SHA-256, under which the principal it was issued to is
// recorded. A key acts as that principal: Cedar decides each call as for
// the principal's own credentials. An envd access token, answered by
// create and connect, binds one sandbox to the key that asked for it with
// an HMAC under the node key; envd calls carry it (X-Access-Token) in
// place of the API key, and it stops working when the key is revoked.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Key shapes.
const (
	keyPrefix      = "e2b_"
	keyHexLen      = 40 // 160 random bits
	tokenPrefix    = "e2bat_"
	keyIDLen       = 16 // hex digits of the hash shown as the key's id
	maxKeyNameLen  = 128
	maxKeysPerUser = 100
)

// keyRecord is what the store keeps for one key, under its hash.
type keyRecord struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	Principal string    `json:"principal"`
	Kind      string    `json:"kind"`
	Created   time.Time `json:"created"`
}

// Keys issues, checks and revokes API keys.
type Keys struct {
	kv      store.KV
	nodeKey []byte
	now     func() time.Time
}

func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// validKeyShape reports whether key looks like one this node issues.
func validKeyShape(key string) bool {
	h, ok := strings.CutPrefix(key, keyPrefix)
	if !ok || len(h) != keyHexLen {
		return false
	}
	for _, c := range []byte(h) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Issue makes a key for p.
func (k *Keys) Issue(ctx context.Context, p httpapi.Principal, name string) (api.E2BKey, error) {
	if len(name) > maxKeyNameLen || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return api.E2BKey{}, api.FieldErrorf(api.KindValidation, "name", "must be at most %d bytes without control characters", maxKeyNameLen)
	}
	mine, err := k.list(ctx, p, false)
	if err != nil {
		return api.E2BKey{}, err
	}
	if len(mine) >= maxKeysPerUser {
		return api.E2BKey{}, api.Errorf(api.KindConflict, "%s has %d E2B API keys, the most allowed: revoke one first", p.ID, len(mine))
	}
	var b [keyHexLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return api.E2BKey{}, fmt.Errorf("e2b key: %w", err)
	}
	key := keyPrefix + hex.EncodeToString(b[:])
	h := hashKey(key)
	rec := keyRecord{ID: h[:keyIDLen], Name: name, Principal: p.ID, Kind: p.Kind, Created: k.now().UTC().Truncate(time.Second)}
	v, _ := json.Marshal(rec)
	if _, err := k.kv.Create(ctx, h, v); err != nil {
		return api.E2BKey{}, fmt.Errorf("store e2b key: %w", err)
	}
	out := wireKey(rec)
	out.Key = key
	return out, nil
}

func wireKey(rec keyRecord) api.E2BKey {
	return api.E2BKey{ID: rec.ID, Name: rec.Name, Principal: rec.Principal, Created: rec.Created}
}

// lookup returns the record of the key with hash h.
func (k *Keys) lookup(ctx context.Context, h string) (keyRecord, error) {
	e, err := k.kv.Get(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return keyRecord{}, api.Errorf(api.KindUnauthenticated, "unknown or revoked API key: create one with agentcloud token create --e2b")
	}
	if err != nil {
		return keyRecord{}, api.Errorf(api.KindUnavailable, "cannot check the API key now: %v", err)
	}
	var rec keyRecord
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return keyRecord{}, fmt.Errorf("e2b key record: %w", err)
	}
	return rec, nil
}

// Authenticate returns the principal of an API key and the key's hash.
func (k *Keys) Authenticate(ctx context.Context, key string) (httpapi.Principal, string, error) {
	if key == "" {
		return httpapi.Principal{}, "", api.Errorf(api.KindUnauthenticated, "missing X-API-Key: send an E2B API key (agentcloud token create --e2b)")
	}
	if !validKeyShape(key) {
		return httpapi.Principal{}, "", api.Errorf(api.KindUnauthenticated, "malformed X-API-Key: want e2b_ and %d lowercase hex digits (agentcloud token create --e2b)", keyHexLen)
	}
	h := hashKey(key)
	rec, err := k.lookup(ctx, h)
	if err != nil {
		return httpapi.Principal{}, "", err
	}
	return httpapi.Principal{ID: rec.Principal, Kind: rec.Kind}, h, nil
}

// list returns the keys of p (every key when all).
func (k *Keys) list(ctx context.Context, p httpapi.Principal, all bool) ([]keyRecord, error) {
	hashes, err := k.kv.Keys(ctx, "")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("list e2b keys: %w", err)
	}
	var out []keyRecord
	for _, h := range hashes {
		rec, err := k.lookup(ctx, h)
		if err != nil {
			continue // revoked meanwhile
		}
		if all || rec.Principal == p.ID {
			out = append(out, rec)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// List returns the caller's keys (an administrator's: every key).
func (k *Keys) List(ctx context.Context, p httpapi.Principal) (api.E2BKeyList, error) {
	recs, err := k.list(ctx, p, p.Kind == "admin")
	if err != nil {
		return api.E2BKeyList{}, err
	}
	out := api.E2BKeyList{Keys: make([]api.E2BKey, 0, len(recs))}
	for _, r := range recs {
		out.Keys = append(out.Keys, wireKey(r))
	}
	return out, nil
}

// Revoke deletes the key with id; callers revoke their own keys,
// administrators any.
func (k *Keys) Revoke(ctx context.Context, p httpapi.Principal, id string) error {
	hashes, err := k.kv.Keys(ctx, "")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("list e2b keys: %w", err)
	}
	for _, h := range hashes {
		if !strings.HasPrefix(h, id) || len(id) != keyIDLen {
			continue
		}
		rec, err := k.lookup(ctx, h)
		if err != nil {
			break
		}
		if rec.Principal != p.ID && p.Kind != "admin" {
			break // as if absent: ids of others' keys are not confirmed
		}
		if err := k.kv.Delete(ctx, h); err != nil {
			return fmt.Errorf("revoke e2b key: %w", err)
		}
		return nil
	}
	return api.Errorf(api.KindNotFound, "no E2B API key %q of yours: list them with GET /v1/e2b/keys", id)
}

// envdToken is the envd access token of sandbox id for the key with hash h.
func (k *Keys) envdToken(sandboxID, h string) string {
	return tokenPrefix + h + "_" + hex.EncodeToString(k.mac(sandboxID, h))
}

func (k *Keys) mac(sandboxID, h string) []byte {
	m := hmac.New(sha256.New, k.nodeKey)
	m.Write([]byte("e2b-envd\x00" + sandboxID + "\x00" + h))
	return m.Sum(nil)
}

// AuthenticateEnvd returns the principal of an envd access token for
// sandboxID: its MAC must be this node's for that sandbox, and the key it
// was issued for must still exist.
func (k *Keys) AuthenticateEnvd(ctx context.Context, token, sandboxID string) (httpapi.Principal, string, error) {
	bad := api.Errorf(api.KindUnauthenticated, "invalid X-Access-Token for sandbox %q: use the envdAccessToken that create or connect answered for it", sandboxID)
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return httpapi.Principal{}, "", bad
	}
	h, macHex, ok := strings.Cut(rest, "_")
	got, err := hex.DecodeString(macHex)
	if !ok || err != nil || len(h) != 64 || subtle.ConstantTimeCompare(got, k.mac(sandboxID, h)) != 1 {
		return httpapi.Principal{}, "", bad
	}
	rec, err := k.lookup(ctx, h)
	if err != nil {
		return httpapi.Principal{}, "", err
	}
	return httpapi.Principal{ID: rec.Principal, Kind: rec.Kind}, h, nil
}
