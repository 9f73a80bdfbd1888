package sandbox

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
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

	mu       sync.Mutex // guards inflight
	inflight int        // prepares under way
}

func newPool(k poolKey, size, refill int) *pool {
	refill = min(max(refill, 1), size)
	return &pool{key: k, size: size, refill: refill, ready: make(chan Prepared, size), wake: make(chan struct{}, refill)}
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
func (p *pool) take() Prepared {
	select {
	case pr := <-p.ready:
		return pr
	default:
		return nil
	}
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
	backoff := 100 * time.Millisecond
	for {
		for p.reserve() {
			ctx, cancel := context.WithTimeout(ForPool(context.Background()), time.Minute)
			pr, err := t.Prepare(ctx, p.key.template)
			cancel()
			if err != nil {
				p.unreserve()
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
			select {
			case p.ready <- pr: // never blocks: the room was reserved
				p.unreserve()
			case <-m.stop:
				p.unreserve()
				_ = pr.Discard()
				return
			}
		}
		select {
		case <-p.wake:
		case <-m.stop:
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
