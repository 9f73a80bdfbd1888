package adaptive

import (
	"math"
	"sort"
	"testing"
	"time"
)

// server is a simulated backend of fixed capacity: up to capacity requests
// take base each; beyond that they share it, so service time grows with
// concurrency.
type server struct {
	capacity int
	base     time.Duration
}

func (s server) serviceTime(inflight int) time.Duration {
	if inflight <= s.capacity {
		return s.base
	}
	return time.Duration(float64(s.base) * float64(inflight) / float64(s.capacity))
}

// run drives the limiter with a demand of demand concurrent requests for
// windows windows and returns the service times of the last half.
func run(t *testing.T, g *Gradient, s server, demand, windows int) []time.Duration {
	t.Helper()
	now := time.Unix(0, 0)
	var late []time.Duration
	for w := 0; w < windows; w++ {
		inflight := g.Limit()
		if demand < inflight {
			inflight = demand
		}
		rtt := s.serviceTime(inflight)
		// One window's worth of completions.
		for i := 0; i < 20; i++ {
			now = now.Add(g.cfg.Window / 20)
			g.Observe(now, rtt, inflight)
			if w >= windows/2 {
				late = append(late, rtt)
			}
		}
	}
	return late
}

func p99(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(math.Ceil(0.99*float64(len(s))))-1]
}

// TestSheddingKeepsLatencyBoundedClass: for several capacities, floods of
// 4x to 20x capacity and short and long runs, the limit settles where the
// service time stays within 2.5x the unloaded time (the tolerance plus the
// limiter's probing queue), whatever the size of the flood, instead of
// growing with it as an unlimited server's does.
func TestSheddingKeepsLatencyBoundedClass(t *testing.T) {
	for _, capacity := range []int{8, 32, 128} {
		for _, flood := range []int{4, 20} {
			windows := 400
			if capacity == 32 && flood == 20 {
				windows = 4000 // an hour-long flood at 1s windows: no ratchet
			}
			s := server{capacity: capacity, base: 20 * time.Millisecond}
			g, err := New(DefaultConfig(capacity/2, 4, 100_000))
			if err != nil {
				t.Fatal(err)
			}
			late := run(t, g, s, capacity*flood, windows)
			got := p99(late)
			unlimited := s.serviceTime(capacity * flood)
			t.Logf("capacity %d, flood %dx: limit %d, p99 %s (unlimited %s)", capacity, flood, g.Limit(), got, unlimited)
			if got > 5*s.base/2 {
				t.Errorf("capacity %d flood %dx: p99 %s > 2.5x unloaded %s (limit %d)", capacity, flood, got, s.base, g.Limit())
			}
			if g.Limit() < capacity/2 {
				t.Errorf("capacity %d: limit collapsed to %d", capacity, g.Limit())
			}
		}
	}
}

// TestLimitGrowsWhenLatencyHolds: with a backend that never slows down,
// a used limit grows to its maximum; an unused one stays.
func TestLimitGrowsWhenLatencyHolds(t *testing.T) {
	g, _ := New(DefaultConfig(10, 4, 200))
	run(t, g, server{capacity: 1 << 30, base: 5 * time.Millisecond}, 1<<30, 300)
	if g.Limit() != 200 {
		t.Fatalf("limit %d, want the maximum 200", g.Limit())
	}
	idle, _ := New(DefaultConfig(10, 4, 200))
	run(t, idle, server{capacity: 1 << 30, base: 5 * time.Millisecond}, 2, 300)
	if idle.Limit() != 10 {
		t.Fatalf("unused limit moved to %d", idle.Limit())
	}
}

// TestLimitRecovers: after an overload ends the limit comes back up.
func TestLimitRecovers(t *testing.T) {
	g, _ := New(DefaultConfig(64, 4, 256))
	run(t, g, server{capacity: 16, base: 10 * time.Millisecond}, 10_000, 200)
	low := g.Limit()
	run(t, g, server{capacity: 256, base: 10 * time.Millisecond}, 10_000, 400)
	if g.Limit() <= low*2 {
		t.Fatalf("limit %d after recovery, was %d under overload", g.Limit(), low)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{Initial: 1, Min: 0, Max: 1},
		{Initial: 5, Min: 10, Max: 20},
		func() Config { c := DefaultConfig(10, 1, 100); c.Tolerance = 0.5; return c }(),
		func() Config { c := DefaultConfig(10, 1, 100); c.Smoothing = 0; return c }(),
		func() Config { c := DefaultConfig(10, 1, 100); c.Window = 0; return c }(),
	}
	for i, c := range bad {
		if c.Validate() == nil {
			t.Errorf("case %d accepted", i)
		}
	}
}

func FuzzObserve(f *testing.F) {
	f.Add(int64(1000), int64(5_000_000), 10)
	f.Add(int64(0), int64(0), 0)
	f.Fuzz(func(t *testing.T, stepNs, rttNs int64, inflight int) {
		g, _ := New(DefaultConfig(16, 2, 64))
		now := time.Unix(0, 0)
		for i := 0; i < 200; i++ {
			now = now.Add(time.Duration(stepNs%int64(time.Second)) + time.Millisecond)
			l, _ := g.Observe(now, time.Duration(rttNs%int64(time.Minute))*time.Duration(1+i%3), inflight%1000)
			if l < 2 || l > 64 {
				t.Fatalf("limit %d out of [2, 64]", l)
			}
		}
	})
}

// TestGenuineSlowdownRelearned: when the backend itself becomes slower
// for good, the probes re-learn the baseline and the limit returns to
// about the backend's capacity instead of collapsing to the minimum.
func TestGenuineSlowdownRelearned(t *testing.T) {
	g, _ := New(DefaultConfig(32, 2, 1000))
	run(t, g, server{capacity: 32, base: 10 * time.Millisecond}, 10_000, 300)
	run(t, g, server{capacity: 32, base: 30 * time.Millisecond}, 10_000, 600)
	if g.Limit() < 24 || g.Baseline() < 25*time.Millisecond {
		t.Fatalf("after a lasting slowdown: limit %d, baseline %s", g.Limit(), g.Baseline())
	}
}

// TestSlowMinorityIsNotCongestion: a few requests that are slow by nature
// (a long model call among quick reads) do not shrink the limit.
func TestSlowMinorityIsNotCongestion(t *testing.T) {
	g, _ := New(DefaultConfig(64, 4, 64))
	now := time.Unix(0, 0)
	for w := 0; w < 100; w++ {
		for i := 0; i < 1000; i++ {
			now = now.Add(time.Millisecond)
			rtt := 5 * time.Millisecond
			if i%10 == 0 {
				rtt = 30 * time.Second
			}
			g.Observe(now, rtt, 64)
		}
	}
	if g.Limit() < 32 || g.Baseline() > 10*time.Millisecond {
		t.Fatalf("limit %d baseline %s: slow requests read as congestion", g.Limit(), g.Baseline())
	}
}
