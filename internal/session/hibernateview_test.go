package session

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/store"
)

// TestHibernateSessionClass: the session HibernateSession answers with
// (the record its hibernation wrote, not read back) is exactly what the
// store then holds, for a new session, for one activated again and for one
// already hibernated; and it refuses what Hibernate refuses: a malformed
// id, an unknown session, another agent's name for the same id.
func TestHibernateSessionClass(t *testing.T) {
	m := openManager(t, t.TempDir())
	deploy(t, m, `{"name":"hv","entry":"agent.js","limits":{"idle_seconds":86400}}`,
		`export default { async fetch(request, env) {
			if (request.method === "POST") { await env.state.put("k", {v: new URL(request.url).search}); }
			return new Response("ok");
		} };`)
	deploy(t, m, `{"name":"other","entry":"agent.js"}`, `export default { fetch() { return new Response("x") } };`)
	ctx := context.Background()
	same := func(step string, got api.Session) {
		t.Helper()
		want, err := m.Session(ctx, "hv", "a")
		if err != nil {
			t.Fatal(err)
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if string(g) != string(w) {
			t.Fatalf("%s: HibernateSession answered\n%s\nthe store holds\n%s", step, g, w)
		}
		if got.State != "hibernated" || got.SnapshotBytes <= 0 {
			t.Fatalf("%s: state %q, snapshot %d bytes", step, got.State, got.SnapshotBytes)
		}
	}
	for step, method := range []string{"POST", "GET", "POST"} {
		if _, err := m.Call(ctx, "hv", "a", isolate.Request{Method: method, URL: "http://x/?n=" + method}); err != nil {
			t.Fatal(err)
		}
		got, err := m.HibernateSession(ctx, "hv", "a")
		if err != nil {
			t.Fatal(err)
		}
		same(method+" then hibernate #"+string(rune('0'+step)), got)
	}
	got, err := m.HibernateSession(ctx, "hv", "a") // hibernated already
	if err != nil {
		t.Fatal(err)
	}
	same("hibernated already", got)
	if _, err := m.HibernateSession(ctx, "hv", "nobody"); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
	if _, err := m.HibernateSession(ctx, "other", "a"); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("another agent's session of the same id: %v", err)
	}
	for _, id := range []string{"..", "a/b", ""} {
		if _, err := m.HibernateSession(ctx, "hv", id); err == nil || api.IsKind(err, api.KindNotFound) {
			t.Fatalf("id %q: %v, want a refusal of the id", id, err)
		}
	}
}

// TestHibernateRecordAndHeapClass: hibernations that write their heap and
// their record at once (one node, group commit) leave, for every session,
// a record that says hibernated with the size of the heap the store holds
// for that session, and a restart restores each session's own heap.
func TestHibernateRecordAndHeapClass(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(context.Background(), store.Options{Dir: dir}) // group commit, as a daemon runs
	if err != nil {
		t.Fatal(err)
	}
	m := openManager(t, t.TempDir(), func(c *testConfig) { c.Store = st })
	deploy(t, m, counterManifest, counterJS)
	ctx := context.Background()
	const n = 12
	var got struct{ Global, Stored int }
	for k := range n {
		for range k + 1 {
			mustCall(t, m, "counter", fmt.Sprint("h", k), "/")
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for k := range n {
		wg.Go(func() {
			v, err := m.HibernateSession(ctx, "counter", fmt.Sprint("h", k))
			if err == nil && (v.State != "hibernated" || v.SnapshotBytes <= 0) {
				err = fmt.Errorf("h%d: %+v", k, v)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for k := range n {
		id := fmt.Sprint("h", k)
		v, err := m.Session(ctx, "counter", id)
		if err != nil {
			t.Fatal(err)
		}
		snap, err := m.loadSnapshot(ctx, sessKey{"counter", id})
		if err != nil || v.State != "hibernated" || v.SnapshotBytes != int64(len(snap)) {
			t.Fatalf("%s: record %+v beside a stored heap of %d bytes (%v)", id, v, len(snap), err)
		}
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := openManager(t, dir)
	for k := range n {
		_ = json.Unmarshal([]byte(mustCall(t, m2, "counter", fmt.Sprint("h", k), "/")), &got)
		if got.Global != k+2 || got.Stored != k+2 {
			t.Fatalf("h%d after restart: %+v, want %d", k, got, k+2)
		}
	}
}
