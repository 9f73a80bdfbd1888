// Package clock is the time source of the front door (internal/gateway and
// its sub-packages): Now and one-shot timers, with a real implementation and
// a manual Fake that tests advance instead of sleeping. It schedules nothing
// itself.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and runs functions later.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop prevents the call if it has not started; it reports whether it
	// did.
	Stop() bool
}

// Real is the wall clock.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Fake is a clock that moves only when told to. Timers due at or before the
// new time run, in due order, in the goroutine that calls Advance or Set, so
// a test sees their effects as soon as Advance returns.
type Fake struct {
	mu     sync.Mutex // protects now, timers, seq
	now    time.Time
	timers []*fakeTimer
	seq    uint64
}

type fakeTimer struct {
	c    *Fake
	when time.Time
	seq  uint64
	f    func()
	done bool // fired or stopped; guarded by c.mu
}

// NewFake returns a Fake clock reading t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

// Now returns the fake time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f for now+d.
func (c *Fake) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{c: c, when: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

// Pending is the number of timers not yet fired or stopped.
func (c *Fake) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.done {
			n++
		}
	}
	return n
}

// Advance moves the clock forward by d and runs the timers that came due.
func (c *Fake) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	c.Set(target)
}

// Set moves the clock to t (never backwards) and runs the timers due by then.
func (c *Fake) Set(t time.Time) {
	for {
		c.mu.Lock()
		sort.Slice(c.timers, func(i, j int) bool {
			a, b := c.timers[i], c.timers[j]
			if !a.when.Equal(b.when) {
				return a.when.Before(b.when)
			}
			return a.seq < b.seq
		})
		var next *fakeTimer
		live := c.timers[:0]
		for _, tm := range c.timers {
			if !tm.done {
				live = append(live, tm)
			}
		}
		c.timers = live
		if len(c.timers) > 0 && !c.timers[0].when.After(t) {
			next = c.timers[0]
			next.done = true
			if next.when.After(c.now) {
				c.now = next.when
			}
		} else if t.After(c.now) {
			c.now = t
		}
		c.mu.Unlock()
		if next == nil {
			return
		}
		next.f()
	}
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	return true
}
