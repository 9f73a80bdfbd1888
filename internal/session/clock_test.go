package session

import (
	"context"
	"sync"
	"testing"
	"time"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *testClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// TestSessionClockClass: every timestamp and idle decision of the Manager
// comes from Config.Now: a version's and an agent's creation, a session's
// creation and last activity (live and stored), and hibernation of idle
// sessions, which happens when the configured clock, not the wall, says the
// idle time has passed.
func TestSessionClockClass(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC) // far from the wall clock
	clk := &testClock{now: start}
	m := openManager(t, t.TempDir(), func(c *testConfig) {
		c.Now = clk.Now
		c.JanitorInterval = time.Hour // the test sweeps itself
	})
	v := deploy(t, m, `{"name":"clk","entry":"agent.js","limits":{"idle_seconds":60}}`,
		`export default { fetch() { return new Response("ok") } }`)
	if !v.Created.Equal(start) {
		t.Errorf("version created %v, want %v", v.Created, start)
	}
	a, err := m.Agent(ctx, "clk")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Created.Equal(start) || !a.Updated.Equal(start) {
		t.Errorf("agent created %v updated %v, want %v", a.Created, a.Updated, start)
	}

	mustCall(t, m, "clk", "s1", "/")
	s, err := m.Session(ctx, "clk", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Created.Equal(start) || !s.LastActive.Equal(start) || s.State != "live" {
		t.Errorf("live session %+v, want created and last active %v", s, start)
	}

	// Idle by less than idle_seconds on the configured clock: stays live.
	clk.Advance(59 * time.Second)
	m.sweep(ctx)
	if s, _ := m.Session(ctx, "clk", "s1"); s.State != "live" {
		t.Fatalf("hibernated after 59s of its 60s idle time: %+v", s)
	}
	// Past it: hibernated, and the stored record keeps the clock's times.
	clk.Advance(2 * time.Second)
	m.sweep(ctx)
	s, err = m.Session(ctx, "clk", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if s.State != "hibernated" || !s.Created.Equal(start) || !s.LastActive.Equal(start) {
		t.Fatalf("after 61s idle: %+v, want hibernated with created and last active %v", s, start)
	}

	// A later activation is stamped with the clock's time.
	clk.Advance(time.Hour)
	mustCall(t, m, "clk", "s1", "/")
	if s, _ := m.Session(ctx, "clk", "s1"); !s.LastActive.Equal(clk.Now()) {
		t.Fatalf("last active %v, want %v", s.LastActive, clk.Now())
	}
}
