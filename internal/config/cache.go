package config

import "strconv"

// CacheConfig bounds the node's Cache API storage (caches.default and
// caches.open in agent code): in memory, least recently used entries
// evicted past the budget, shared by each agent's sessions on the node.
type CacheConfig struct {
	// Bytes caps all entries of all agents together.
	Bytes int64 `json:"bytes"`
	// EntryBytes caps one stored response (body, headers and overhead).
	EntryBytes int64 `json:"entry_bytes"`
}

func defaultCache() CacheConfig { return CacheConfig{Bytes: 32 << 20, EntryBytes: 5 << 20} }

// loadCacheEnv merges the AGENTCLOUD_CACHE_* variables.
func (c *Config) loadCacheEnv(lookup func(string) (string, bool)) Errors {
	var errs Errors
	for _, f := range []struct {
		name string
		set  func(int64)
	}{{"BYTES", func(n int64) { c.Cache.Bytes = n }}, {"ENTRY_BYTES", func(n int64) { c.Cache.EntryBytes = n }}} {
		v, ok := lookup("AGENTCLOUD_CACHE_" + f.name)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, FieldError{"AGENTCLOUD_CACHE_" + f.name, v, "want a whole number"})
			continue
		}
		f.set(n)
	}
	return errs
}

// validateCache checks the cache settings.
func (c Config) validateCache() Errors {
	var errs Errors
	if n := c.Cache.Bytes; n < 1<<20 || n > 1<<36 {
		errs = append(errs, FieldError{"cache.bytes", strconv.FormatInt(n, 10), "want from 1048576 to 68719476736 bytes"})
	}
	if n := c.Cache.EntryBytes; n < 1024 || n > c.Cache.Bytes {
		errs = append(errs, FieldError{"cache.entry_bytes", strconv.FormatInt(n, 10), "want from 1024 bytes to cache.bytes"})
	}
	return errs
}
