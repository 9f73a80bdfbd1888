package webbotauth

import (
	"container/heap"
	"crypto/sha256"
	"errors"
	"sync"
)

var (
	errReplayed   = errors.New("signature was already used (replay)")
	errReplayFull = errors.New("replay memory is full")
)

// replayCache remembers each accepted signature (by nonce, or by its bytes
// when it has none) until it can no longer be accepted anyway, so a second
// use is refused. It is bounded in total and per signer, so one signer
// cannot crowd out the others.
type replayCache struct {
	mu          sync.Mutex // protects everything below
	seen        map[[32]byte]int64
	perSigner   map[string]int
	exp         expHeap
	max, perMax int
}

type expItem struct {
	at     int64
	key    [32]byte
	signer string
}

type expHeap []expItem

func (h expHeap) Len() int           { return len(h) }
func (h expHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expHeap) Push(x any)        { *h = append(*h, x.(expItem)) }
func (h *expHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func newReplayCache(max, perSigner int) *replayCache {
	return &replayCache{seen: make(map[[32]byte]int64), perSigner: make(map[string]int), max: max, perMax: perSigner}
}

func replayKey(signer, id string) [32]byte {
	return sha256.Sum256([]byte(signer + "\x00" + id))
}

// seenBefore reports whether key is remembered (a cheap check before the
// signature is verified).
func (c *replayCache) seenBefore(key [32]byte, now int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.seen[key]
	return ok && at > now
}

// add remembers key for signer until until. It fails if key is already
// remembered, or if the memory (or the signer's part of it) is full.
func (c *replayCache) add(signer string, key [32]byte, until, now int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.exp) > 0 && c.exp[0].at <= now {
		it := heap.Pop(&c.exp).(expItem)
		if c.seen[it.key] == it.at {
			delete(c.seen, it.key)
		}
		if c.perSigner[it.signer]--; c.perSigner[it.signer] <= 0 {
			delete(c.perSigner, it.signer)
		}
	}
	if at, ok := c.seen[key]; ok && at > now {
		return errReplayed
	}
	if len(c.exp) >= c.max || c.perSigner[signer] >= c.perMax {
		return errReplayFull
	}
	c.seen[key] = until
	c.perSigner[signer]++
	heap.Push(&c.exp, expItem{at: until, key: key, signer: signer})
	return nil
}

func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.exp)
}
