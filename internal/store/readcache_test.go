package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// cachedKV opens bucket with a read cache of size bytes on s.
func cachedKV(t *testing.T, s *Store, bucket string, size int64) (*natsKV, *readCache) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("no ring off Linux")
	}
	kv, err := s.KV(context.Background(), bucket, KVOptions{ReadCache: size})
	if err != nil {
		t.Fatal(err)
	}
	k := kv.(*natsKV)
	if k.rc == nil {
		t.Fatal("exclusive store: bucket has no read cache")
	}
	return k, k.rc
}

// jsGet reads key from JetStream, past the cache.
func jsGet(t *testing.T, k *natsKV, key string) (Entry, error) {
	t.Helper()
	rc := k.rc
	k.rc = nil
	defer func() { k.rc = rc }()
	return k.Get(context.Background(), key)
}

// TestReadCacheClass: every kind of write leaves a get that answers what
// JetStream holds, from the ring when it can: revisions usable for a
// compare-and-set, deletes and failed writes never answered from an old
// slot.
func TestReadCacheClass(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, false)
	k, c := cachedKV(t, s, "rc", 1<<20)

	hit := func(key string, want []byte) Entry {
		t.Helper()
		h0 := c.hits.Load()
		e, err := k.Get(ctx, key)
		if err != nil || !bytes.Equal(e.Value, want) {
			t.Fatalf("get %s = %q, %v; want %q", key, e.Value, err, want)
		}
		if c.hits.Load() != h0+1 {
			t.Fatalf("get %s: not answered by the read cache", key)
		}
		js, err := jsGet(t, k, key)
		if err != nil || !bytes.Equal(js.Value, want) || js.Revision != e.Revision {
			t.Fatalf("jetstream has %q rev %d (%v); the cache answered %q rev %d", js.Value, js.Revision, err, e.Value, e.Revision)
		}
		return e
	}
	miss := func(key string) {
		t.Helper()
		h0 := c.hits.Load()
		js, jerr := jsGet(t, k, key)
		e, err := k.Get(ctx, key)
		if c.hits.Load() != h0 {
			t.Fatalf("get %s answered by the cache", key)
		}
		if errors.Is(err, ErrNotFound) != errors.Is(jerr, ErrNotFound) || (err == nil) != (jerr == nil) || !bytes.Equal(e.Value, js.Value) {
			t.Fatalf("get %s = %q, %v; jetstream %q, %v", key, e.Value, err, js.Value, jerr)
		}
	}

	rev, err := k.Create(ctx, "a.one", []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if e := hit("a.one", []byte("v1")); e.Revision != rev {
		t.Fatalf("create rev %d, cached %d", rev, e.Revision)
	}
	// The cached revision is the one to compare and set with.
	e := hit("a.one", []byte("v1"))
	if _, err := k.Update(ctx, "a.one", []byte("v2"), e.Revision); err != nil {
		t.Fatalf("update with the cached revision: %v", err)
	}
	hit("a.one", []byte("v2"))
	// A failed update drops the slot; the value is JetStream's.
	if _, err := k.Update(ctx, "a.one", []byte("v3"), e.Revision); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	miss("a.one")
	if _, err := k.Put(ctx, "a.one", []byte("v4")); err != nil {
		t.Fatal(err)
	}
	hit("a.one", []byte("v4"))
	if err := k.Delete(ctx, "a.one"); err != nil {
		t.Fatal(err)
	}
	miss("a.one")
	if _, err := k.Get(ctx, "a.one"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted: %v", err)
	}
	// A failed create (the key exists) leaves the existing value.
	if _, err := k.Put(ctx, "a.two", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Create(ctx, "a.two", []byte("y")); !errors.Is(err, ErrExists) {
		t.Fatalf("create over: %v", err)
	}
	miss("a.two")

	// Fenced writes.
	frev, err := k.Put(ctx, "fence", []byte("f"))
	if err != nil {
		t.Fatal(err)
	}
	f := Fence{Key: "fence", Revision: frev}
	if _, err := k.PutFenced(ctx, "a.three", []byte("p1"), f); err != nil {
		t.Fatal(err)
	}
	hit("a.three", []byte("p1"))
	if _, err := k.PutFenced(ctx, "a.three", []byte("p2"), Fence{Key: "fence", Revision: frev + 100}); !errors.Is(err, ErrFenced) {
		t.Fatalf("fenced out: %v", err)
	}
	miss("a.three")
	if err := k.DeleteFenced(ctx, "a.three", f); err != nil {
		t.Fatal(err)
	}
	miss("a.three")

	// A value the ring would not take whole (over an eighth of it) is not
	// cached, and read right.
	big := bytes.Repeat([]byte("b"), 1<<20/readCacheMaxRecord+1)
	if _, err := k.Put(ctx, "a.big", big); err != nil {
		t.Fatal(err)
	}
	miss("a.big")

	// A value returned by the cache is the caller's: changing it changes
	// nothing cached.
	if _, err := k.Put(ctx, "a.own", []byte("mine")); err != nil {
		t.Fatal(err)
	}
	e = hit("a.own", []byte("mine"))
	e.Value[0] = 'X'
	hit("a.own", []byte("mine"))
}

// TestReadCacheWrapClass: a ring far smaller than what is written goes
// round; a key whose record was overwritten is read from JetStream, and
// every get answers the latest write.
func TestReadCacheWrapClass(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, true)
	k, c := cachedKV(t, s, "rcwrap", readCacheMinSize)
	const n = 400
	want := map[string][]byte{}
	for i := range n {
		key := "k." + strconv.Itoa(i%150)
		v := bytes.Repeat([]byte{byte(i)}, 500+i%700)
		if _, err := k.Put(ctx, key, v); err != nil {
			t.Fatal(err)
		}
		want[key] = v
	}
	for key, v := range want {
		e, err := k.Get(ctx, key)
		if err != nil || !bytes.Equal(e.Value, v) {
			t.Fatalf("get %s: %d bytes, %v; want %d bytes", key, len(e.Value), err, len(v))
		}
	}
	if c.hits.Load() == 0 || c.misses.Load() == 0 {
		t.Fatalf("hits %d misses %d: want both (recent keys cached, old ones gone round)", c.hits.Load(), c.misses.Load())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, sl := range c.idx {
		if c.head > sl.pos+c.size {
			t.Fatalf("slot of %s kept after the ring went over it", key)
		}
		if sl.pos%c.size+uint64(sl.n) > c.size {
			t.Fatalf("record of %s wraps the ring's end", key)
		}
	}
	if len(c.order)-c.first > int(c.size/500)+1 {
		t.Fatalf("%d records in order for a ring of %d bytes", len(c.order)-c.first, c.size)
	}
	if c.extent > c.size {
		t.Fatalf("extent %d past the ring's %d bytes", c.extent, c.size)
	}
}

// TestReadCacheCorruptClass: ring bytes changed under the cache (a bug, or
// a stray write) are caught by the record's checksum and the get goes to
// JetStream.
func TestReadCacheCorruptClass(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, true)
	k, c := cachedKV(t, s, "rccorrupt", 1<<20)
	if _, err := k.Put(ctx, "a.x", []byte("the value")); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	sl := c.idx["a.x"]
	c.mu.Unlock()
	if _, err := c.f.WriteAt([]byte("Z"), int64(sl.pos%c.size)+int64(sl.klen)+2); err != nil {
		t.Fatal(err)
	}
	e, err := k.Get(ctx, "a.x")
	if err != nil || string(e.Value) != "the value" {
		t.Fatalf("get = %q, %v", e.Value, err)
	}
	if c.corrupt.Load() != 1 {
		t.Fatalf("corrupt = %d, want 1", c.corrupt.Load())
	}
}

// TestReadCacheRacesClass: writers and deleters of the same keys, with
// readers beside them. Every get answers a value some writer wrote (never
// a torn or foreign one), and once the writers stop, each key reads as
// JetStream has it.
func TestReadCacheRacesClass(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, true)
	k, c := cachedKV(t, s, "rcrace", readCacheMinSize)
	const keys, writers, ops = 6, 4, 150
	valid := func(key string, v []byte) bool {
		// Values are "key/writer/op/" padded with the key's own byte.
		return bytes.HasPrefix(v, []byte(key+"/"))
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range ops {
				key := "r." + strconv.Itoa(r.IntN(keys))
				var err error
				switch r.IntN(5) {
				case 0:
					err = k.Delete(ctx, key)
				default:
					v := fmt.Appendf(nil, "%s/%d/%d/", key, w, i)
					v = append(v, bytes.Repeat([]byte{key[2]}, r.IntN(3000))...)
					_, err = k.Put(ctx, key, v)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				key := "r." + strconv.Itoa(rand.IntN(keys))
				e, err := k.Get(ctx, key)
				if err == nil && !valid(key, e.Value) {
					t.Errorf("get %s = %.40q: not a value written to it", key, e.Value)
					return
				}
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	for i := range keys {
		key := "r." + strconv.Itoa(i)
		js, jerr := jsGet(t, k, key)
		e, err := k.Get(ctx, key)
		if errors.Is(err, ErrNotFound) != errors.Is(jerr, ErrNotFound) || (err == nil) != (jerr == nil) || !bytes.Equal(e.Value, js.Value) || (err == nil && e.Revision != js.Revision) {
			t.Fatalf("%s: cache %.30q rev %d (%v), jetstream %.30q rev %d (%v)", key, e.Value, e.Revision, err, js.Value, js.Revision, jerr)
		}
	}
	t.Logf("hits %d misses %d", c.hits.Load(), c.misses.Load())
}

// TestReadCacheOverlapClass: of two writes of one key in flight at once,
// neither publishes a slot (their order in the stream is not known here).
func TestReadCacheOverlapClass(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("no ring off Linux")
	}
	c, err := openReadCache("overlap", readCacheMinSize)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	w1 := c.begin("k")
	w2 := c.begin("k")
	c.end("k", w2, []byte("two"), 2, nil)
	c.end("k", w1, []byte("one"), 1, nil)
	if _, ok := c.get("k"); ok {
		t.Fatal("overlapping writes published a slot")
	}
	w := c.begin("k")
	c.end("k", w, []byte("three"), 3, nil)
	if e, ok := c.get("k"); !ok || string(e.Value) != "three" || e.Revision != 3 {
		t.Fatalf("a write alone: %q rev %d, %v", e.Value, e.Revision, ok)
	}
	// A write the server refused drops what was there, and the next
	// write is cached.
	w = c.begin("k")
	c.end("k", w, []byte("four"), 0, jetstream.ErrKeyExists)
	if _, ok := c.get("k"); ok {
		t.Fatal("a failed write left the old slot")
	}
	w = c.begin("k")
	c.end("k", w, []byte("five"), 5, nil)
	if e, ok := c.get("k"); !ok || string(e.Value) != "five" {
		t.Fatalf("after a refused write: %q, %v", e.Value, ok)
	}
	// A write without a definite answer (it may still be applied after a
	// later one) keeps the key out of the cache for a while.
	w = c.begin("k")
	c.end("k", w, []byte("six"), 0, context.DeadlineExceeded)
	w = c.begin("k")
	c.end("k", w, []byte("seven"), 7, nil)
	if _, ok := c.get("k"); ok {
		t.Fatal("a key cached right after a write that timed out")
	}
	c.mu.Lock()
	c.taint["k"] = time.Now().Add(-time.Second) // the while has passed
	c.mu.Unlock()
	w = c.begin("k")
	c.end("k", w, []byte("eight"), 8, nil)
	if e, ok := c.get("k"); !ok || string(e.Value) != "eight" {
		t.Fatalf("after the taint expired: %q, %v", e.Value, ok)
	}
	if len(c.busy) != 0 || len(c.taint) != 0 {
		t.Fatalf("busy keys %v, tainted %v left", c.busy, c.taint)
	}
}

// TestReadCacheScopeClass: no cache where this process is not the only
// writer or values expire, and a reopened store starts with an empty one.
func TestReadCacheScopeClass(t *testing.T) {
	ctx := context.Background()
	for _, o := range []Options{{Dir: "d", Listen: "127.0.0.1:0"}, {Dir: "d", URL: "nats://127.0.0.1:4222"},
		{Dir: "d", Cluster: &ClusterOptions{Name: "c"}}, {}} {
		s := &Store{opts: o}
		if c, err := s.readCacheFor("b", 1<<20, 0); c != nil || err != nil {
			t.Fatalf("%+v: read cache %v, %v; want none", o, c, err)
		}
	}

	s2 := openTest(t, true)
	kv, err := s2.KV(ctx, "ttl", KVOptions{ReadCache: 1 << 20, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if c := kv.(*natsKV).rc; c == nil || c.f != nil {
		t.Fatal("a bucket opened with a TTL has a live read cache")
	}
	// A bucket without a ring counts no gets as misses.
	if _, err := kv.Put(ctx, "a.k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, "a.k"); err != nil {
		t.Fatal(err)
	}
	if h, m, c, _ := s2.readCacheStats(); h+m+c != 0 {
		t.Fatalf("a bucket without a ring counted hits %d misses %d corrupt %d", h, m, c)
	}

	// Reopen: the values come from JetStream, then from the new ring.
	dir := t.TempDir()
	s3, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	kv3, err := s3.KV(ctx, "again", KVOptions{ReadCache: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv3.Put(ctx, "a.k", []byte("before")); err != nil {
		t.Fatal(err)
	}
	before := ReadCacheBytes()
	if err := s3.Close(); err != nil {
		t.Fatal(err)
	}
	if got := ReadCacheBytes(); got >= before {
		t.Fatalf("resident read cache bytes %d after close, %d before", got, before)
	}
	s4, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s4.Close()
	k4, c4 := cachedKV(t, s4, "again", 1<<20)
	e, err := k4.Get(ctx, "a.k")
	if err != nil || string(e.Value) != "before" || c4.hits.Load() != 0 {
		t.Fatalf("after reopen: %q, %v, hits %d", e.Value, err, c4.hits.Load())
	}
}

// TestReadCacheHandlesClass: every handle of a bucket shares its cache, so
// a write through a handle opened without ReadCache still drops the slot;
// an open with a TTL closes the cache for all; writes that end after the
// store closed keep nothing and count no memory.
func TestReadCacheHandlesClass(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, true)
	k1, c := cachedKV(t, s, "shared", 1<<20)
	if _, err := k1.Put(ctx, "a.k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	kv2, err := s.KV(ctx, "shared", KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if kv2.(*natsKV).rc != c {
		t.Fatal("a second handle of the bucket has another cache")
	}
	if err := kv2.Delete(ctx, "a.k"); err != nil {
		t.Fatal(err)
	}
	if e, err := k1.Get(ctx, "a.k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted through the other handle, read %q, %v", e.Value, err)
	}
	if _, err := k1.Put(ctx, "a.k", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	h0 := c.hits.Load()
	if _, err := s.KV(ctx, "shared", KVOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if e, err := k1.Get(ctx, "a.k"); err != nil || string(e.Value) != "v2" || c.hits.Load() != h0 {
		t.Fatalf("after a TTL open: %q, %v, hits %d -> %d", e.Value, err, h0, c.hits.Load())
	}

	s2 := openTest(t, true)
	k3, c3 := cachedKV(t, s2, "late", 1<<20)
	before := ReadCacheBytes()
	w := c3.begin("a.k")
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	c3.end("a.k", w, []byte("after close"), 7, nil)
	if got := ReadCacheBytes(); got > before {
		t.Fatalf("a write ended after close counted %d bytes", got-before)
	}
	if _, ok := k3.rc.get("a.k"); ok {
		t.Fatal("a write ended after close is cached")
	}
}
