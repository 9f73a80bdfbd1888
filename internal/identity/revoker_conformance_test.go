package identity_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/identity/identitytest"
	"github.com/agentcloud/agentcloud/internal/store"
)

// TestRevokerConformance runs the one identity.Revoker suite against every
// implementation: in memory, and KV-backed reading the bucket or its
// watched copy.
func TestRevokerConformance(t *testing.T) {
	kv := func(t *testing.T) store.KV {
		ctx := context.Background()
		s, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		b, err := s.KV(ctx, "identity", store.KVOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Run("MemRevoker", func(t *testing.T) {
		identitytest.RevokerConformance(t, func(_ *testing.T, now func() time.Time) identity.Revoker {
			return identity.NewMemRevoker(now)
		})
	})
	t.Run("KVRevoker", func(t *testing.T) {
		identitytest.RevokerConformance(t, func(t *testing.T, now func() time.Time) identity.Revoker {
			return identity.NewKVRevoker(kv(t), now)
		})
	})
	t.Run("KVRevoker watched", func(t *testing.T) {
		identitytest.RevokerConformance(t, func(t *testing.T, now func() time.Time) identity.Revoker {
			r := identity.NewKVRevoker(kv(t), now)
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			if err := r.Watch(ctx); err != nil {
				t.Fatal(err)
			}
			return r
		})
	})
}
