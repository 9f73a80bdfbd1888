// Package secrets owns secret values: AES-256-GCM encryption at rest under a
// node key file, destination rules per secret (https to allowed hosts and
// ports, plain http only when allowed), substitution of {{secret:NAME}}
// placeholders in outbound request headers, and the Scrubber that removes
// substituted values (and their encoded forms) from what comes back.
// Secrets never leave this package in plaintext except through Substitute,
// which the egress proxy calls for destinations the secret allows.
// Persistence is behind the
// Store interface (the daemon backs it with NATS KV); this package does not
// decide who may set or use a secret (that is internal/policy).
package secrets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
)

// KeySize is the length of the encryption key in bytes (AES-256).
const KeySize = 32

// Errors.
var (
	ErrNotFound       = errors.New("secret not found")
	ErrDecrypt        = errors.New("secret decryption failed")
	ErrHostNotAllowed = errors.New("secret not allowed for host")
	ErrInvalidName    = errors.New("invalid secret name")
)

// LoadOrCreateKey reads a 32-byte key from path, creating it (mode 0600, from
// crypto/rand) if it does not exist.
func LoadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != KeySize {
			return nil, fmt.Errorf("key file %s: %d bytes, want %d", path, len(b), KeySize)
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("key dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, fmt.Errorf("write key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write key file: %w", err)
	}
	return key, nil
}

// Secret is a secret's metadata. The value is held only encrypted.
type Secret struct {
	Name string `json:"name"`
	// AllowHosts are host patterns the secret may be sent to: an exact name
	// ("api.example.com") or a wildcard ("*.example.com", matching any
	// subdomain but not example.com itself), optionally with a port
	// ("api.example.com:8443"). An entry without a port allows only the
	// scheme's default port (see ParseAllowHost and Allows).
	AllowHosts []string `json:"allow_hosts"`
	// AllowHTTP lets the secret go over plain http too; without it only
	// https requests get it.
	AllowHTTP bool `json:"allow_http,omitempty"`
}

// Record is what a Store persists: metadata plus nonce-prefixed ciphertext.
type Record struct {
	Secret
	Ciphertext []byte `json:"ciphertext"`
}

// Store persists sealed records by name.
type Store interface {
	Put(ctx context.Context, rec Record) error
	Get(ctx context.Context, name string) (Record, error) // ErrNotFound if absent
	Delete(ctx context.Context, name string) error
	List(ctx context.Context) ([]string, error)
}

// MemStore is an in-memory Store.
type MemStore struct {
	mu   sync.RWMutex // protects recs
	recs map[string]Record
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{recs: make(map[string]Record)} }

// Put stores a copy of rec, replacing any record with the same name.
func (m *MemStore) Put(_ context.Context, rec Record) error {
	if rec.Name == "" {
		return fmt.Errorf("put secret: %w", ErrInvalidName)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs[rec.Name] = cloneRecord(rec)
	return nil
}

// Get returns a copy of the record named name.
func (m *MemStore) Get(_ context.Context, name string) (Record, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, ok := m.recs[name]
	if !ok {
		return Record{}, fmt.Errorf("get %s: %w", name, ErrNotFound)
	}
	return cloneRecord(r), nil
}

// cloneRecord copies rec's slices, so a caller's changes never reach a
// stored record (as with a store that serializes).
func cloneRecord(rec Record) Record {
	rec.AllowHosts = slices.Clone(rec.AllowHosts)
	rec.Ciphertext = slices.Clone(rec.Ciphertext)
	return rec
}

// Delete removes name; deleting a missing secret is not an error.
func (m *MemStore) Delete(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.recs, name)
	return nil
}

// List returns the stored names, sorted.
func (m *MemStore) List(_ context.Context) ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	names := make([]string, 0, len(m.recs))
	for n := range m.recs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// Manager encrypts, stores and substitutes secrets.
type Manager struct {
	aead  cipher.AEAD
	store Store
	// rmw serialises this node's read-modify-writes of one record
	// (SetMetadata, SetValue) so neither loses the other's half.
	rmw sync.Mutex
}

// NewManager returns a Manager sealing with key (32 bytes) into store.
func NewManager(key []byte, store Store) (*Manager, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("new secrets manager: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("new secrets manager: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("new secrets manager: %w", err)
	}
	return &Manager{aead: aead, store: store}, nil
}

// aad binds a ciphertext to its secret name so records cannot be swapped.
func aad(name string) []byte { return []byte("agentcloud/secret/v1:" + name) }

// Seal encrypts value for name: a random 12-byte nonce followed by the
// GCM ciphertext.
func (m *Manager) Seal(name string, value []byte) ([]byte, error) {
	nonce := make([]byte, m.aead.NonceSize(), m.aead.NonceSize()+len(value)+m.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal %s: %w", name, err)
	}
	return m.aead.Seal(nonce, nonce, value, aad(name)), nil
}

// Open decrypts a ciphertext produced by Seal for name.
func (m *Manager) Open(name string, ciphertext []byte) ([]byte, error) {
	ns := m.aead.NonceSize()
	if len(ciphertext) < ns+m.aead.Overhead() {
		return nil, fmt.Errorf("open %s: short ciphertext: %w", name, ErrDecrypt)
	}
	pt, err := m.aead.Open(nil, ciphertext[:ns], ciphertext[ns:], aad(name))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, ErrDecrypt)
	}
	return pt, nil
}

// Set encrypts value and stores it with s's metadata.
func (m *Manager) Set(ctx context.Context, s Secret, value []byte) error {
	if err := CheckDefinition(s); err != nil {
		return fmt.Errorf("set %w", err)
	}
	ct, err := m.Seal(s.Name, value)
	if err != nil {
		return err
	}
	if err := m.store.Put(ctx, Record{Secret: s, Ciphertext: ct}); err != nil {
		return fmt.Errorf("set secret %s: %w", s.Name, err)
	}
	return nil
}

// SetMetadata replaces the metadata of an existing secret and keeps its
// sealed value (the value is neither opened nor passed in): a change of
// metadata is reviewable without the value (ErrNotFound if absent).
func (m *Manager) SetMetadata(ctx context.Context, s Secret) error {
	if err := CheckDefinition(s); err != nil {
		return fmt.Errorf("set %w", err)
	}
	m.rmw.Lock()
	defer m.rmw.Unlock()
	r, err := m.store.Get(ctx, s.Name)
	if err != nil {
		return fmt.Errorf("secret %s: %w", s.Name, err)
	}
	r.Secret = s
	if err := m.store.Put(ctx, r); err != nil {
		return fmt.Errorf("set secret %s: %w", s.Name, err)
	}
	return nil
}

// SetValue replaces the value of an existing secret and keeps its
// metadata (ErrNotFound if absent).
func (m *Manager) SetValue(ctx context.Context, name string, value []byte) error {
	m.rmw.Lock()
	defer m.rmw.Unlock()
	r, err := m.store.Get(ctx, name)
	if err != nil {
		return fmt.Errorf("secret %s: %w", name, err)
	}
	if r.Ciphertext, err = m.Seal(name, value); err != nil {
		return err
	}
	if err := m.store.Put(ctx, r); err != nil {
		return fmt.Errorf("set secret %s: %w", name, err)
	}
	return nil
}

// Describe returns a secret's metadata without decrypting it.
func (m *Manager) Describe(ctx context.Context, name string) (Secret, error) {
	r, err := m.store.Get(ctx, name)
	if err != nil {
		return Secret{}, fmt.Errorf("describe secret %s: %w", name, err)
	}
	return r.Secret, nil
}

// Delete removes a secret.
func (m *Manager) Delete(ctx context.Context, name string) error {
	if err := m.store.Delete(ctx, name); err != nil {
		return fmt.Errorf("delete secret %s: %w", name, err)
	}
	return nil
}

// value decrypts name's value if the secret may go to d.
func (m *Manager) value(ctx context.Context, name string, d Destination) ([]byte, error) {
	r, err := m.store.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	if err := r.Allows(d); err != nil {
		return nil, err
	}
	return m.Open(name, r.Ciphertext)
}

// MarshalRecord encodes a record for a byte-oriented Store (such as KV).
func MarshalRecord(r Record) ([]byte, error) { return json.Marshal(r) }

// UnmarshalRecord decodes a record written by MarshalRecord.
func UnmarshalRecord(b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("unmarshal secret record: %w", err)
	}
	return r, nil
}

// normHost lowercases host, strips a port and a trailing dot.
func normHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.TrimSuffix(strings.ToLower(host), ".")
}
