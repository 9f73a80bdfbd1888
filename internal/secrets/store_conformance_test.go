package secrets_test

import (
	"context"
	"testing"

	"github.com/agentcloud/agentcloud/internal/secrets"
	"github.com/agentcloud/agentcloud/internal/secrets/secretstest"
	"github.com/agentcloud/agentcloud/internal/store"
)

// TestStoreConformance runs the one secrets.Store suite against every
// implementation.
func TestStoreConformance(t *testing.T) {
	t.Run("MemStore", func(t *testing.T) {
		secretstest.StoreConformance(t, func(*testing.T) secrets.Store { return secrets.NewMemStore() })
	})
	t.Run("KVStore", func(t *testing.T) {
		secretstest.StoreConformance(t, func(t *testing.T) secrets.Store {
			ctx := context.Background()
			s, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			kv, err := s.KV(ctx, "secrets", store.KVOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return secrets.NewKVStore(kv)
		})
	})
}
