package session

import (
	"context"
	"testing"
	"time"

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
