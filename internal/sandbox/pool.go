package sandbox

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PoolConfig asks for a warm pool of prepared sandboxes.
type PoolConfig struct {
	Tier     string
	Template string // "" means TemplateHost
	Size     int    // prepared sandboxes kept ready
	// Refill is how many sandboxes the pool prepares at once while it is
	// below Size (default 1). A pool sized for bursts empties in one and
	// refills faster with one preparer per core; a tier that prepares at
	// a low CPU weight (the process tier does, for ForPool contexts) takes
	// only the CPU that claimed sandboxes and the daemon leave idle.
	Refill int
}

type poolKey struct{ tier, template string }

type pool struct {
	key    poolKey
	size   int
	refill int
	ready  chan Prepared // capacity size
	wake   chan struct{} // capacity refill: one token per preparer

	mu       sync.Mutex    // guards inflight, waiters, failed, typical, lastClaim, interval
	inflight int           // prepares under way
	waiters  int           // creates waiting for one of them (claim)
	failed   chan struct{} // closed, and replaced, when a prepare fails
	typical  time.Duration // moving average of the successful prepares
	// lastClaim is when the latest claim began; interval is the time
	// between it and the one before (0: fewer than two claims so far).
	lastClaim time.Time
	interval  time.Duration

	delayed atomic.Bool // a nudge is due after refillDelay (nudgeSoon)
	// activating counts the claimed sandboxes of this pool still being
	// activated (nudgeAfterActivate).
	activating atomic.Int32
	// asleep counts the preparers waiting for a nudge (tests wait for a
	// pool at rest on it).
	asleep atomic.Int32
}

func newPool(k poolKey, size, refill int) *pool {
	refill = min(max(refill, 1), size)
	return &pool{key: k, size: size, refill: refill, ready: make(chan Prepared, size), wake: make(chan struct{}, refill),
		failed: make(chan struct{})}
}

// claimWaitMin is the least time a create waits for a prepare under way
// (claim), so that a pool whose prepares were quick so far is not left
// for a cold prepare at the first slow one.
var claimWaitMin = time.Second

// claim returns a prepared sandbox for a create: a ready one or, when the
// pool is empty but a prepare is under way that no other create waits
// for, that one when it lands. A cold prepare beside it would take about
// as long and compete with it for the CPU: on the gVisor tier (a pool of
// one, refilled after each claim) two sandboxes booting at once took
// each create of a create-exec-delete loop a cold boot, ~1 s
// (docs/PERFORMANCE.md). The wait is bounded by twice the pool's typical
// prepare (at least claimWaitMin) and ends when that prepare fails, when
// ctx ends or the Manager stops; nil means prepare a cold one.
func (p *pool) claim(ctx context.Context, stop <-chan struct{}) Prepared {
	p.claimed()
	if pr := p.take(); pr != nil {
		return pr
	}
	p.mu.Lock()
	if p.inflight <= p.waiters || p.typical == 0 {
		p.mu.Unlock()
		return nil
	}
	p.waiters++
	failed, wait := p.failed, max(2*p.typical, claimWaitMin)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.waiters--
		p.mu.Unlock()
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case pr := <-p.ready:
		return pr
	case <-failed:
	case <-t.C:
	case <-ctx.Done():
	case <-stop:
		return nil // Close drains ready: a take here could escape it
	}
	return p.take()
}

// poolNow is the pools' clock for claim intervals (nudgeSoon); tests
// replace it.
var poolNow = time.Now

// claimed records that a claim begins now (nudgeSoon's pace).
func (p *pool) claimed() {
	now := poolNow()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.lastClaim.IsZero() {
		p.interval = max(now.Sub(p.lastClaim), 1) // claims in the same instant are still a pace
	}
	p.lastClaim = now
}

// prepared records a successful prepare's time d (claim's bound).
func (p *pool) prepared(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.typical == 0 {
		p.typical = d
		return
	}
	p.typical = (3*p.typical + d) / 4
}

// prepareFailed wakes the creates waiting for a prepare (claim): one
// failed, so they prepare their own.
func (p *pool) prepareFailed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.failed)
	p.failed = make(chan struct{})
}

// reserve claims room for one more prepare, if the pool is not full once
// the prepares under way have landed.
func (p *pool) reserve() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ready)+p.inflight >= p.size {
		return false
	}
	p.inflight++
	return true
}

func (p *pool) unreserve() {
	p.mu.Lock()
	p.inflight--
	p.mu.Unlock()
}

// take returns a prepared sandbox if one is ready, nil if none is; the
// caller nudges the preparers once its create is done (activateFrom).
// Creates use claim, which also waits for a prepare under way.
func (p *pool) take() Prepared {
	select {
	case pr := <-p.ready:
		return pr
	default:
		return nil
	}
}

// refillDelay is how long a pool that still has a sandbox ready waits
// after a claim before it refills: a claimed sandbox's first command
// usually comes at once, and a prepare beside it (new namespaces, a new
// init, its cgroup) made a first python3 10 ms slower on the 2-core box,
// even at the lowest CPU weight (docs/PERFORMANCE.md). A pool a claim
// left empty refills at once: the next create would prepare a cold one.
// So does a pool a claim left with its last sandbox when claims come
// faster than refillDelay (refillNow).
var refillDelay = 200 * time.Millisecond

// nudgeSoon wakes the pool's preparers after a claim: at once when
// refillNow says so, after refillDelay otherwise (unless the Manager
// stops).
func (p *pool) nudgeSoon(stop <-chan struct{}) {
	d := refillDelay
	if p.refillNow(d) {
		p.nudge()
		return
	}
	p.nudgeLater(stop, d)
}

// nudgeLater wakes the preparers after d, unless a nudge is already due.
func (p *pool) nudgeLater(stop <-chan struct{}, d time.Duration) {
	if !p.delayed.CompareAndSwap(false, true) {
		return // a nudge is already due
	}
	go func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-stop:
		}
		p.delayed.Store(false)
		p.nudge()
	}()
}

// activatingOne counts a claimed sandbox's activation; the returned
// function ends it and nudges the preparers (nudgeAfterActivate).
func (p *pool) activatingOne(stop <-chan struct{}) (done func()) {
	p.activating.Add(1)
	return func() { p.nudgeAfterActivate(stop) }
}

// burstRefillDelay bounds how long a claim's refill waits for the pool's
// other claimed sandboxes still activating (nudgeAfterActivate): a burst
// of a hundred took 0.2–0.7 s on the 2-core box, so a shorter bound would
// start the refills in its middle. An activation that never ends holds
// the refill up no longer than this (and a create that then finds the
// pool empty prepares its own and refills it at once).
var burstRefillDelay = time.Second

// nudgeAfterActivate ends one claimed sandbox's activation and wakes the
// preparers: as nudgeSoon does when it was the last one under way, after
// burstRefillDelay while other claimed sandboxes are still activating. A
// burst drains a pool in its first instant and then activates what it
// took; a refill started by its first finished create would only compete
// with the rest of it (a refill is for later creates, not this burst's).
func (p *pool) nudgeAfterActivate(stop <-chan struct{}) {
	if p.activating.Add(-1) > 0 {
		p.nudgeLater(stop, burstRefillDelay)
		return
	}
	p.nudgeSoon(stop)
}

// refillNow reports whether a claim's refill should start at once rather
// than after delay d: when the pool is empty (the next create would wait
// for a prepare), and when one sandbox is left while claims come less
// than d apart. Such a claimer (a create → exec → delete loop) takes the
// last one before a delayed refill would start, and that claim, emptying
// the pool, starts the refill at once beside its own first command: the
// delay spares no command a refill beside it, it only makes the refill
// late, so that every other claim of the loop waited for a prepare under
// way. With several ready the delay is kept (a burst drains a large pool
// at a fast pace, and its refills would compete with it).
func (p *pool) refillNow(d time.Duration) bool {
	switch n := len(p.ready); {
	case n == 0 || d <= 0:
		return true
	case n > 1:
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.interval > 0 && p.interval < d
}

// nudge wakes the pool's preparers.
func (p *pool) nudge() {
	for range p.refill {
		select {
		case p.wake <- struct{}{}:
		default:
			return
		}
	}
}

// fill runs the pool's preparers until the Manager stops.
func (m *Manager) fill(p *pool) {
	defer m.wg.Done()
	var wg sync.WaitGroup
	for range p.refill {
		wg.Go(func() { m.prepareLoop(p) })
	}
	wg.Wait()
}

// prepareLoop is one preparer: it keeps the pool full, one sandbox at a
// time, and sleeps until a claim wakes it. The room is reserved before
// each prepare, so that the preparers together never overfill the pool.
func (m *Manager) prepareLoop(p *pool) {
	t := m.tiers[p.key.tier]
	// A prepare under way when the Manager closes is cancelled rather than
	// waited for (a gVisor warm-up could add seconds to every shutdown).
	base, cancelBase := context.WithCancel(ForPool(context.Background()))
	defer cancelBase()
	go func() {
		select {
		case <-m.stop:
			cancelBase()
		case <-base.Done():
		}
	}()
	backoff := 100 * time.Millisecond
	for {
		for p.reserve() {
			ctx, cancel := context.WithTimeout(base, time.Minute)
			t0 := time.Now()
			pr, err := t.Prepare(ctx, p.key.template)
			cancel()
			if err != nil {
				p.unreserve()
				p.prepareFailed()
				if base.Err() != nil {
					return
				}
				m.log.Warn("prepare pooled sandbox", logKeyTier, p.key.tier, logKeyErr, err)
				select {
				case <-time.After(backoff):
					backoff = min(backoff*2, 30*time.Second)
					continue
				case <-m.stop:
					return
				}
			}
			backoff = 100 * time.Millisecond
			p.prepared(time.Since(t0))
			select {
			case p.ready <- pr: // never blocks: the room was reserved
				p.unreserve()
			case <-m.stop:
				p.unreserve()
				_ = pr.Discard()
				return
			}
		}
		p.asleep.Add(1)
		select {
		case <-p.wake:
			p.asleep.Add(-1)
		case <-m.stop:
			p.asleep.Add(-1)
			return
		}
	}
}

// PooledSandboxBytes is the memory budgeted per prepared sandbox of a
// process-tier warm pool, kernel memory included (an idle one measures
// 2.5–3.6 MiB: docs/PERFORMANCE.md), with room to spare.
const PooledSandboxBytes = 8 << 20

// PoolSizeForMemory bounds a warm pool of want sandboxes of perSandbox
// bytes each to a quarter of avail, the memory available (0: unknown,
// then at most 64, the bound from before pools were sized for bursts).
func PoolSizeForMemory(want int, avail, perSandbox uint64) int {
	if want <= 0 {
		return 0
	}
	if avail == 0 || perSandbox == 0 {
		return min(want, 64)
	}
	return int(min(uint64(want), avail/4/perSandbox))
}

// ProcessPool is the warm pool config of want process-tier sandboxes:
// bounded by the host's available memory (PoolSizeForMemory) and refilled
// by one preparer per core, at most 4. Its Size may be below want (then
// log says so) or 0 (no pool).
func ProcessPool(want int, log *slog.Logger) PoolConfig {
	pc := PoolConfig{Tier: TierProcess, Size: PoolSizeForMemory(want, memAvailable(), PooledSandboxBytes),
		Refill: min(runtime.NumCPU(), 4)}
	if pc.Size < want {
		log.Warn("process sandbox pool capped by memory", "asked", want, "size", pc.Size)
	}
	return pc
}

// memAvailable is the host's MemAvailable in bytes, 0 if unknown.
func memAvailable() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// PoolReady returns how many prepared sandboxes the warm pool of tier and
// template (host template for "") holds and its size; 0, 0 without one.
func (m *Manager) PoolReady(tier, template string) (ready, size int) {
	if template == "" {
		template = TemplateHost
	}
	p, ok := m.pools[poolKey{tier, template}]
	if !ok {
		return 0, 0
	}
	return len(p.ready), p.size
}
