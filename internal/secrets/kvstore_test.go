package secrets

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"testing"

	"github.com/agentcloud/agentcloud/internal/store"
)

func openStore(t *testing.T, dir string) (*store.Store, store.KV) {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := s.KV(ctx, "secrets", store.KVOptions{})
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	return s, kv
}

func TestKVStore(t *testing.T) {
	ctx := context.Background()
	s, kv := openStore(t, t.TempDir())
	defer s.Close()
	st := NewKVStore(kv)

	if names, err := st.List(ctx); err != nil || len(names) != 0 {
		t.Fatalf("empty list = %v, %v", names, err)
	}
	if _, err := st.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing err = %v", err)
	}
	if err := st.Delete(ctx, "nope"); err != nil {
		t.Fatalf("delete missing: %v", err)
	}
	names := []string{"a.b", "a-b", "a_b", "B", "a", "x.y.z"}
	for i, n := range names {
		rec := Record{Secret: Secret{Name: n, AllowHosts: []string{"h.test"}}, Ciphertext: []byte{byte(i), 1, 2}}
		if err := st.Put(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.List(ctx)
	want := slices.Sorted(slices.Values(names))
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("list = %v, %v; want %v", got, err, want)
	}
	r, err := st.Get(ctx, "a.b")
	if err != nil || r.Name != "a.b" || !bytes.Equal(r.Ciphertext, []byte{0, 1, 2}) || !slices.Equal(r.AllowHosts, []string{"h.test"}) {
		t.Fatalf("get = %+v, %v", r, err)
	}
	// Replace.
	if err := st.Put(ctx, Record{Secret: Secret{Name: "a.b"}, Ciphertext: []byte{9}}); err != nil {
		t.Fatal(err)
	}
	if r, _ := st.Get(ctx, "a.b"); !bytes.Equal(r.Ciphertext, []byte{9}) || len(r.AllowHosts) != 0 {
		t.Fatalf("replaced = %+v", r)
	}
	if err := st.Delete(ctx, "a.b"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "a.b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted err = %v", err)
	}
	if got, _ := st.List(ctx); slices.Contains(got, "a.b") || len(got) != len(names)-1 {
		t.Fatalf("list after delete = %v", got)
	}
	if err := st.Put(ctx, Record{}); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("empty name err = %v", err)
	}
	// Other data in the bucket is ignored by List.
	if _, err := kv.Put(ctx, store.Key("other", "k"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.List(ctx); len(got) != len(names)-1 {
		t.Fatalf("list with foreign keys = %v", got)
	}
}

func TestKVStoreManagerPersists(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key, err := LoadOrCreateKey(filepath.Join(dir, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("sk-live-super-secret-token-value")

	s, kv := openStore(t, dir)
	m, err := NewManager(key, NewKVStore(kv))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Set(ctx, Secret{Name: "OPENAI", AllowHosts: []string{"api.openai.com"}}, plain); err != nil {
		t.Fatal(err)
	}
	raw, err := kv.Get(ctx, kvKey("OPENAI"))
	if err != nil || bytes.Contains(raw.Value, plain) || bytes.Contains(raw.Value, plain[:8]) {
		t.Fatalf("stored value exposes plaintext (%v)", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: a new store over the same directory still has the secret.
	s, kv = openStore(t, dir)
	defer s.Close()
	m, _ = NewManager(key, NewKVStore(kv))
	if sec, err := m.Describe(ctx, "OPENAI"); err != nil || !slices.Equal(sec.AllowHosts, []string{"api.openai.com"}) {
		t.Fatalf("describe after restart = %+v, %v", sec, err)
	}
	h := http.Header{"Authorization": {"Bearer {{secret:OPENAI}}"}}
	used, err := m.Substitute(ctx, https("api.openai.com"), h)
	if err != nil || !slices.Equal(used.Names, []string{"OPENAI"}) || h.Get("Authorization") != "Bearer "+string(plain) {
		t.Fatalf("substitute = %v, %v, %q", used, err, h.Get("Authorization"))
	}
	if _, err := m.Substitute(ctx, https("evil.test"), http.Header{"A": {"{{secret:OPENAI}}"}}); !errors.Is(err, ErrHostNotAllowed) {
		t.Fatalf("other host err = %v", err)
	}
	// A record copied under another name does not decrypt there.
	if _, err := kv.Put(ctx, kvKey("COPY"), raw.Value); err != nil {
		t.Fatal(err)
	}
	if _, err := NewKVStore(kv).Get(ctx, "COPY"); err == nil {
		t.Fatal("record under the wrong name accepted")
	}
	if err := m.Delete(ctx, "OPENAI"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Describe(ctx, "OPENAI"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete err = %v", err)
	}
}
