package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTest(t testing.TB, noSync bool) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Dir: t.TempDir(), NoSync: noSync})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestKV(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, false)
	kv, err := s.KV(ctx, "test", KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: want ErrNotFound, got %v", err)
	}
	rev, err := kv.Create(ctx, "a.b", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "a.b", []byte("2")); !errors.Is(err, ErrExists) {
		t.Fatalf("create twice: want ErrExists, got %v", err)
	}
	if _, err := kv.Update(ctx, "a.b", []byte("3"), rev+10); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update: want ErrConflict, got %v", err)
	}
	if _, err := kv.Update(ctx, "a.b", []byte("4"), rev); err != nil {
		t.Fatalf("update: %v", err)
	}
	e, err := kv.Get(ctx, "a.b")
	if err != nil || string(e.Value) != "4" {
		t.Fatalf("get: %q %v", e.Value, err)
	}
	for _, k := range []string{"a.c", "b.a", "a.d.e"} {
		if _, err := kv.Put(ctx, k, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := kv.Keys(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a.b", "a.c", "a.d.e"}; !slices.Equal(keys, want) {
		t.Fatalf("keys: got %v want %v", keys, want)
	}
	if err := kv.Delete(ctx, "a.b"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "never"); err != nil {
		t.Fatalf("delete absent: %v", err)
	}
	if _, err := kv.Get(ctx, "a.b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if _, err := kv.Put(ctx, "bad key", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid key: want ErrInvalid, got %v", err)
	}
}

func TestLog(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, false)
	l, err := s.Log(ctx, "EVENTS", LogOptions{Subjects: []string{"ev.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		subj := "ev.a"
		if i%2 == 1 {
			subj = "ev.b"
		}
		if _, err := l.Append(ctx, subj, fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	all, err := l.Read(ctx, 1, 100, "")
	if err != nil || len(all) != 5 {
		t.Fatalf("read all: %d %v", len(all), err)
	}
	bs, err := l.Read(ctx, 1, 100, "ev.b")
	if err != nil || len(bs) != 2 || string(bs[1].Data) != "3" {
		t.Fatalf("read filtered: %+v %v", bs, err)
	}
	page, err := l.Read(ctx, 2, 2, "")
	if err != nil || len(page) != 2 || page[0].Seq != 2 {
		t.Fatalf("page: %+v %v", page, err)
	}
}

func TestBlobs(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, false)
	b, err := s.Blobs(ctx, "blobs")
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 300_000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := b.Put(ctx, "x", big); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, "x")
	if err != nil || !slices.Equal(got, big) {
		t.Fatalf("get: len %d %v", len(got), err)
	}
	if err := b.Delete(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	kv, _ := s.KV(ctx, "k", KVOptions{})
	if _, err := kv.Put(ctx, "x", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kv, _ = s.KV(ctx, "k", KVOptions{})
	e, err := kv.Get(ctx, "x")
	if err != nil || string(e.Value) != "kept" {
		t.Fatalf("after reopen: %q %v", e.Value, err)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Streams != 1 || st.Messages != 1 {
		t.Fatalf("stats: %+v %v", st, err)
	}
}

func TestConcurrentPuts(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, true)
	kv, _ := s.KV(ctx, "c", KVOptions{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if _, err := kv.Put(ctx, Key("w", fmt.Sprint(w), fmt.Sprint(i)), []byte("v")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	keys, err := kv.Keys(ctx, "w")
	if err != nil || len(keys) != 400 {
		t.Fatalf("keys: %d %v", len(keys), err)
	}
}

var keyCases = []string{"", "a", "hello world", "a.b", "=", "ünïcödé", "x/y:z", "*", ">"}

func TestKeyRoundTrip(t *testing.T) {
	for _, c := range keyCases {
		k := Key("p", c)
		parts, err := KeyParts(k)
		if err != nil || len(parts) != 2 || parts[1] != c {
			t.Errorf("Key(%q) = %q -> %q %v", c, k, parts, err)
		}
	}
}

func FuzzKey(f *testing.F) {
	for _, c := range keyCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k := Key(s)
		for _, c := range []byte(k) {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '='
			if !ok {
				t.Fatalf("Key(%q) = %q has invalid byte %q", s, k, c)
			}
		}
		parts, err := KeyParts(k)
		if err != nil || len(parts) != 1 || parts[0] != s {
			t.Fatalf("round trip %q -> %q -> %q %v", s, k, parts, err)
		}
		_, _ = KeyParts(s) // must not panic on arbitrary input
	})
}

// TestKVWatch checks that Watch delivers current entries before it returns,
// then puts and deletes in order, and closes done when its context ends.
func TestKVWatch(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, true)
	kv, err := s.KV(ctx, "watched", KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, Key("a", "1"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, Key("b", "1"), []byte("other prefix")); err != nil {
		t.Fatal(err)
	}
	events := make(chan WatchEvent, 16)
	wctx, stop := context.WithCancel(ctx)
	done, err := kv.Watch(wctx, "a", func(ev WatchEvent) { events <- ev })
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 {
		t.Fatalf("Watch returned with %d current entries delivered, want 1", len(events))
	}
	if ev := <-events; ev.Key != Key("a", "1") || string(ev.Value) != "x" || ev.Deleted {
		t.Fatalf("initial event %+v", ev)
	}
	if _, err := kv.Put(ctx, Key("a", "2"), []byte("y")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, Key("a", "1")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []WatchEvent{{Key: Key("a", "2"), Value: []byte("y")}, {Key: Key("a", "1"), Deleted: true}} {
		select {
		case ev := <-events:
			if ev.Key != want.Key || ev.Deleted != want.Deleted || string(ev.Value) != string(want.Value) {
				t.Fatalf("event %+v, want %+v", ev, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no event for %s", want.Key)
		}
	}
	stop()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("done not closed after the context ended")
	}
}

// TestLogAppendExpect checks the optimistic append: it writes only while
// the log ends at the expected sequence, and a stale expectation (another
// writer got there first) is ErrConflict with nothing written.
func TestLogAppendExpect(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, true)
	l, err := s.Log(ctx, "EXPECT", LogOptions{Subjects: []string{"ex.>"}})
	if err != nil {
		t.Fatal(err)
	}
	seq, err := l.AppendExpect(ctx, "ex.a", []byte("first"), 0)
	if err != nil || seq != 1 {
		t.Fatalf("append on empty log: seq %d, %v", seq, err)
	}
	if _, err := l.AppendExpect(ctx, "ex.a", []byte("stale"), 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale expectation: want ErrConflict, got %v", err)
	}
	if _, err := l.Append(ctx, "ex.b", []byte("other writer")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendExpect(ctx, "ex.a", []byte("stale"), 1); !errors.Is(err, ErrConflict) {
		t.Fatalf("after another writer: want ErrConflict, got %v", err)
	}
	if seq, err := l.AppendExpect(ctx, "ex.a", []byte("third"), 2); err != nil || seq != 3 {
		t.Fatalf("append at the current end: seq %d, %v", seq, err)
	}
	if _, err := l.AppendExpect(ctx, "bad subject", nil, 3); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad subject: want ErrInvalid, got %v", err)
	}
	all, err := l.Read(ctx, 1, 10, "")
	if err != nil || len(all) != 3 || string(all[2].Data) != "third" {
		t.Fatalf("log holds %+v, %v", all, err)
	}
}

// TestKVWatchKeyClass: WatchKey delivers the key's entry and its changes,
// and nothing of the keys beside it (under it, sharing its start) or a
// malformed key; a key that does not exist yet is delivered when made.
func TestKVWatchKeyClass(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, true)
	kv, err := s.KV(ctx, "watchkey", KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{Key("run", "a"), Key("run", "a", "sub"), Key("run", "ab")} {
		if _, err := kv.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []string{"", "run.*", "run.>", "run..a"} {
		if _, err := kv.WatchKey(ctx, bad, func(WatchEvent) {}); err == nil {
			t.Errorf("WatchKey(%q) accepted", bad)
		}
	}
	events := make(chan WatchEvent, 16)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	if _, err := kv.WatchKey(wctx, Key("run", "a"), func(ev WatchEvent) { events <- ev }); err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Key != Key("run", "a") || len(events) != 0 {
		t.Fatalf("initial %+v and %d more", ev, len(events))
	}
	for _, k := range []string{Key("run", "a", "sub"), Key("run", "ab"), Key("run", "a")} {
		if _, err := kv.Put(ctx, k, []byte("2")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case ev := <-events:
		if ev.Key != Key("run", "a") || string(ev.Value) != "2" {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event for the key")
	}
	late := make(chan WatchEvent, 1)
	if _, err := kv.WatchKey(wctx, Key("run", "later"), func(ev WatchEvent) { late <- ev }); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, Key("run", "later"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-late:
		if ev.Key != Key("run", "later") {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event for a key made after the watch")
	}
	if len(events) != 0 {
		t.Fatalf("events of other keys: %+v", <-events)
	}
}

// TestKeySinglePartFastPathClass: a single part takes Key's copy-free fast
// path when it has nothing to escape; its key must be exactly what the
// escaping path makes of the same part, for plain and unplain parts alike.
func TestKeySinglePartFastPathClass(t *testing.T) {
	cases := append([]string{"a", "agent-1", "Z_9", "-", "_", "a.b", "é", "a b", "=", "x=y"}, keyCases...)
	for _, c := range cases {
		want := strings.TrimSuffix(Key(c, "x"), ".x") // two parts: the escaping path
		if got := Key(c); got != want {
			t.Errorf("Key(%q) = %q, escaping path gives %q", c, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = Key("agent-1") }); n != 0 {
		t.Errorf("Key of a plain part allocates %v times, want 0", n)
	}
}
