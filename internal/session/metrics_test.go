package session

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// gauge reads one unlabelled gauge from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s not exported", name)
	return 0
}

// TestHibernatedGaugeClass: agentcloud_sessions_hibernated follows every
// way a session record comes and goes or its isolate leaves and returns
// (create, hibernate, activate, delete of a session, delete of an agent)
// and, after a restart, starts from the records in the store.
func TestHibernatedGaugeClass(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	m := openManager(t, dir, func(c *testConfig) { c.Metrics = reg })
	deploy(t, m, counterManifest, counterJS)
	deploy(t, m, `{"name":"other","entry":"agent.js","limits":{"idle_seconds":3600}}`, counterJS)
	want := func(step string, n float64) {
		t.Helper()
		if got := gauge(t, reg, "agentcloud_sessions_hibernated"); got != n {
			t.Errorf("%s: agentcloud_sessions_hibernated = %v, want %v", step, got, n)
		}
	}
	// After a start the records are counted in the background.
	counted := func(step string, n float64) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if gauge(t, reg, "agentcloud_sessions_hibernated") == n {
				return
			}
		}
		want(step, n)
	}
	counted("empty", 0)
	for _, id := range []string{"s1", "s2", "s3"} {
		mustCall(t, m, "counter", id, "/")
	}
	want("three live", 0)
	for _, id := range []string{"s1", "s2"} {
		if err := m.Hibernate(ctx, "counter", id); err != nil {
			t.Fatal(err)
		}
	}
	want("two hibernated", 2)
	mustCall(t, m, "counter", "s1", "/")
	want("one woken", 1)
	if err := m.Delete(ctx, "counter", "s2"); err != nil { // hibernated
		t.Fatal(err)
	}
	want("hibernated one deleted", 0)
	if err := m.Delete(ctx, "counter", "s3"); err != nil { // live
		t.Fatal(err)
	}
	want("live one deleted", 0)
	if err := m.Delete(ctx, "counter", "s3"); err == nil {
		t.Fatal("deleting a deleted session succeeded")
	}
	want("deleted twice", 0)
	for _, id := range []string{"o1", "o2"} {
		mustCall(t, m, "other", id, "/")
		if err := m.Hibernate(ctx, "other", id); err != nil {
			t.Fatal(err)
		}
	}
	want("other agent's two hibernated", 2)

	// A restart counts the records in the store: s1 and o1, o2, all
	// hibernated by Close.
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_ = m.cfg.Store.Close()
	reg = prometheus.NewRegistry()
	m = openManager(t, dir, func(c *testConfig) { c.Metrics = reg })
	counted("after restart", 3)
	mustCall(t, m, "other", "o1", "/")
	want("after restart, one woken", 2)
	if err := m.DeleteAgent(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	want("agent deleted", 1)
	mustCall(t, m, "counter", "s4", "/")
	want("new live session", 1)
}

// TestStoredCountClass: a clean shutdown leaves the count of session
// records for the next start, which takes it instead of listing every
// record, but only while it still holds. Every way the sessions bucket
// can change while no manager kept the count (a crash after creating a
// session, a record deleted by another writer, a damaged count record)
// makes the next start count by listing, and the gauge never shows the
// stale count once that listing is done.
func TestStoredCountClass(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (*Manager, *prometheus.Registry) {
		reg := prometheus.NewRegistry()
		return openManager(t, dir, func(c *testConfig) { c.Metrics = reg }), reg
	}
	counted := func(reg *prometheus.Registry, step string, n float64) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if gauge(t, reg, "agentcloud_sessions_hibernated") == n {
				return
			}
		}
		t.Fatalf("%s: agentcloud_sessions_hibernated = %v, want %v", step, gauge(t, reg, "agentcloud_sessions_hibernated"), n)
	}
	closeClean := func(m *Manager) {
		t.Helper()
		if err := m.Close(ctx); err != nil {
			t.Fatal(err)
		}
		_ = m.cfg.Store.Close()
	}

	m, reg := open()
	deploy(t, m, counterManifest, counterJS)
	counted(reg, "empty", 0)
	for _, id := range []string{"s1", "s2"} {
		mustCall(t, m, "counter", id, "/")
	}
	closeClean(m)

	// A clean restart: the count is there when Start returns.
	m, reg = open()
	if got := gauge(t, reg, "agentcloud_sessions_hibernated"); got != 2 {
		t.Fatalf("after a clean restart: agentcloud_sessions_hibernated = %v, want 2 at once", got)
	}
	// A crash after a new session: the count left by the clean shutdown
	// before is stale.
	mustCall(t, m, "counter", "s3", "/")
	_ = m.cfg.Store.Close() // no Close: nothing is saved

	m, reg = open()
	counted(reg, "after a crash", 3)
	closeClean(m)

	// A record deleted while no manager ran (another writer of the store).
	st, err := store.Open(ctx, store.Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := st.KV(ctx, "sessions", store.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, store.Key("counter", "s1")); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	m, reg = open()
	counted(reg, "after a record was deleted behind its back", 2)

	// A damaged count record.
	if _, err := m.txns.Put(ctx, storedCountKey, []byte(`{"sessions":`)); err != nil {
		t.Fatal(err)
	}
	_ = m.cfg.Store.Close()
	m, reg = open()
	counted(reg, "after a damaged count record", 2)

	// A count record that claims another revision of the bucket.
	rev, err := m.meta.LastRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.txns.Put(ctx, storedCountKey, []byte(`{"sessions":7,"revision":`+strconv.FormatUint(rev+1, 10)+`}`)); err != nil {
		t.Fatal(err)
	}
	_ = m.cfg.Store.Close()
	m, reg = open()
	counted(reg, "after a count record of another revision", 2)
	closeClean(m)
	m, reg = open()
	if got := gauge(t, reg, "agentcloud_sessions_hibernated"); got != 2 {
		t.Fatalf("after the last clean restart: agentcloud_sessions_hibernated = %v, want 2 at once", got)
	}
	closeClean(m)
}
