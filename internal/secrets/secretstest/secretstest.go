// Package secretstest holds the conformance suite every secrets.Store
// implementation must pass (the in-memory MemStore and the NATS KV-backed
// KVStore today). Implementations call StoreConformance from their own
// tests with a constructor of empty stores. It owns the contract's tests,
// not any implementation.
package secretstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/agentcloud/agentcloud/internal/secrets"
)

// NewStore returns an empty store for one subtest.
type NewStore func(t *testing.T) secrets.Store

// StoreConformance runs the secrets.Store contract against newStore: each
// clause on a fresh store.
func StoreConformance(t *testing.T, newStore NewStore) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, st secrets.Store)
	}{
		{"empty", emptyStore},
		{"round trip and replace", roundTrip},
		{"empty name refused", emptyNameRefused},
		{"names are exact and sorted", exactSortedNames},
		{"records are copies", copies},
		{"concurrent writers", concurrentWriters},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newStore(t)) })
	}
}

// rec is a record named name with the ciphertext ct.
func rec(name string, ct ...byte) secrets.Record {
	return secrets.Record{Secret: secrets.Secret{Name: name, AllowHosts: []string{"api.example.com", "*.example.org:8443"}, AllowHTTP: true},
		Ciphertext: ct}
}

// emptyStore: a new store lists nothing; Get of a missing name is ErrNotFound and Delete of one succeeds.
func emptyStore(t *testing.T, st secrets.Store) {
	ctx := context.Background()
	if names, err := st.List(ctx); err != nil || len(names) != 0 {
		t.Fatalf("List of an empty store = %v, %v", names, err)
	}
	for _, name := range []string{"missing", ""} {
		if _, err := st.Get(ctx, name); !errors.Is(err, secrets.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", name, err)
		}
		if err := st.Delete(ctx, name); err != nil {
			t.Errorf("Delete(%q) of a missing secret: %v", name, err)
		}
	}
}

// roundTrip: Get returns what Put stored, and a second Put replaces the whole record.
func roundTrip(t *testing.T, st secrets.Store) {
	ctx := context.Background()
	want := rec("API_KEY", 1, 2, 3)
	if err := st.Put(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(ctx, "API_KEY")
	if err != nil || !equal(got, want) {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, want)
	}
	repl := secrets.Record{Secret: secrets.Secret{Name: "API_KEY"}, Ciphertext: []byte{9}}
	if err := st.Put(ctx, repl); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Get(ctx, "API_KEY"); err != nil || !equal(got, repl) {
		t.Fatalf("after replace Get = %+v, %v; want %+v (no fields left from the first)", got, err, repl)
	}
}

// emptyNameRefused: a record without a name is refused with ErrInvalidName and not stored.
func emptyNameRefused(t *testing.T, st secrets.Store) {
	ctx := context.Background()
	if err := st.Put(ctx, secrets.Record{Ciphertext: []byte{1}}); !errors.Is(err, secrets.ErrInvalidName) {
		t.Fatalf("Put without a name = %v, want ErrInvalidName", err)
	}
	if names, _ := st.List(ctx); len(names) != 0 {
		t.Fatalf("List after a refused Put = %v", names)
	}
}

// exactSortedNames: names that share prefixes or look like key syntax stay distinct, and List sorts them.
func exactSortedNames(t *testing.T, st secrets.Store) {
	ctx := context.Background()
	// Names that share prefixes or look like key syntax stay distinct.
	names := []string{"a.b", "a-b", "a_b", "B", "a", "x.y.z", "a.b.c", "Z9"}
	for i, n := range names {
		if err := st.Put(ctx, rec(n, byte(i))); err != nil {
			t.Fatalf("Put %s: %v", n, err)
		}
	}
	got, err := st.List(ctx)
	if want := slices.Sorted(slices.Values(names)); err != nil || !slices.Equal(got, want) {
		t.Fatalf("List = %v, %v; want %v", got, err, want)
	}
	if err := st.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		r, err := st.Get(ctx, n)
		switch {
		case n == "a" && !errors.Is(err, secrets.ErrNotFound):
			t.Errorf("deleted %s: %v", n, err)
		case n != "a" && (err != nil || r.Name != n || !bytes.Equal(r.Ciphertext, []byte{byte(i)})):
			t.Errorf("Get %s after deleting a = %+v, %v", n, r, err)
		}
	}
	if got, _ := st.List(ctx); slices.Contains(got, "a") || len(got) != len(names)-1 {
		t.Errorf("List after delete = %v", got)
	}
}

// copies: a store keeps its own copy: changing the slices of a record put or got does not change it.
func copies(t *testing.T, st secrets.Store) {
	ctx := context.Background()
	in := rec("K", 1, 2)
	if err := st.Put(ctx, in); err != nil {
		t.Fatal(err)
	}
	in.Ciphertext[0], in.AllowHosts[0] = 7, "evil.example.com"
	out, err := st.Get(ctx, "K")
	if err != nil {
		t.Fatal(err)
	}
	out.Ciphertext[1], out.AllowHosts[1] = 7, "evil.example.com"
	again, _ := st.Get(ctx, "K")
	if !equal(again, rec("K", 1, 2)) {
		t.Fatalf("stored record changed through a caller's slices: %+v", again)
	}
}

// concurrentWriters: puts and gets from several goroutines are all kept.
func concurrentWriters(t *testing.T, st secrets.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 10 {
				name := fmt.Sprintf("w%d_%d", w, i)
				if err := st.Put(ctx, rec(name, byte(w), byte(i))); err != nil {
					t.Errorf("Put %s: %v", name, err)
				}
				if _, err := st.Get(ctx, name); err != nil {
					t.Errorf("Get %s: %v", name, err)
				}
			}
		})
	}
	wg.Wait()
	if names, err := st.List(ctx); err != nil || len(names) != 80 {
		t.Fatalf("List after concurrent writers: %d names, %v", len(names), err)
	}
}

// equal compares records field by field (nil and empty slices alike).
func equal(a, b secrets.Record) bool {
	return a.Name == b.Name && a.AllowHTTP == b.AllowHTTP && bytes.Equal(a.Ciphertext, b.Ciphertext) &&
		slices.Equal(a.AllowHosts, b.AllowHosts)
}
