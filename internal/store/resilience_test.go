package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestStoreKeyLimitClass: no key, prefix, subject or blob name of any
// length reaches the connection; over-long ones are 400 problems that are
// also ErrInvalid, and the connection stays up.
func TestStoreKeyLimitClass(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, true)
	kv, err := s.KV(ctx, "limits", KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lg, err := s.Log(ctx, "LIMITS", LogOptions{Subjects: []string{"lim.>"}})
	if err != nil {
		t.Fatal(err)
	}
	bl, err := s.Blobs(ctx, "limits")
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("k", 5000)
	escaped := Key("agent", "session", strings.Repeat("é", 2000)) // 3 bytes per escaped byte
	ok := Key("a", strings.Repeat("x", MaxKeyLen-2))
	if _, err := kv.Put(ctx, ok, []byte("1")); err != nil {
		t.Fatalf("key of exactly MaxKeyLen bytes: %v", err)
	}
	if e, err := kv.Get(ctx, ok); err != nil || string(e.Value) != "1" {
		t.Fatalf("get key of MaxKeyLen: %v", err)
	}
	ops := map[string]func() error{
		"get":      func() error { _, err := kv.Get(ctx, long); return err },
		"put":      func() error { _, err := kv.Put(ctx, long, nil); return err },
		"create":   func() error { _, err := kv.Create(ctx, escaped, nil); return err },
		"update":   func() error { _, err := kv.Update(ctx, long, nil, 1); return err },
		"delete":   func() error { return kv.Delete(ctx, long) },
		"keys":     func() error { _, err := kv.Keys(ctx, long); return err },
		"watch":    func() error { _, err := kv.Watch(ctx, long, func(WatchEvent) {}); return err },
		"one over": func() error { _, err := kv.Put(ctx, ok+"x", nil); return err },
		"empty":    func() error { _, err := kv.Get(ctx, ""); return err },
		"space":    func() error { _, err := kv.Get(ctx, "a b"); return err },
		"dots":     func() error { _, err := kv.Get(ctx, "a..b"); return err },
		"append":   func() error { _, err := lg.Append(ctx, "lim."+long, []byte("x")); return err },
		"filter":   func() error { _, err := lg.Read(ctx, 1, 1, "lim."+long); return err },
		"blob put": func() error { return bl.Put(ctx, long, []byte("x")) },
		"blob get": func() error { _, err := bl.Get(ctx, long); return err },
		"blob del": func() error { return bl.Delete(ctx, long) },
	}
	for name, op := range ops {
		err := op()
		if !errors.Is(err, ErrInvalid) || !api.IsKind(err, api.KindInvalidID) {
			t.Errorf("%s: want ErrInvalid as a %s problem, got %v", name, api.KindInvalidID, err)
		}
		if len(err.Error()) > 400 {
			t.Errorf("%s: error echoes %d bytes", name, len(err.Error()))
		}
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("connection broken by refused keys: %v", err)
	}
	if s.Redials() != 0 {
		t.Fatalf("refused keys cost %d redials", s.Redials())
	}
}

// TestStoreValueTooLarge: a value past the payload limit is a 413 problem,
// not an opaque error, and the connection survives.
func TestStoreValueTooLarge(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, true)
	kv, err := s.KV(ctx, "big", KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = kv.Put(ctx, "k", make([]byte, 2<<20))
	if !errors.Is(err, ErrTooLarge) || !api.IsKind(err, api.KindTooLarge) {
		t.Fatalf("2 MiB value: want ErrTooLarge problem, got %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// breakConn makes the server close the store's connection for good, as an
// over-long protocol line does: the client library does not reconnect
// after "maximum control line exceeded".
func breakConn(t *testing.T, s *Store) *nats.Conn {
	t.Helper()
	nc := s.cur.Load().nc
	s.InjectConnectionFault()
	deadline := time.Now().Add(5 * time.Second)
	for !nc.IsClosed() {
		if time.Now().After(deadline) {
			t.Fatal("the server did not close the connection")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nc
}

// TestStoreSurvivesConnectionLoss kills the connection the way the
// original attack did and shows operations, Ping and watches recover
// without reopening the store.
func TestStoreSurvivesConnectionLoss(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, true)
	kv, err := s.KV(ctx, "resilient", KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lg, err := s.Log(ctx, "RESILIENT", LogOptions{Subjects: []string{"res.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"w.a", "w.b"} {
		if _, err := kv.Put(ctx, k, []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	events := make(chan WatchEvent, 64)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	done, err := kv.Watch(wctx, "w", func(ev WatchEvent) { events <- ev })
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		<-events
	}

	// Hold the redial back while another client deletes and writes, so
	// the watch has a real gap to reconcile.
	s.mu.Lock()
	breakConn(t, s)
	if err := s.Ping(ctx); !errors.Is(err, ErrUnavailable) {
		s.mu.Unlock()
		t.Fatalf("ping with the connection down: want ErrUnavailable, got %v", err)
	}
	other, err := nats.Connect("", nats.InProcessServer(s.ns))
	if err != nil {
		s.mu.Unlock()
		t.Fatal(err)
	}
	ojs, _ := jetstream.New(other)
	okv, err := ojs.KeyValue(ctx, "resilient")
	if err == nil {
		err = okv.Delete(ctx, "w.a")
	}
	if err == nil {
		_, err = okv.Put(ctx, "w.c", []byte("gap"))
	}
	other.Close()
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(10 * time.Second)
	for s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("store did not recover")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s.Redials() != 1 {
		t.Fatalf("redials = %d, want 1", s.Redials())
	}
	if _, err := kv.Put(ctx, "w.d", []byte("after")); err != nil {
		t.Fatalf("put after recovery: %v", err)
	}
	if _, err := lg.Append(ctx, "res.x", []byte("after")); err != nil {
		t.Fatalf("append after recovery: %v", err)
	}
	got := map[string]bool{} // key -> present
	converged := func() bool {
		present, seen := got["w.a"]
		return seen && !present && got["w.c"] && got["w.d"]
	}
	for !converged() {
		select {
		case ev := <-events:
			got[ev.Key] = !ev.Deleted
		case <-time.After(10 * time.Second):
			t.Fatalf("watch did not converge: %v", got)
		}
	}
	select {
	case <-done:
		t.Fatal("watch ended instead of resuming")
	default:
	}
}
