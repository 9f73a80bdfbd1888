package identity

import (
	"crypto"
	"sync"
	"time"
)

// signedJWT is what a JWT-SVID's bytes alone decide, once its signature
// has been checked: nothing in it depends on the time, the audience asked
// for or revocation, which VerifyJWT checks on every call.
type signedJWT struct {
	kid       string
	key       crypto.PublicKey // the key that verified the signature
	principal Principal
	audience  []string
	id        string
	issuedAt  time.Time // zero: no iat
	notBefore time.Time // zero: no nbf
	expiry    time.Time
	chain     []string
}

// Bounds of the verified-token cache: at most maxVerifiedJWTs tokens, each
// at most maxCachedJWTBytes long (longer tokens are verified every time).
// A token enters only after its signature verified, so a caller cannot
// fill the cache with forgeries; one that presents many valid tokens only
// evicts others, costing their next signature check.
const (
	maxVerifiedJWTs   = 4096
	maxCachedJWTBytes = 4 << 10
)

// jwtCache remembers verified tokens by their exact text until they
// expire. The zero value is empty and ready.
type jwtCache struct {
	mu sync.Mutex            // protects m
	m  map[string]*signedJWT // token -> what its bytes decide
}

func (c *jwtCache) get(token string) (*signedJWT, bool) {
	c.mu.Lock()
	v, ok := c.m[token]
	c.mu.Unlock()
	return v, ok
}

// put remembers v for token. When the cache is full it first drops the
// expired entries, then, if that freed nothing, arbitrary ones until a
// quarter is free.
func (c *jwtCache) put(token string, v *signedJWT, now time.Time) {
	if len(token) > maxCachedJWTBytes || !now.Before(v.expiry.Add(clockSkew)) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*signedJWT)
	}
	if len(c.m) >= maxVerifiedJWTs {
		for k, e := range c.m {
			if !now.Before(e.expiry.Add(clockSkew)) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < maxVerifiedJWTs*3/4 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[token] = v
}

// len is the number of tokens remembered.
func (c *jwtCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// samePublicKey reports whether a and b are the same key.
func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
