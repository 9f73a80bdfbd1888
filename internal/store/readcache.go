package store

import (
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The read cache of a bucket (KVOptions.ReadCache).
//
// JetStream reads a value by loading the whole message block that holds it
// (4 MiB for a KV bucket) into a fresh buffer and indexing it; a block's
// cache expires after 10 s unused. A get of a key in a cold block costs
// that load (~20 ms on the 2-core VM, nearly all of it first touches of the
// buffer's pages), so a session activated after its heap's block went cold
// waited for it (docs/PERFORMANCE.md, "Activation p99: the heap's block, and a read cache").
//
// On an exclusive store this process writes every value, so it can keep
// the values it wrote: each write of a cached bucket also goes, once the
// store acknowledged it, to a ring of fixed size (a memfd: memory, no disk),
// and a get of the key reads the value back with one pread while the ring
// still holds it. JetStream stays the only durable copy: the ring goes with
// the process, starts empty with every store, and a get it cannot answer
// for certain goes to JetStream as before.
//
// A cached answer is the key's latest acknowledged write:
//   - a write or delete of the key drops the key's slot before it is sent,
//     so a get that starts after the write returns never sees the old slot;
//   - a write publishes its slot only if no other write of the key was in
//     flight at any time beside it (their order in the stream is unknown
//     here), and only after its bytes are in the ring;
//   - a slot whose bytes a later record overwrote (the ring went round) is
//     a miss: records are reserved before they are written, and a read
//     checks the reservations after it read;
//   - each record carries a CRC-32C of its key and value, checked on read
//     (a mismatch goes to JetStream and is counted as corrupt);
//   - a key whose write ended without a definite answer is not cached for
//     readCacheTaint.

// readCacheMaxRecord is the largest record a ring takes, as a fraction of
// its size: larger values are not cached.
const readCacheMaxRecord = 8

// readCacheMinSize is the smallest ring; smaller sizes are raised to it.
const readCacheMinSize = 64 << 10

// readCacheTaint is how long a key is not cached after one of its writes
// ended without a definite answer (a timeout, a replaced connection): the
// server may still apply that write after a later one was acknowledged.
const readCacheTaint = time.Minute

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// readCacheResident is the bytes the process's rings hold (their memory:
// a ring is a memfd, RAM that is not Go heap).
var readCacheResident atomic.Int64

// ReadCacheBytes reports the memory the read caches of every store of
// this process hold (KVOptions.ReadCache), for figures of RAM per session.
func ReadCacheBytes() int64 { return readCacheResident.Load() }

// readCache is one bucket's ring and index. A closed cache (the store
// closed, or the bucket opened with a TTL) answers and keeps nothing; it
// stays attached to the bucket so that every handle of the bucket agrees.
type readCache struct {
	f    *os.File // nil once closed
	size uint64

	mu     sync.Mutex
	head   uint64          // bytes of the ring reserved so far, ever (positions are absolute)
	extent uint64          // the furthest offset in the file written so far (its resident bytes)
	idx    map[string]slot // key -> its latest write's record
	order  []record        // the records in the ring, oldest first, from order[first]
	first  int
	busy   map[string]*inflight
	taint  map[string]time.Time // keys not cached until then (a write without a definite answer)

	hits, misses, corrupt atomic.Uint64
}

// slot locates a key's record: absolute position, length, checksum, and the
// write's revision and acknowledgement time.
type slot struct {
	pos  uint64
	n    uint32
	sum  uint32
	klen uint32
	rev  uint64
	at   int64
}

// record is a published record in ring order: when the ring goes over it,
// its key's slot goes too (if still this record's).
type record struct {
	pos uint64
	key string
}

// inflight counts the writes of one key under way; dirty says two of them
// overlapped, so none of them may publish a slot.
type inflight struct {
	n     int
	dirty bool
}

// openReadCache creates a ring of size bytes named name.
func openReadCache(name string, size int64) (*readCache, error) {
	size = max(size, readCacheMinSize)
	f, err := ringFile(name)
	if err != nil {
		return nil, fmt.Errorf("read cache: %w", err)
	}
	return &readCache{f: f, size: uint64(size), idx: map[string]slot{}, busy: map[string]*inflight{}, taint: map[string]time.Time{}}, nil
}

// closedReadCache is a bucket's cache that never holds anything.
func closedReadCache() *readCache {
	return &readCache{idx: map[string]slot{}, busy: map[string]*inflight{}, taint: map[string]time.Time{}}
}

// close drops the ring; the cache answers nothing from then on.
func (c *readCache) close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	f := c.f
	c.f = nil
	readCacheResident.Add(-int64(c.extent))
	c.extent, c.idx, c.order, c.first = 0, map[string]slot{}, nil, 0
	c.mu.Unlock()
	if f == nil {
		return nil
	}
	return f.Close()
}

// begin is called before a write or delete of key is sent: the key's slot
// is dropped and the write counted. Its result goes to end.
func (c *readCache) begin(key string) *inflight {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return nil // closed: nothing to drop, nothing will be published
	}
	delete(c.idx, key)
	w := c.busy[key]
	if w == nil {
		w = &inflight{}
		c.busy[key] = w
	}
	w.n++
	if w.n > 1 {
		w.dirty = true
	}
	return w
}

// end is called once the write begun with w has its answer: err nil with
// the value it wrote and its revision when the store acknowledged it
// (value nil for a delete, which caches nothing).
func (c *readCache) end(key string, w *inflight, value []byte, rev uint64, err error) {
	if c == nil || w == nil {
		return
	}
	rec := err == nil && value != nil && rev != 0 && uint64(len(key)+len(value)) <= c.size/readCacheMaxRecord
	var s slot
	if rec {
		s, rec = c.write(key, value, rev)
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil && !rejected(err) {
		if len(c.taint) >= 1024 {
			for k, t := range c.taint {
				if now.After(t) {
					delete(c.taint, k)
				}
			}
		}
		c.taint[key] = now.Add(readCacheTaint)
	}
	if t, ok := c.taint[key]; ok {
		if now.Before(t) {
			rec = false
		} else {
			delete(c.taint, key)
		}
	}
	if rec && !w.dirty && c.f != nil && c.head <= s.pos+c.size {
		c.idx[key] = s
		c.order = append(c.order, record{pos: s.pos, key: key})
	}
	c.forgetLapped()
	if w.n--; w.n == 0 {
		delete(c.busy, key)
	}
}

// rejected reports whether a write's error says the server did not apply
// it (a compare-and-set or existence check failed, the value or key was
// refused); any other error leaves that unknown.
func rejected(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || isWrongLastSeq(err) || errors.Is(err, jetstream.ErrKeyNotFound) ||
		errors.Is(err, jetstream.ErrInvalidKey) || errors.Is(err, nats.ErrMaxPayload) ||
		errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum)
}

// write reserves a record for key and value and writes it; false when the
// ring is closed or the write failed.
func (c *readCache) write(key string, value []byte, rev uint64) (slot, bool) {
	n := uint64(len(key) + len(value))
	c.mu.Lock()
	f := c.f
	if f == nil {
		c.mu.Unlock()
		return slot{}, false
	}
	pos := c.head
	if off := pos % c.size; off+n > c.size {
		pos += c.size - off // records never wrap: the ring's tail is skipped
	}
	c.head = pos + n
	if end := pos%c.size + n; end > c.extent {
		readCacheResident.Add(int64(end - c.extent))
		c.extent = end
	}
	c.mu.Unlock()
	buf := make([]byte, 0, n)
	buf = append(append(buf, key...), value...)
	if _, err := f.WriteAt(buf, int64(pos%c.size)); err != nil {
		return slot{}, false
	}
	return slot{pos: pos, n: uint32(n), sum: crc32.Checksum(buf, castagnoli), klen: uint32(len(key)),
		rev: rev, at: time.Now().UnixNano()}, true
}

// forgetLapped drops the slots of records the ring went over, oldest
// first, so the index holds about what the ring holds. c.mu must be held.
func (c *readCache) forgetLapped() {
	for c.first < len(c.order) && c.head > c.order[c.first].pos+c.size {
		r := c.order[c.first]
		if s, ok := c.idx[r.key]; ok && s.pos == r.pos {
			delete(c.idx, r.key)
		}
		c.order[c.first] = record{}
		c.first++
	}
	if c.first > 1024 && c.first > len(c.order)/2 {
		c.order = append(c.order[:0], c.order[c.first:]...)
		c.first = 0
	}
}

// get returns key's latest acknowledged write when the ring holds it.
func (c *readCache) get(key string) (Entry, bool) {
	if c == nil {
		return Entry{}, false
	}
	c.mu.Lock()
	s, ok := c.idx[key]
	f := c.f
	c.mu.Unlock()
	if f == nil {
		return Entry{}, false // no ring: not a cache miss
	}
	if !ok {
		c.misses.Add(1)
		return Entry{}, false
	}
	buf := make([]byte, s.n)
	_, err := f.ReadAt(buf, int64(s.pos%c.size))
	c.mu.Lock()
	lapped := c.head > s.pos+c.size
	c.mu.Unlock()
	switch {
	case err != nil || lapped:
		c.misses.Add(1)
		return Entry{}, false
	case crc32.Checksum(buf, castagnoli) != s.sum || string(buf[:s.klen]) != key:
		c.corrupt.Add(1)
		return Entry{}, false
	}
	c.hits.Add(1)
	return Entry{Key: key, Value: buf[s.klen:], Revision: s.rev, Created: time.Unix(0, s.at).UTC()}, true
}

// readCacheFor returns the read cache of bucket shared by every handle of
// the bucket, deciding it at the bucket's first open: a ring of size bytes,
// or none (nil) when size is 0, when the store is not exclusive (other
// writers), or has no directory. An open with a TTL (values expire behind
// the cache's back) closes the bucket's cache for good.
func (s *Store) readCacheFor(bucket string, size int64, ttl time.Duration) (*readCache, error) {
	// A ring that cannot be made leaves the bucket without a cache (logged);
	// the error is a TTL open's failure to close one.
	if !s.Exclusive() || s.opts.Dir == "" {
		return nil, nil
	}
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return nil, nil
	}
	s.rcMu.Lock()
	defer s.rcMu.Unlock()
	if c, ok := s.readCaches[bucket]; ok {
		if ttl > 0 {
			if err := c.close(); err != nil {
				return nil, err
			}
		}
		return c, nil
	}
	if s.readCaches == nil {
		s.readCaches = map[string]*readCache{}
	}
	c := closedReadCache()
	if size > 0 && ttl == 0 {
		if rc, err := openReadCache(bucket, size); err != nil {
			s.log.Warn("store: bucket without a read cache", "bucket", bucket, "err", err)
		} else {
			c = rc
		}
	}
	s.readCaches[bucket] = c
	return c, nil
}

// ReadCacheStats are a store's read cache figures: gets answered by the
// caches, gets they could not answer, cached records that failed their
// checksum, and the memory the rings hold.
type ReadCacheStats struct {
	Hits, Misses, Corrupt uint64
	Bytes                 int64
}

// ReadCacheStats sums the figures of the store's read caches.
func (s *Store) ReadCacheStats() ReadCacheStats {
	h, m, c, b := s.readCacheStats()
	return ReadCacheStats{Hits: h, Misses: m, Corrupt: c, Bytes: b}
}

// readCacheStats sums the counters of the store's read caches and the
// memory they hold.
func (s *Store) readCacheStats() (hits, misses, corrupt uint64, size int64) {
	s.rcMu.Lock()
	defer s.rcMu.Unlock()
	for _, c := range s.readCaches {
		hits, misses, corrupt = hits+c.hits.Load(), misses+c.misses.Load(), corrupt+c.corrupt.Load()
		c.mu.Lock()
		size += int64(c.extent)
		c.mu.Unlock()
	}
	return hits, misses, corrupt, size
}

// closeReadCaches closes the rings (their memory goes with them).
func (s *Store) closeReadCaches() error {
	s.rcMu.Lock()
	defer s.rcMu.Unlock()
	var errs []error
	for _, c := range s.readCaches {
		errs = append(errs, c.close())
	}
	return errors.Join(errs...)
}
