package session

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/store"
)

// TestNewSessionRecordRoundClass: a new session's record is durable before
// its first answer, whatever the answer (a request that writes state, one
// that writes nothing, one that throws), yet a first request that writes
// state waits for one group-commit round, not two: the record's Create
// shares its round with the state write. Each call runs alone, so the
// rounds counted are its own. Afterwards the session, restarted, exists
// with its state.
func TestNewSessionRecordRoundClass(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m := openManager(t, t.TempDir(), func(c *testConfig) { c.Store = st })
	t.Cleanup(func() { _ = st.Close() })
	deploy(t, m, `{"name":"rounds","entry":"agent.js","limits":{"idle_seconds":86400}}`,
		`export default { async fetch(request, env) {
			if (request.method === "POST") { await env.state.put("k", {v: 1}); }
			if (request.method === "PUT") { throw new Error("boom"); }
			return new Response("hello");
		} };`)
	// Warm-up: the bucket streams exist and were synced once.
	if _, err := m.Call(ctx, "rounds", "warm", isolate.Request{Method: "POST", URL: "http://x/"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id, method string
		rounds     uint64 // group-commit rounds the call may take
		fails      bool
	}{
		{"writes", "POST", 1, false},
		{"reads", "GET", 1, false},
		{"throws", "PUT", 1, true},
	} {
		r0 := st.SyncRounds()
		_, err := m.Call(ctx, "rounds", c.id, isolate.Request{Method: c.method, URL: "http://x/"})
		if (err != nil) != c.fails {
			t.Fatalf("%s: %v", c.id, err)
		}
		n := st.SyncRounds() - r0
		if n == 0 || n > c.rounds {
			t.Errorf("%s: the first call took %d group-commit rounds, want 1..%d", c.id, n, c.rounds)
		}
		m.mu.Lock()
		s := m.sessions[sessKey{"rounds", c.id}]
		m.mu.Unlock()
		if s != nil {
			s.mu.Lock()
			pending := s.created.Pending()
			s.mu.Unlock()
			if pending {
				t.Errorf("%s: the call returned with its record's fsync still pending", c.id)
			}
		}
		if _, err := m.Session(ctx, "rounds", c.id); err != nil {
			t.Errorf("%s: no record after the first call: %v", c.id, err)
		}
	}
}

// failFirstIdentity refuses the first identity it is asked for.
type failFirstIdentity struct{ n atomic.Int32 }

func (f *failFirstIdentity) Activate(ctx context.Context, c Caller) (string, error) {
	if f.n.Add(1) == 1 {
		return "", errors.New("identity provider down")
	}
	return "spiffe://test/" + c.Session, nil
}

func (f *failFirstIdentity) Release(agent, id string) {}

// TestFailedActivationRecordDurableClass: an activation that fails after
// it created the session's record (here its identity) leaves that record
// durable before the failure is answered: the next call finds the record,
// activates the session as an existing one and may answer without a round
// of its own.
func TestFailedActivationRecordDurableClass(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m := openManager(t, t.TempDir(), func(c *testConfig) { c.Store = st; c.Bindings.Identity = &failFirstIdentity{} })
	t.Cleanup(func() { _ = st.Close() })
	deploy(t, m, `{"name":"orphan","entry":"agent.js"}`,
		`export default { async fetch() { return new Response("hello"); } };`)
	r0 := st.SyncRounds()
	if _, err := m.Call(ctx, "orphan", "s1", isolate.Request{Method: "GET", URL: "http://x/"}); err == nil {
		t.Fatal("the first call succeeded: the identity did not fail, the test checks nothing")
	}
	if st.SyncRounds() == r0 {
		t.Fatal("the failed activation answered before the record it created was synced")
	}
	if resp, err := m.Call(ctx, "orphan", "s1", isolate.Request{Method: "GET", URL: "http://x/"}); err != nil || resp.Status != 200 {
		t.Fatalf("second call: %v %d", err, resp.Status)
	}
}

// roundsSink records the store's group-commit rounds when the response
// head goes out.
type roundsSink struct {
	st      *store.Store
	atStart uint64
	started bool
	gone    chan struct{}
	body    []byte
}

func (s *roundsSink) Start(isolate.Response) error {
	s.atStart, s.started = s.st.SyncRounds(), true
	return nil
}
func (s *roundsSink) Write(b []byte) error  { s.body = append(s.body, b...); return nil }
func (s *roundsSink) Gone() <-chan struct{} { return s.gone }

// TestStreamedFirstAnswerRecordDurableClass: a new session whose first
// answer is a stream sends its head only once the record is durable, as a
// buffered answer is sent.
func TestStreamedFirstAnswerRecordDurableClass(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m := openManager(t, t.TempDir(), func(c *testConfig) { c.Store = st })
	t.Cleanup(func() { _ = st.Close() })
	deploy(t, m, `{"name":"streamer","entry":"agent.js"}`,
		`export default { async fetch() {
			const body = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode("chunk")); c.close(); } });
			return new Response(body);
		} };`)
	sink := &roundsSink{st: st, gone: make(chan struct{})}
	r0 := st.SyncRounds()
	if _, err := m.Call(ctx, "streamer", "s1", isolate.Request{Method: "GET", URL: "http://x/", Sink: sink}); err != nil {
		t.Fatal(err)
	}
	if !sink.started || string(sink.body) != "chunk" {
		t.Fatalf("the answer was not streamed (started %v, body %q): the test checks nothing", sink.started, sink.body)
	}
	if sink.atStart == r0 {
		t.Fatal("a new session's streamed head went out before its record was synced")
	}
}
