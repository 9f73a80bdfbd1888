// Package adaptive computes the front door's adaptive concurrency limit in
// the manner of Netflix's Gradient2 limiter: it compares the short-term
// service time (one window) with a no-load baseline and shrinks the limit
// when service times grow past the tolerated ratio, before latency
// collapses; it grows the limit slowly while service times hold and the
// limit is in use. The baseline is the lowest window seen while loaded,
// re-measured now and then by a short probe at half the limit (as BBR
// probes its minimum RTT), so a sustained flood cannot teach the limiter
// that its own queueing is normal. It only computes a number from
// observations; applying it (fairq.Scheduler.SetLimit) is the caller's job,
// and time comes from the observations, so tests feed a simulated clock.
package adaptive

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"
)

// Config tunes the limiter.
type Config struct {
	// Initial, Min and Max bound the limit.
	Initial, Min, Max int
	// Tolerance is how much the short-term service time may exceed the
	// baseline before the limit shrinks (1.5: by half).
	Tolerance float64
	// Smoothing weighs each new estimate (0 < s <= 1).
	Smoothing float64
	// Window is the sampling window; a window needs MinSamples
	// observations to count.
	Window     time.Duration
	MinSamples int
	// ProbeEvery loaded windows the limit halves for a window to
	// re-measure the no-load service time.
	ProbeEvery int
}

// DefaultConfig is the limiter's defaults around an initial limit.
func DefaultConfig(initial, min, max int) Config {
	return Config{Initial: initial, Min: min, Max: max, Tolerance: 1.5, Smoothing: 0.2,
		Window: time.Second, MinSamples: 10, ProbeEvery: 60}
}

// Validate names a setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Min < 1 || c.Max < c.Min || c.Max > 1_000_000:
		return fmt.Errorf("min %d and max %d: want 1 <= min <= max <= 1000000", c.Min, c.Max)
	case c.Initial < c.Min || c.Initial > c.Max:
		return fmt.Errorf("initial %d: want between min %d and max %d", c.Initial, c.Min, c.Max)
	case !(c.Tolerance >= 1 && c.Tolerance <= 10):
		return fmt.Errorf("tolerance %g: want 1 to 10", c.Tolerance)
	case !(c.Smoothing > 0 && c.Smoothing <= 1):
		return fmt.Errorf("smoothing %g: want more than 0, at most 1", c.Smoothing)
	case c.Window < time.Millisecond || c.Window > time.Minute:
		return fmt.Errorf("window %s: want 1ms to 1m", c.Window)
	case c.MinSamples < 1 || c.ProbeEvery < 1:
		return errors.New("min samples and probe interval: want at least 1")
	}
	return nil
}

// Gradient is the limiter. It is safe for concurrent use.
type Gradient struct {
	cfg Config

	mu          sync.Mutex // protects everything below
	limit       float64
	base        float64   // no-load service time, seconds (0: unknown)
	samples     []float64 // this window's service times, seconds (a reservoir)
	n           int       // samples offered this window
	rng         uint64    // xorshift state for the reservoir
	maxInflight int
	start       time.Time
	loaded      int // loaded windows since the last probe
	probing     bool
	probeWins   int
	saved       float64 // the limit before the probe
}

// New returns a limiter at cfg.Initial.
func New(cfg Config) (*Gradient, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("adaptive limit: %w", err)
	}
	return &Gradient{cfg: cfg, limit: float64(cfg.Initial), rng: 0x9E3779B97F4A7C15}, nil
}

// Limit is the current limit.
func (g *Gradient) Limit() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return int(g.limit)
}

// Baseline is the no-load service time the limiter measures against.
func (g *Gradient) Baseline() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return time.Duration(g.base * float64(time.Second))
}

// Observe records one finished request: its service time (not counting
// its queue wait) and how many requests were running when it started, at
// time now. It returns the limit and whether this observation changed it.
func (g *Gradient) Observe(now time.Time, rtt time.Duration, inflight int) (int, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.start.IsZero() {
		g.start = now
	}
	// While probing, only requests that started under the probe limit
	// say what the service time is without our own queueing.
	if rtt > 0 && (!g.probing || float64(inflight) <= g.limit) {
		g.sample(rtt.Seconds())
	}
	if inflight > g.maxInflight {
		g.maxInflight = inflight
	}
	if now.Sub(g.start) < g.cfg.Window {
		return int(g.limit), false
	}
	before := int(g.limit)
	if g.probing {
		g.probeWindow()
	} else if g.n >= g.cfg.MinSamples {
		g.update(g.median())
	}
	if g.n >= g.cfg.MinSamples || g.probing {
		g.samples, g.n, g.maxInflight = g.samples[:0], 0, 0
	}
	g.start = now
	return int(g.limit), int(g.limit) != before
}

func (g *Gradient) probeWindow() {
	g.probeWins++
	if g.n >= g.cfg.MinSamples {
		g.base = g.median()
	} else if g.probeWins < 5 {
		return // wait for enough requests under the probe limit
	}
	g.probing, g.limit, g.loaded, g.probeWins = false, g.saved, 0, 0
}

func (g *Gradient) update(short float64) {
	loaded := float64(g.maxInflight) >= g.limit/2
	switch {
	case g.base == 0:
		g.base = short
	case !loaded:
		// Unloaded windows measure the service time itself.
		g.base += (short - g.base) / 10
	case short < g.base:
		g.base = short
	}
	// Not using the limit says nothing about whether it is too high.
	if !loaded {
		return
	}
	gradient := math.Max(0.5, math.Min(1, g.cfg.Tolerance*g.base/short))
	next := g.limit*gradient + math.Sqrt(g.limit)
	next = g.limit*(1-g.cfg.Smoothing) + next*g.cfg.Smoothing
	g.limit = math.Max(float64(g.cfg.Min), math.Min(float64(g.cfg.Max), next))
	if g.loaded++; g.loaded >= g.cfg.ProbeEvery {
		g.probing, g.saved, g.probeWins = true, g.limit, 0
		g.limit = math.Max(float64(g.cfg.Min), g.limit/2)
	}
}

// reservoirSize bounds the samples kept per window.
const reservoirSize = 512

// sample offers one service time to the window's reservoir.
func (g *Gradient) sample(v float64) {
	g.n++
	if len(g.samples) < reservoirSize {
		g.samples = append(g.samples, v)
		return
	}
	// Reservoir sampling with a deterministic xorshift: every sample has
	// an equal chance to stay, and tests need no random source.
	g.rng ^= g.rng << 13
	g.rng ^= g.rng >> 7
	g.rng ^= g.rng << 17
	if i := g.rng % uint64(g.n); i < reservoirSize {
		g.samples[i] = v
	}
}

func (g *Gradient) median() float64 {
	sort.Float64s(g.samples)
	return g.samples[len(g.samples)/2]
}
