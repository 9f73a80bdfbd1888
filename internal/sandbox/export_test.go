package sandbox

import "time"

// SetClaimWaitMin sets the least wait of a create for a prepare under way
// (claim) and returns the function that restores it.
func SetClaimWaitMin(d time.Duration) func() {
	old := claimWaitMin
	claimWaitMin = d
	return func() { claimWaitMin = old }
}

// SetRefillDelay sets how long a pool with a sandbox still ready waits
// after a claim before it refills, and returns the restore function.
func SetRefillDelay(d time.Duration) func() {
	old := refillDelay
	refillDelay = d
	return func() { refillDelay = old }
}

// SetBurstRefillDelay sets how long a claim's refill waits for the
// pool's other claimed sandboxes still activating, and returns the
// restore function.
func SetBurstRefillDelay(d time.Duration) func() {
	old := burstRefillDelay
	burstRefillDelay = d
	return func() { burstRefillDelay = old }
}

// SetPoolClock sets the pools' clock of claim intervals and returns the
// restore function.
func SetPoolClock(now func() time.Time) func() {
	old := poolNow
	poolNow = now
	return func() { poolNow = old }
}

// PoolAtRest reports whether the pool of tier (host template) is full
// with every preparer asleep, waiting for a nudge.
func (m *Manager) PoolAtRest(tier string) bool {
	p, ok := m.pools[poolKey{tier, TemplateHost}]
	if !ok {
		return false
	}
	p.mu.Lock()
	inflight := p.inflight
	p.mu.Unlock()
	return inflight == 0 && len(p.ready) == p.size && int(p.asleep.Load()) == p.refill && len(p.wake) == 0
}
