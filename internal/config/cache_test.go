package config

import (
	"strings"
	"testing"
)

// TestCacheConfigClass: the cache settings default to 32 MiB and 5 MiB,
// load from AGENTCLOUD_CACHE_*, and a bad number is refused naming the
// variable.
func TestCacheConfigClass(t *testing.T) {
	c := Default()
	if c.Cache != (CacheConfig{Bytes: 32 << 20, EntryBytes: 5 << 20}) {
		t.Fatalf("defaults: %+v", c.Cache)
	}
	env := map[string]string{"AGENTCLOUD_CACHE_BYTES": "8388608", "AGENTCLOUD_CACHE_ENTRY_BYTES": "65536"}
	if err := c.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.Cache != (CacheConfig{Bytes: 8 << 20, EntryBytes: 64 << 10}) {
		t.Fatalf("not applied: %+v", c.Cache)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c = Default()
	if err := c.LoadEnv(func(k string) (string, bool) { return "big", k == "AGENTCLOUD_CACHE_BYTES" }); err == nil ||
		!strings.Contains(err.Error(), "AGENTCLOUD_CACHE_BYTES") {
		t.Fatalf("bad env: %v", err)
	}
}
