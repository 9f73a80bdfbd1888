package session

import (
	"context"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/store"
)

// TestReadCacheConfigClass: by default an activation of a hibernated
// session reads its record and heap from the store's read cache; with the
// cache turned off (Config.ReadCache negative) the store keeps none, and
// the session's globals come back either way.
func TestReadCacheConfigClass(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cache int64
	}{{"default", 0}, {"off", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := store.Open(context.Background(), store.Options{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			m := openManager(t, t.TempDir(), func(c *testConfig) { c.Store, c.ReadCache = st, tc.cache })
			deploy(t, m, counterManifest, counterJS)
			mustCall(t, m, "counter", "rc", "/")
			if err := m.Hibernate(context.Background(), "counter", "rc"); err != nil {
				t.Fatal(err)
			}
			before := st.ReadCacheStats()
			if body := mustCall(t, m, "counter", "rc", "/"); !strings.Contains(body, `"global":2`) {
				t.Fatalf("after hibernation: %q, want the global counter at 2", body)
			}
			got := st.ReadCacheStats()
			switch {
			case tc.cache == 0 && got.Hits < before.Hits+2:
				t.Fatalf("activation: read cache hits %d -> %d, want the record and the heap", before.Hits, got.Hits)
			case tc.cache < 0 && (got.Hits != 0 || got.Bytes != 0):
				t.Fatalf("cache off: %+v", got)
			case got.Corrupt != 0:
				t.Fatalf("corrupt records: %+v", got)
			}
		})
	}
}
