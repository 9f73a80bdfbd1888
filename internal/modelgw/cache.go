package modelgw

import (
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// cached is one stored answer.
type cached struct {
	body     []byte
	provider string
	expires  time.Time
}

// cache is a bounded LRU of answers with a TTL checked on read (no
// background goroutine, so nothing outlives the gateway).
type cache struct {
	lru *lru.Cache[string, cached]
	ttl time.Duration
	now func() time.Time
}

func newCache(size int, ttl time.Duration, now func() time.Time) (*cache, error) {
	l, err := lru.New[string, cached](size)
	if err != nil {
		return nil, fmt.Errorf("response cache: %w", err)
	}
	return &cache{lru: l, ttl: ttl, now: now}, nil
}

func (c *cache) get(key string) (cached, bool) {
	v, ok := c.lru.Get(key)
	if !ok {
		return cached{}, false
	}
	if c.now().After(v.expires) {
		c.lru.Remove(key)
		return cached{}, false
	}
	return v, true
}

func (c *cache) put(key string, body []byte, provider string) {
	c.lru.Add(key, cached{body: body, provider: provider, expires: c.now().Add(c.ttl)})
}
