// Package gcra implements the generic cell rate algorithm: a rate limit of
// Quota requests per Window, all of which may come as one burst, kept as one
// "theoretical arrival time" per key. It owns the arithmetic and a bounded,
// sharded table of keys; it does not know what a key means (an identity, an
// identity and a tool) and it takes the time from its caller, so tests need
// no clock.
package gcra

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// Limit is Quota requests per Window. The whole quota may be spent at once;
// afterwards one request is allowed every Window/Quota.
type Limit struct {
	Quota  int
	Window time.Duration
}

// Validate reports a limit that cannot work.
func (l Limit) Validate() error {
	if l.Quota < 1 || l.Quota > 1_000_000_000 {
		return fmt.Errorf("quota %d: want 1 to 1000000000", l.Quota)
	}
	if l.Window < time.Millisecond || l.Window > 365*24*time.Hour {
		return fmt.Errorf("window %s: want 1ms to 8760h", l.Window)
	}
	if l.Window/time.Duration(l.Quota) < 1 {
		return errors.New("quota per window is finer than one nanosecond")
	}
	return nil
}

// Result is one decision.
type Result struct {
	Allowed bool
	// Remaining is how many more requests would be allowed right now.
	Remaining int
	// RetryAfter is, for a denied request, how long until it would be
	// allowed (0 when allowed).
	RetryAfter time.Duration
	// Reset is how long until the key's whole quota is available again.
	Reset time.Duration
}

// Decide is the algorithm on one key, in nanoseconds: given the key's
// theoretical arrival time tat (0 for a new key), the time now, the
// emission interval t (window/quota), the window and a cost of n requests,
// it returns the new tat and the result. It never overflows for times
// within a few centuries of the Unix epoch and windows up to a year.
func Decide(tat, now, t, window, n int64) (int64, Result) {
	if tat < now {
		tat = now
	}
	if n < 1 {
		n = 1
	}
	if t < 1 {
		t = 1
	}
	if n > window/t { // more than the whole quota: never allowed
		return tat, Result{RetryAfter: time.Duration(window), Reset: time.Duration(tat - now)}
	}
	newTat := tat + n*t
	if newTat-now > window {
		return tat, Result{
			Remaining:  remaining(tat, now, t, window),
			RetryAfter: time.Duration(newTat - window - now),
			Reset:      time.Duration(tat - now),
		}
	}
	return newTat, Result{
		Allowed:   true,
		Remaining: remaining(newTat, now, t, window),
		Reset:     time.Duration(newTat - now),
	}
}

func remaining(tat, now, t, window int64) int {
	r := (window - (tat - now)) / t
	if r < 0 {
		return 0
	}
	return int(r)
}

const shards = 32

// Limiter applies one Limit to many keys. It is safe for concurrent use.
type Limiter struct {
	limit    Limit
	t        int64 // emission interval, ns
	window   int64
	perShard int
	seed     maphash.Seed
	shard    [shards]shard
}

type shard struct {
	mu  sync.Mutex       // protects tat
	tat map[string]int64 // theoretical arrival time, Unix ns
}

// New returns a limiter that remembers at most maxKeys keys (rounded up to
// a multiple of 32). Past that, keys whose quota is whole again are dropped
// first (forgetting them changes nothing), then arbitrary ones: a dropped
// key starts again with its whole quota, so the table fails open for the
// few keys it forgets and never grows without bound.
func New(l Limit, maxKeys int) (*Limiter, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if maxKeys < shards {
		maxKeys = shards
	}
	lim := &Limiter{
		limit:    l,
		t:        int64(l.Window) / int64(l.Quota),
		window:   int64(l.Window),
		perShard: (maxKeys + shards - 1) / shards,
		seed:     maphash.MakeSeed(),
	}
	for i := range lim.shard {
		lim.shard[i].tat = make(map[string]int64)
	}
	return lim, nil
}

// Limit returns the limiter's policy.
func (l *Limiter) Limit() Limit { return l.limit }

func (l *Limiter) shardOf(key string) *shard {
	return &l.shard[maphash.String(l.seed, key)%shards]
}

// Allow spends one request of key's quota at now, if there is one.
func (l *Limiter) Allow(key string, now time.Time) Result { return l.AllowN(key, now, 1) }

// AllowN spends n requests at once, or none.
func (l *Limiter) AllowN(key string, now time.Time, n int) Result {
	ns := now.UnixNano()
	s := l.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, ok := s.tat[key]
	newTat, r := Decide(tat, ns, l.t, l.window, int64(n))
	if r.Allowed {
		if !ok && len(s.tat) >= l.perShard {
			s.evict(ns, l.perShard)
		}
		s.tat[key] = newTat
	}
	return r
}

// Peek reports what Allow would decide without spending anything.
func (l *Limiter) Peek(key string, now time.Time) Result {
	ns := now.UnixNano()
	s := l.shardOf(key)
	s.mu.Lock()
	tat := s.tat[key]
	s.mu.Unlock()
	_, r := Decide(tat, ns, l.t, l.window, 1)
	return r
}

// Undo gives back n requests spent by AllowN (when a later limit refused
// the same request).
func (l *Limiter) Undo(key string, now time.Time, n int) {
	ns := now.UnixNano()
	s := l.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, ok := s.tat[key]
	if !ok {
		return
	}
	tat -= int64(n) * l.t
	if tat <= ns {
		delete(s.tat, key)
		return
	}
	s.tat[key] = tat
}

// Len is the number of keys remembered.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shard {
		s := &l.shard[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}

// evict frees room in a full shard of at most max keys; s.mu is held.
// Keys whose quota is whole (tat <= now) go first; if none is, arbitrary
// keys go (map order is random), a quarter of the shard at a time so the
// sweep is paid rarely.
func (s *shard) evict(now int64, max int) {
	for k, tat := range s.tat {
		if tat <= now {
			delete(s.tat, k)
		}
	}
	for k := range s.tat {
		if len(s.tat) <= max*3/4 {
			break
		}
		delete(s.tat, k)
	}
}
